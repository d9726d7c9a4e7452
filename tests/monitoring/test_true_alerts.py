"""Issue 9, item 18: critical alerts that are not true.

A fresh farm has no restic repository until its first backup: the daily check
has nothing to check, which is not a failure. A new site whose WordPress is not
installed yet answers 302 to the install screen: it is up. A route with nothing
behind it is down, and so is a site whose WordPress answers 500 (its PHP or its
database broken): the probe asks for the front page itself, once a minute.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from backups import restic, tasks
from backups.models import Backup, BackupStatus, RepositoryCheck
from monitoring import prometheus
from monitoring.alerts import raise_alert
from monitoring.models import Alert, AlertStatus
from nodes import platform, routes
from nodes.bootstrap import Report, ensure_config
from nodes.images import image_for
from nodes.swarm import (
    FileRef,
    NamedContent,
    ServiceDef,
    apply_service,
    client,
    remove_service,
    wait_containers_gone,
    wait_converged,
)
from tests.support.farm import ensure_farm

pytestmark = pytest.mark.django_db

CHECK_ALERT = "restic-check-failed"


@pytest.fixture
def no_repository_yet(settings, tmp_path: Path) -> Path:
    location = tmp_path / "repo-the-first-backup-creates"
    settings.FARM_BACKUP_REPOSITORY = str(location)
    settings.FARM_RESTIC_PASSWORD = "only for tests"
    settings.FARM_RESTIC_CACHE_DIR = str(tmp_path / "restic-cache")
    return location


def test_item18_a_repository_check_before_the_first_backup_has_nothing_to_check_and_no_alert(
    no_repository_yet: Path,
):
    stale = raise_alert(
        fingerprint=CHECK_ALERT,
        name="RepositoryCheckFailed",
        severity="critical",
        source="backup",
        summary="restic check of subset 1/30 failed",
        description="There is no restic repository at ...",
    )

    outcome = tasks.check_repository()

    assert outcome.endswith(": nothing to check yet")
    check = RepositoryCheck.objects.get()
    assert check.ok and check.finished_at is not None
    assert check.output.startswith("nothing to check yet")
    stale.refresh_from_db()
    assert stale.status == AlertStatus.RESOLVED, "the stale critical alert is resolved"
    assert not Alert.objects.filter(status=AlertStatus.FIRING).exists()
    assert not no_repository_yet.exists(), "the check creates nothing"


def test_item18_a_repository_gone_after_backups_were_made_is_still_a_failure(
    no_repository_yet: Path,
):
    Backup.objects.create(
        kind="db",
        status=BackupStatus.SUCCEEDED,
        snapshot_id="0123abcd",
        repository=restic.repository_from_settings().url,
        finished_at=timezone.now(),
    )

    assert tasks.check_repository().endswith(": FAILED")
    alert = Alert.objects.get(fingerprint=CHECK_ALERT)
    assert alert.status == AlertStatus.FIRING and alert.severity == "critical"
    assert "There is no restic repository" in alert.description


# -- the site probe, on the real farm --------------------------------------------------

# What a site whose WordPress is not installed yet answers: 302 to the install screen;
# and one whose database is down: WordPress's "Error establishing a database connection".
INSTALL_REDIRECT = """server {
    listen 80;
    server_name _;
    location / { return 302 http://$host/wp-admin/install.php; }
}
"""
DATABASE_DOWN = """server {
    listen 80;
    server_name _;
    location / { return 500 "Error establishing a database connection"; }
}
"""


def routed_nginx(name: str, *, port: int, configs: list[FileRef] | None = None) -> ServiceDef:
    """An nginx service with a route for ``<name>.localhost`` in the routing Redis."""
    routes.put(routes.Route(name, f"{name}.localhost", url=f"http://{name}:{port}"))
    return ServiceDef(
        name=name,
        image=image_for("nginx"),
        stack=name,
        networks={platform.public_network(1): []},
        configs=configs or [],
    )


def probe(site_id: int) -> dict[str, str]:
    """The sites job's last probe of this target: probe_success and the HTTP status."""
    found = {}
    for metric in ("probe_success", "probe_http_status_code"):
        result = prometheus.query(f'{metric}{{job="sites",site_id="{site_id}"}}')
        if result:
            found[metric] = result[0]["value"][1]
    return found


@pytest.mark.swarm
@pytest.mark.slow
def test_item18_a_new_site_on_its_install_screen_is_up_and_a_route_with_nothing_behind_is_down():
    ensure_farm()
    cli = client()
    tag = uuid.uuid4().hex[:8]
    config = NamedContent(f"test-install-{tag}", INSTALL_REDIRECT)
    ensure_config(cli, config, Report(), stack=f"test-install-{tag}")
    broken_config = NamedContent(f"test-broken-{tag}", DATABASE_DOWN)
    ensure_config(cli, broken_config, Report(), stack=f"test-broken-{tag}")
    installing = routed_nginx(
        f"test-install-{tag}",
        port=80,
        configs=[FileRef(config.name, "/etc/nginx/conf.d/install.conf")],
    )
    broken = routed_nginx(
        f"test-broken-{tag}",
        port=80,
        configs=[FileRef(broken_config.name, "/etc/nginx/conf.d/broken.conf")],
    )
    nothing_behind = routed_nginx(f"test-nothing-{tag}", port=81)  # nobody listens on 81
    services = (installing, broken, nothing_behind)
    targets = {
        "installing": (910_000 + int(tag[:4], 16), f"{installing.name}.localhost"),
        "database down": (940_000 + int(tag[:4], 16), f"{broken.name}.localhost"),
        "nothing behind": (920_000 + int(tag[:4], 16), f"{nothing_behind.name}.localhost"),
        "no route": (930_000 + int(tag[:4], 16), f"test-unrouted-{tag}.localhost"),
    }
    try:
        for sdef in services:
            apply_service(cli, sdef)
        wait_converged(cli, [s.name for s in services], timeout_s=120)
        for site_id, domain in targets.values():
            prometheus.write_site_target(
                site_id=site_id, domain=domain, tenant="test", via_edge=True
            )
        # file_sd is re-read every 30 s, sites are probed every 60 s.
        deadline = time.monotonic() + 200
        seen: dict[str, dict[str, str]] = {}
        while time.monotonic() < deadline:
            seen = {what: probe(site_id) for what, (site_id, _) in targets.items()}
            if all("probe_success" in s for s in seen.values()):
                break
            time.sleep(3)
        assert seen["installing"] == {"probe_success": "1", "probe_http_status_code": "302"}
        assert seen["database down"] == {"probe_success": "0", "probe_http_status_code": "500"}
        assert seen["nothing behind"]["probe_success"] == "0", seen
        assert seen["nothing behind"]["probe_http_status_code"] in ("502", "503"), seen
        assert seen["no route"] == {"probe_success": "0", "probe_http_status_code": "404"}
    finally:
        for site_id, _ in targets.values():
            prometheus.remove_site_target(site_id)
        for sdef in services:
            routes.remove(sdef.name)
            remove_service(cli, sdef.name)
        wait_containers_gone(cli, {s.name for s in services})
        for made in (config, broken_config):
            for leftover in cli.configs.list(filters={"name": made.name}):
                leftover.remove()


@pytest.mark.swarm
@pytest.mark.slow
def test_item18_a_fresh_farm_has_every_platform_target_up_and_no_platform_alert_pending():
    ensure_farm()
    jobs = {"prometheus", "traefik", "blackbox", "alertmanager"}
    deadline = time.monotonic() + 90
    while True:
        up = {r["metric"]["job"]: r["value"][1] for r in prometheus.query('up{job!="sites"}')}
        if up == dict.fromkeys(jobs, "1"):
            break
        assert time.monotonic() < deadline, f"platform targets not all up: {up}"
        time.sleep(3)
    assert prometheus.query('ALERTS{job!="sites"}') == []
