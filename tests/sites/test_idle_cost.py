"""Issue 11: an idle site costs next to nothing. Not a timing: what the specs and the
image recipes say.

No site service has a Docker health check (an explicit NONE: the images carry one);
the platform's run every 30 s or less often, the images' own every 60 s, all in exec
form and none through a shell; php-fpm forks workers on demand; the site's Redis
keeps nothing on disk and wakes once a second; Prometheus probes each site's front
page once a minute, and Traefik polls no Docker API.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from nodes.images.builder.recipes import IMAGEBUILD_DIR
from nodes.platform import SECRET_FILES, service_defs
from nodes.platform_config import prometheus_config, traefik_static_config
from nodes.swarm import Health, ServiceDef
from nodes.swarm_services import _build
from sites.maintenance import maintenance_service
from sites.models import Site
from sites.stack import PHP_MEM_LIMIT_MB, SALT_KEYS, build_spec, salts_json

SHELLS = {"sh", "bash", "dash", "ash", "busybox sh"}
# php-fpm's memory: the master and a worker with WordPress loaded (measured idle
# ~12 MB and ~35 MB); OPcache's shared memory comes from farm.ini.
FPM_MASTER_MB = 16
FPM_WORKER_MB = 40


def allocated_site(tenant, *, cache_enabled: bool) -> Site:
    site = Site.objects.create(
        tenant=tenant,
        domain=f"idle-{int(cache_enabled)}.acme.test",
        status="active",
        cache_enabled=cache_enabled,
        network_shard="traefik-public-1",
    )
    site.db_name = site.db_user = f"wp_{site.pk}"
    site.db_password = "p" * 32
    site.wp_salts = salts_json({k: "s" * 64 for k in SALT_KEYS})
    site.save()
    return site


def builder_file(role: str, name: str) -> Path:
    return IMAGEBUILD_DIR / role / name


def is_shell_script(path_in_image: str) -> bool:
    """A check command that is one of the build contexts' scripts starting with #!."""
    name = Path(path_in_image).name
    return any(
        p.read_bytes().startswith(b"#!") for p in IMAGEBUILD_DIR.glob(f"*/{name}") if p.is_file()
    )


def assert_cheap(health: Health, *, what: str, minimum_s: float) -> None:
    assert health.test[0] == "CMD", f"{what}: exec form, not CMD-SHELL"
    command = health.test[1]
    assert Path(command).name not in SHELLS and not is_shell_script(command), what
    assert health.interval_s >= minimum_s, f"{what} runs every {health.interval_s} s"


@pytest.mark.django_db
@pytest.mark.parametrize("images", ["local", "upstream"])
@pytest.mark.parametrize("cache_enabled", [True, False])
def test_no_site_service_has_a_docker_health_check(tenant, settings, images, cache_enabled):
    settings.FARM_IMAGES = images
    spec = build_spec(allocated_site(tenant, cache_enabled=cache_enabled), db_host="db:3306")
    assert len(spec.services) == (3 if cache_enabled else 2)
    for service in [*spec.services, maintenance_service()]:
        assert service.health == Health.DISABLED, service.name
        assert service.health.disabled


def test_disabled_means_none_to_docker_not_the_images_own_check():
    """Leaving health unset keeps the image's HEALTHCHECK; DISABLED sends ["NONE"]."""
    engine = SimpleNamespace(api=None)  # a service with no networks, secrets or configs
    disabled = ServiceDef(name="x", image="farm/nginx:t", stack="wp-1", health=Health.DISABLED)
    unset = ServiceDef(name="x", image="farm/nginx:t", stack="wp-1")
    container = _build(engine, disabled)["task_template"]["ContainerSpec"]  # type: ignore[arg-type]
    assert container["Healthcheck"]["Test"] == ["NONE"]
    assert "Healthcheck" not in _build(engine, unset)["task_template"]["ContainerSpec"]  # type: ignore[arg-type]


def test_platform_health_checks_run_every_30_s_or_less_often_and_spawn_no_shell():
    for service in service_defs({name: "x" for name in SECRET_FILES}):
        assert service.health is not None, f"{service.name} keeps the image's check"
        assert_cheap(service.health, what=service.name, minimum_s=30)


@pytest.mark.parametrize(
    "dockerfile", sorted(IMAGEBUILD_DIR.glob("*/Dockerfile")), ids=lambda p: p.parent.name
)
def test_the_images_own_checks_run_every_60_s_in_exec_form(dockerfile: Path):
    text = dockerfile.read_text().replace("\\\n", " ")
    found = re.search(r"^HEALTHCHECK (.*)$", text, re.M)
    assert found, f"{dockerfile}: say HEALTHCHECK NONE if it has none"
    line = found.group(1)
    if line.strip() == "NONE":
        return
    interval = re.search(r"--interval=(\d+)s", line)
    assert interval and int(interval.group(1)) >= 60, line
    command = json.loads(line[line.index("CMD") + 3 :].strip())
    assert isinstance(command, list), f"{dockerfile}: exec form"
    program = command[0]
    if program == "env":  # env -i VAR=value ... program: env execs it, no shell between
        program = next(c for c in command[1:] if not c.startswith("-") and "=" not in c)
    assert Path(program).name not in SHELLS and not is_shell_script(program), line


def test_php_fpm_forks_workers_on_demand_sized_from_the_memory_limit():
    pool = dict(
        (k.strip(), v.strip())
        for k, _, v in (
            line.partition("=")
            for line in builder_file("wordpress", "www.conf").read_text().splitlines()
            if "=" in line and not line.lstrip().startswith(";")
        )
    )
    ini = builder_file("wordpress", "farm.ini").read_text()
    opcache = re.search(r"^opcache.memory_consumption = (\d+)$", ini, re.M)
    assert opcache
    opcache_mb = int(opcache.group(1))
    assert pool["pm"] == "ondemand"
    assert int(pool["pm.max_children"]) == (
        (PHP_MEM_LIMIT_MB - opcache_mb - FPM_MASTER_MB) // FPM_WORKER_MB
    )
    assert pool["pm.process_idle_timeout"].endswith("s")
    assert pool["ping.path"] == "/fpm-ping"
    assert re.search(r"^opcache.revalidate_freq = 60$", ini, re.M)


def test_the_sites_redis_keeps_nothing_on_disk_stays_under_its_limit_and_sleeps():
    conf = builder_file("redis", "redis.conf").read_text()
    assert 'save ""' in conf and "appendonly no" in conf
    found = re.search(r"^maxmemory (\d+)mb$", conf, re.M)
    assert found
    maxmemory = int(found.group(1))
    assert maxmemory < 64, "below the site Redis service's 64 MB limit"
    assert re.search(r"^hz 1$", conf, re.M)
    assert re.search(
        r"^worker_processes 1;$", builder_file("nginx", "nginx.conf").read_text(), re.M
    )


def test_sites_are_probed_once_a_minute_and_traefik_polls_no_docker_api():
    config = json.loads(prometheus_config().content)
    sites = next(job for job in config["scrape_configs"] if job["job_name"] == "sites")
    assert sites["scrape_interval"] == "60s"
    assert sites["params"]["module"] == ["http_site"]
    blackbox = builder_file("blackbox", "blackbox.yml").read_text()
    http_site = blackbox[blackbox.index("http_site:") : blackbox.index("http_2xx:")]
    assert "follow_redirects: false" in http_site
    static = json.loads(traefik_static_config("pw").content)
    assert set(static["providers"]) == {"redis", "file"}, "no swarm or docker provider"
    traefik = next(s for s in service_defs({n: "x" for n in SECRET_FILES}) if "traefik" in s.name)
    assert not [m for m in traefik.mounts if "docker.sock" in m.source]
