"""Issue 12, C2: the farm's and the sites' overlay networks are encrypted as
FARM_OVERLAY_ENCRYPTION says, and one that exists with the other encryption is refused.

The platform's network specs are data; creating them goes through the docker SDK to a
fake Engine API (tests/fakes/docker_engine.py) that records what it was asked to create."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from nodes import bootstrap, platform
from nodes.images import site_runtime
from nodes.overlay import overlay_encrypted
from nodes.swarm import NamedContent, SwarmError, client, reset_client_cache
from sites import swarm_site
from sites.stack import SiteStackSpec, network_name, stack_name
from tests.fakes.docker_engine import FakeEngine, running_fake_engines
from tests.support.processes import ROOT

PRIVATE = {platform.DB_NETWORK, platform.INTERNAL_NETWORK}
STRONG_KEY = "k3J9x-Qv8ZpL2mN7rT4wY6aB1cD5eF0gH8iJ2kL4mN6oP9qR3sT"
FERNET_KEY = "kP1bRX2WAnQ5E3J5x6sVYvKxV6ZJ8cK9m2N4bT7cQ0s="


@pytest.fixture
def engine(settings):
    settings.FARM_DOCKER_HOSTS = []
    settings.FARM_PROCESS_ROLE = "all"
    settings.FARM_DOCKER_TIMEOUT = 5
    reset_client_cache()
    with running_fake_engines(["node-1"]) as (fake,):
        settings.DOCKER_HOST = fake.url
        yield fake
    reset_client_cache()


def site_spec(site_id: int = 7) -> SiteStackSpec:
    stack = stack_name(site_id)
    return SiteStackSpec(
        site_id=site_id,
        domain=f"site-{site_id}.acme.test",
        stack=stack,
        network=network_name(site_id),
        shard_network=platform.public_network(1),
        site_dir=f"/srv/sites/{stack}",
        runtime=site_runtime("php8.2"),
        cache_enabled=False,
        db_password=NamedContent(f"{stack}_db_password", "p" * 32),
        salts=NamedContent(f"{stack}_wp_salts", "{}"),
        wp_config=NamedContent(f"{stack}_wp_config", "<?php"),
        nginx_conf=NamedContent(f"{stack}_nginx", "server {}"),
    )


def created(fake: FakeEngine, name: str) -> dict:
    [body] = [b for b in fake.created if b["Name"] == name]
    return body


@pytest.mark.parametrize(("mode", "encrypted"), [("auto", True), ("on", True), ("off", False)])
def test_the_setting_decides(settings, mode, encrypted):
    settings.FARM_OVERLAY_ENCRYPTION = mode
    assert overlay_encrypted() is encrypted


@pytest.mark.parametrize(("mode", "encrypted"), [("on", True), ("off", False)])
def test_the_platform_network_specs_follow_the_setting(settings, mode, encrypted):
    settings.FARM_OVERLAY_ENCRYPTION = mode
    defs = {net.name: net for net in platform.network_defs()}

    assert {name for name, net in defs.items() if net.encrypted} == (
        PRIVATE if encrypted else set()
    )
    assert all(not defs[name].encrypted for name in platform.public_networks()), "never"


@pytest.mark.parametrize(("mode", "option"), [("on", {"encrypted": "true"}), ("off", {})])
def test_farm_up_creates_its_networks_as_the_setting_says(engine, settings, mode, option):
    settings.FARM_OVERLAY_ENCRYPTION = mode
    report = bootstrap.Report()
    for net in platform.network_defs():
        bootstrap.ensure_network(client(), net, report)

    for name in PRIVATE:
        body = created(engine, name)
        assert body["Driver"] == "overlay"
        assert body["Options"] == option, "off sends no 'encrypted' key: its presence is on"
    for name in platform.public_networks():
        assert created(engine, name)["Options"] == {}

    again = bootstrap.Report()
    for net in platform.network_defs():
        bootstrap.ensure_network(client(), net, again)
    assert again.no_changes, "the same networks: nothing to do"


@pytest.mark.parametrize(("existing", "mode"), [({"encrypted": "true"}, "off"), ({}, "on")])
def test_farm_up_refuses_a_network_with_the_other_encryption(engine, settings, existing, mode):
    settings.FARM_OVERLAY_ENCRYPTION = mode
    db_net = next(n for n in platform.network_defs() if n.name == platform.DB_NETWORK)
    engine.add_network(db_net.name, options=existing)["IPAM"]["Config"] = [
        {"Subnet": db_net.subnet}
    ]

    with pytest.raises(SwarmError) as raised:
        bootstrap.ensure_network(client(), db_net, bootstrap.Report())

    message = raised.value.message
    was, wants = ("encrypted", "unencrypted") if existing else ("unencrypted", "encrypted")
    assert f"Network farm-db exists {was}" in message
    assert f"FARM_OVERLAY_ENCRYPTION={mode} makes networks {wants}" in message
    assert "manage.py farm_down" in message
    assert not raised.value.retryable
    assert engine.created == [], "nothing created beside it"


@pytest.mark.parametrize(("mode", "option"), [("on", {"encrypted": "true"}), ("off", {})])
def test_a_site_network_follows_the_setting(engine, settings, mode, option):
    settings.FARM_OVERLAY_ENCRYPTION = mode
    spec = site_spec()

    assert swarm_site.ensure_network(client(), spec) is True
    body = created(engine, spec.network)
    assert (body["Driver"], body["Options"], body["Attachable"]) == ("overlay", option, False)
    assert swarm_site.ensure_network(client(), spec) is False, "exists as wanted: kept"


def test_a_site_network_with_the_other_encryption_is_refused(engine, settings):
    spec = site_spec()
    engine.add_network(f"old-{spec.network}")  # listed first: the name filter matches parts
    engine.add_network(spec.network, options={"encrypted": "true"})
    settings.FARM_OVERLAY_ENCRYPTION = "off"

    with pytest.raises(SwarmError) as raised:
        swarm_site.ensure_network(client(), spec)

    assert f"Network {spec.network} exists encrypted" in raised.value.message
    assert f"remove the stack {spec.stack}" in raised.value.message
    assert not raised.value.retryable
    settings.FARM_OVERLAY_ENCRYPTION = "auto"
    assert swarm_site.ensure_network(client(), spec) is False


def test_production_refuses_off_at_use_and_at_start(settings):
    settings.PRODUCTION = True
    settings.FARM_OVERLAY_ENCRYPTION = "off"
    with pytest.raises(ImproperlyConfigured, match="FARM_OVERLAY_ENCRYPTION=off is refused"):
        platform.network_defs()

    def boot(value: str, env_name: str = "production") -> subprocess.CompletedProcess[str]:
        # Everything else production wants is there: the refusal is the setting's.
        production = {
            "ALLOWED_HOSTS": "panel.example",
            "SECRET_KEY": STRONG_KEY,
            "FARM_ENCRYPTION_KEY": FERNET_KEY,
        }
        return subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "PATH": "/usr/bin:/bin",
                "DJANGO_SETTINGS_MODULE": "farm.settings",
                "FARM_ENV": env_name,
                "FARM_OVERLAY_ENCRYPTION": value,
                **production,
            },
        )

    assert boot("on").returncode == 0, "production with the rest in order starts"
    refused = boot("off")
    assert refused.returncode != 0
    assert "FARM_OVERLAY_ENCRYPTION=off is refused in production" in refused.stderr
    assert boot("off", "development").returncode == 0, "allowed where the kernel cannot"
    bad = boot("maybe", "development")
    assert bad.returncode != 0 and "FARM_OVERLAY_ENCRYPTION='maybe' must be one of" in bad.stderr
