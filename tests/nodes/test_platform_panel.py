"""The panel's own services (nodes/platform_panel.py, plan D7), without Docker: which of
them may talk to an engine, where they run, what they are given, the specs the SDK gets,
and the panel's route in a real routing Redis."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from nodes import platform, platform_panel, routes
from nodes.images.builder import panel as panel_recipe
from nodes.swarm import Health, Mount, ServiceDef
from nodes.swarm_services import _build
from tests.nodes.test_routes import routing_redis  # noqa: F401  (the fixture)
from tests.support.processes import ROOT, kill_group, wait_for

IMAGE = "127.0.0.1:5000/farm/panel@sha256:" + "a" * 64
VALUES = {name: f"value-of-{name}" for name in (*platform.SECRET_FILES, *platform_panel.SECRETS)}


@pytest.fixture
def defs(settings, tmp_path) -> dict[str, ServiceDef]:
    settings.FARM_SITES_ROOT = tmp_path / "sites"
    settings.FARM_PROMETHEUS_TARGETS_DIR = tmp_path / "targets"
    return {s.name: s for s in platform_panel.service_defs(IMAGE, VALUES, host="panel.localhost")}


def _uses_docker(sdef: ServiceDef) -> bool:
    return any("docker.sock" in m.source or "docker.sock" in m.target for m in sdef.mounts)


def test_the_web_replicas_have_no_docker_socket_and_no_docker_host(defs):
    web = defs["farm_panel-web"]
    assert not _uses_docker(web)
    assert not [k for k in web.env if k.startswith("DOCKER")]
    assert not [v for v in web.env.values() if "docker.sock" in v]
    assert web.env["FARM_PROCESS_ROLE"] == "web"
    assert web.args == [
        "gunicorn",
        "farm.wsgi:application",
        "-b",
        "0.0.0.0:8000",
        "-w",
        "2",
        "--threads",
        "2",
    ]
    assert web.command is None  # the image's tini stays PID 1
    assert (web.replicas, web.max_replicas_per_node) == (2, 1)
    assert set(web.networks) == {"traefik-public-1", "farm-internal", "farm-db"}
    assert web.constraints == []  # any node
    assert web.health is not None and web.health.test[-1] == "http://127.0.0.1:8000/healthz"
    assert web.user is None  # the image's unprivileged user


def test_the_workers_have_the_socket_docker_host_the_sites_and_run_on_managers(defs, tmp_path):
    worker = defs["farm_panel-worker"]
    assert Mount("/var/run/docker.sock", "/var/run/docker.sock", "bind") in worker.mounts
    assert worker.env["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert "node.role == manager" in worker.constraints
    assert (worker.replicas, worker.max_replicas_per_node) == (2, 1)
    assert worker.args == ["python3", "manage.py", "qcluster"]
    assert worker.env["FARM_PROCESS_ROLE"] == "worker"
    sites = str(tmp_path / "sites")
    assert Mount(sites, sites, "bind", propagation="rslave") in worker.mounts
    assert worker.env["FARM_SITES_ROOT"] == sites  # the same absolute path as on the nodes
    assert worker.health == Health.DISABLED  # the image's check asks gunicorn
    assert worker.user == "0"


def test_the_watcher_is_one_replica_on_a_manager_with_the_socket(defs):
    watch = defs["farm_panel-watch"]
    assert _uses_docker(watch) and watch.env["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert "node.role == manager" in watch.constraints
    assert watch.replicas == 1 and watch.args == ["python3", "manage.py", "watch_nodes"]
    assert watch.health == Health.DISABLED


def test_secrets_are_swarm_secrets_named_by_the_file_settings(defs):
    platform_names = {s.base: s.name for s in platform.secret_defs(VALUES)}
    for sdef in defs.values():
        mounted = {ref.target: ref for ref in sdef.secrets}
        assert sdef.env["FARM_SECRETS_DIR"] == "/run/secrets"
        for key, path in sdef.env.items():
            if key.endswith("_FILE"):
                assert path.startswith("/run/secrets/") and path.rsplit("/", 1)[1] in mounted
        assert {"SECRET_KEY_FILE", "FARM_ENCRYPTION_KEY_FILE", "DATABASE_URL_FILE"} <= set(sdef.env)
        assert not [v for v in sdef.env.values() if "value-of-" in v], "a secret in the env"
        for ref in mounted.values():
            assert ref.mode == 0o400
    web = {ref.target: ref for ref in defs["farm_panel-web"].secrets}
    assert set(web) == {
        "panel-secret-key",
        "panel-encryption-key",
        "panel-database-url",
        "alertmanager-token",
    }
    assert {ref.uid for ref in web.values()} == {panel_recipe.PANEL_UID}
    assert platform_panel.PANEL_UID == panel_recipe.PANEL_UID
    # The platform's own secrets are the ones farm_up made, not copies.
    worker = {ref.target: ref.name for ref in defs["farm_panel-worker"].secrets}
    assert worker["mariadb-root-password"] == platform_names[platform.MARIADB_ROOT_SECRET]
    assert worker["alertmanager-token"] == platform_names[platform.ALERTMANAGER_TOKEN_SECRET]
    with pytest.raises(KeyError, match="panel-database-url"):
        platform_panel.secret_defs({k: v for k, v in VALUES.items() if k != "panel-database-url"})


def test_the_redis_broker_is_the_platforms_redis(settings, tmp_path):
    settings.FARM_SITES_ROOT = tmp_path
    settings.FARM_QUEUE = "redis"
    for sdef in platform_panel.service_defs(IMAGE, VALUES):
        assert sdef.env["REDIS_URL"] == "redis://redis:6379/0"
        assert "farm-internal" in sdef.networks
    settings.FARM_QUEUE = "orm"
    assert not [d for d in platform_panel.service_defs(IMAGE, VALUES) if "REDIS_URL" in d.env]


def test_an_image_manifest_is_given_to_the_workers_as_a_config(settings, tmp_path):
    settings.FARM_SITES_ROOT = tmp_path
    manifest = platform_panel.images_manifest({"redis": "127.0.0.1:5000/farm/redis@sha256:b"})
    defs = platform_panel.service_defs(IMAGE, VALUES, images_config=manifest.name)
    worker = next(d for d in defs if d.name == "farm_panel-worker")
    assert worker.env["FARM_IMAGES"] == "registry"
    assert worker.configs[0].name == manifest.name
    assert worker.env["FARM_IMAGE_MANIFEST_FILE"] == worker.configs[0].target


def _engine() -> SimpleNamespace:
    api = SimpleNamespace(
        inspect_secret=lambda name: {"ID": f"id-{name}"},
        inspect_config=lambda name: {"ID": f"id-{name}"},
        networks=lambda names: [{"Name": names[0], "Id": f"net-{names[0]}"}],
    )
    return SimpleNamespace(api=api)


def test_the_sdk_specs_carry_max_replicas_and_the_bind_propagation(defs, tmp_path):
    worker = _build(_engine(), defs["farm_panel-worker"])  # type: ignore[arg-type]
    template = worker["task_template"]
    assert template["Placement"]["MaxReplicas"] == 1
    assert template["Placement"]["Constraints"] == ["node.role == manager"]
    mounts = {m["Target"]: m for m in template["ContainerSpec"]["Mounts"]}
    assert mounts[str(tmp_path / "sites")]["BindOptions"] == {"Propagation": "rslave"}
    assert "BindOptions" not in mounts["/var/run/docker.sock"]
    web = _build(_engine(), defs["farm_panel-web"])  # type: ignore[arg-type]
    assert web["task_template"]["Placement"]["MaxReplicas"] == 1
    assert not web["task_template"]["ContainerSpec"].get("Mounts")
    assert not [e for e in web["task_template"]["ContainerSpec"]["Env"] if "DOCKER" in e]
    plain = _build(_engine(), ServiceDef(name="x", image="i", stack="s"))  # type: ignore[arg-type]
    assert "MaxReplicas" not in plain["task_template"].get("Placement", {})


def test_services_without_the_new_fields_keep_their_spec_hash():
    """An upgrade must not roll every running service over: the hash of a def that does
    not use max_replicas_per_node or propagation is what it was before they existed."""
    sdef = ServiceDef(
        name="farm_x",
        image="farm/redis:abc",
        stack="farm",
        args=["--a"],
        env={"A": "1"},
        mounts=[Mount("/srv/sites/wp-1", "/var/www/site", "bind")],
        constraints=["node.role == manager"],
        replicas=2,
    )
    assert sdef.spec_hash() == "42f273f4fd560854"  # computed before the fields were added
    with_new = ServiceDef(**{**sdef.__dict__, "max_replicas_per_node": 1})
    assert with_new.spec_hash() != sdef.spec_hash()


def test_the_panel_route_points_at_the_web_replicas_with_two_retries():
    keys = platform_panel.route("panel.localhost").as_keys()
    assert keys["traefik/http/routers/farm-panel/rule"] == "Host(`panel.localhost`)"
    assert (
        keys["traefik/http/services/farm-panel/loadBalancer/servers/0/url"]
        == "http://farm_panel-web:8000"
    )
    assert keys["traefik/http/middlewares/farm-panel-retry/retry/attempts"] == "2"
    site = routes.Route("wp-1", "s1.example.com", url="http://wp-1_nginx:80").as_keys()
    assert site["traefik/http/middlewares/wp-1-retry/retry/attempts"] == "3"  # unchanged
    with pytest.raises(routes.RoutesError, match="retry attempts"):
        routes.Route("x", "x.test", url="http://x:80", retry_attempts=0).as_keys()


def test_the_route_defaults_to_farm_panel_host(settings):
    settings.FARM_PANEL_HOST = "panel.farm.example"
    assert platform_panel.route().domain == "panel.farm.example"


def test_writing_the_panel_route_is_idempotent(routing_redis):  # noqa: F811
    assert platform_panel.write_route("panel.localhost") is True
    assert platform_panel.write_route("panel.localhost") is False
    assert routing_redis.get("traefik/http/routers/farm-panel/rule") == "Host(`panel.localhost`)"
    assert "farm-panel" in routes.names()


# -- the web replica's process, as the stack starts it (without Docker) -------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http://127.0.0.1)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.slow
def test_the_web_replica_boots_gunicorn_in_production_and_serves_healthz_and_static(defs, tmp_path):
    """The web def's own environment (its secrets as files), the image's settings
    (FARM_STATIC_WHITENOISE, collectstatic first), a production process: /healthz
    answers under the container's own address, a hashed static file comes compressed."""
    secrets_dir = tmp_path / "run-secrets"
    secrets_dir.mkdir()
    values = {
        "panel-secret-key": "k3J9x-Qv8ZpL2mN7rT4wY6aB1cD5eF0gH8iJ2kL4mN6oP9qR3sT",
        "panel-encryption-key": "kP1bRX2WAnQ5E3J5x6sVYvKxV6ZJ8cK9m2N4bT7cQ0s=",
        "panel-database-url": f"sqlite:///{tmp_path / 'panel.sqlite3'}",
        "alertmanager-token": "token",
    }
    for name, value in values.items():
        (secrets_dir / name).write_text(value + "\n")
    web = defs["farm_panel-web"]
    env = {key: value.replace("/run/secrets", str(secrets_dir)) for key, value in web.env.items()}
    env |= {  # what the image's ENV sets
        "PATH": "/usr/bin:/bin",
        "FARM_VAR_DIR": str(tmp_path / "var"),
        "FARM_STATIC_WHITENOISE": "1",
        "DJANGO_SETTINGS_MODULE": "farm.settings",
    }
    assert env["FARM_ENV"] == "production"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**env, "FARM_ENV": "development", "SECRET_KEY": "build-only"},
        check=True,
        timeout=120,
    )
    assert not (tmp_path / "var" / "secret_key").exists()
    port = _free_port()
    argv = [sys.executable, "-m", *web.args]
    argv[argv.index("0.0.0.0:8000")] = f"127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**env, "HOME": str(tmp_path)},
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return _get(f"{base}/healthz")[0] == 200
            except OSError:
                assert proc.poll() is None, log.read_text()[-3000:]
                return False

        wait_for(up, timeout=60, what="gunicorn to answer /healthz")
        status, _, body = _get(f"{base}/healthz")
        assert (status, body) == (200, b"ok\n")
        manifest = json.loads((tmp_path / "var" / "static" / "staticfiles.json").read_text())
        hashed = manifest["paths"]["farm/farm.css"]
        status, headers, _ = _get(f"{base}/static/{hashed}", **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert "immutable" in headers["Cache-Control"]
        # Any other page still checks the host: the container's address is not the panel's.
        assert _get(f"{base}/accounts/login/")[0] == 400
        assert _get(f"{base}/accounts/login/", Host="panel.localhost")[0] == 200
    finally:
        kill_group(proc, signal.SIGTERM)
