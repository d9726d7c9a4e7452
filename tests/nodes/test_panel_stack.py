"""The panel as a stack of the local multi-node farm (nodes/panel_stack.py, plan D7/C13),
without Docker: what each of its containers is told (and never told), the secrets it
gets, that a second ``--with-panel`` changes nothing, and that the panel database's
password appears in no output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from farm.env import database_settings
from farm.settings import check_production_posture
from nodes import bootstrap, images, local_farm, mariadb, panel_stack, platform_panel
from nodes.local_nodes.plan import plan_roles
from nodes.swarm import Mount, ServiceDef
from tests.support.processes import ROOT

IMAGE = "127.0.0.1:5000/farm/panel@sha256:" + "a" * 64
HOST_SOCKETS = "/run/wpfarm-nodes"


@pytest.fixture
def farm(settings, tmp_path) -> dict[str, Any]:
    """The settings the host drives the 3-node local farm with (local_farm.driving)."""
    settings.VAR_DIR = tmp_path
    settings.FARM_SECRETS_DIR = tmp_path / "secrets"
    values = local_farm.farm_settings(plan_roles(3), encrypted=False)
    for key, value in values.items():
        setattr(settings, key, value)
    settings.FARM_IMAGES = "registry"
    settings.FARM_IMAGE_MANIFEST_FILE = tmp_path / "farm-nodes" / "images.json"
    return values


def _defs(encrypted: bool = False) -> dict[str, ServiceDef]:
    values = panel_stack.secret_values()
    defs = panel_stack.service_defs(IMAGE, values, encrypted=encrypted, images_config="cfg")
    return {d.name: d for d in defs}


def _mentions_an_engine(sdef: ServiceDef) -> list[str]:
    found = [f"{k}={v}" for k, v in sdef.env.items() if k.startswith("DOCKER") or "docker" in v]
    return found + [m.source for m in sdef.mounts if "docker" in m.source]


def test_the_web_replicas_are_given_no_engine_at_all(farm) -> None:
    web = _defs()[platform_panel.WEB]
    assert _mentions_an_engine(web) == []
    assert "FARM_DOCKER_HOSTS" not in web.env
    assert web.env["FARM_PROCESS_ROLE"] == "web"


def test_workers_and_the_watcher_use_their_own_managers_socket_only(farm) -> None:
    assert farm["FARM_DOCKER_HOSTS"][0].startswith(f"unix://{HOST_SOCKETS}/")  # the host's
    defs = _defs()
    for name in (platform_panel.WORKER, platform_panel.WATCH):
        sdef = defs[name]
        assert sdef.env["DOCKER_HOST"] == "unix:///var/run/docker.sock", name
        assert sdef.env["FARM_DOCKER_HOSTS"] == "", name
        assert Mount("/var/run/docker.sock", "/var/run/docker.sock", "bind") in sdef.mounts
        assert "node.role == manager" in sdef.constraints
    for sdef in defs.values():
        told = [*sdef.env.values(), *(m.source for m in sdef.mounts)]
        assert not [v for v in told if HOST_SOCKETS in v], sdef.name


def test_workers_reach_the_platform_by_service_name_and_share_the_nodes_paths(farm) -> None:
    worker = _defs()[platform_panel.WORKER]
    env = worker.env
    # Not the host's view (the db node's published ports): the names on the overlays.
    assert (env["FARM_MARIADB_HOST"], env["FARM_MARIADB_PORT"]) == ("mariadb", "3306")
    assert (env["FARM_ROUTES_HOST"], env["FARM_ROUTES_PORT"]) == ("routes", "6379")
    assert env["FARM_EDGE_URL"] == "http://traefik:80"
    assert env["FARM_PROMETHEUS_URL"] == "http://prometheus:9090"
    # What php-fpm is given stays the farm's, and so do the paths every node has.
    assert env["FARM_SITE_DB_HOST"] == farm["FARM_SITE_DB_HOST"]
    sites, targets = str(farm["FARM_SITES_ROOT"]), str(farm["FARM_PROMETHEUS_TARGETS_DIR"])
    assert env["FARM_SITES_ROOT"] == sites
    assert env["FARM_PROMETHEUS_TARGETS_DIR"] == targets
    assert Mount(sites, sites, "bind", propagation="rslave") in worker.mounts
    assert Mount(targets, targets, "bind") in worker.mounts
    assert env["FARM_IMAGES"] == "registry"


def test_every_container_reads_the_image_manifest_the_web_for_the_site_runtimes(farm) -> None:
    for sdef in _defs(encrypted=True).values():
        assert sdef.env["FARM_IMAGES"] == "registry", sdef.name
        assert [(c.name, c.target) for c in sdef.configs] == [("cfg", "/etc/farm/images.json")]
        assert sdef.env["FARM_IMAGE_MANIFEST_FILE"] == "/etc/farm/images.json"


def test_the_containers_are_told_the_shape_of_the_farm_the_host_drives(farm, settings) -> None:
    settings.FARM_CPU_RESERVATION_SCALE = 0.03
    for sdef in _defs(encrypted=False).values():
        env = sdef.env
        assert env["FARM_OVERLAY_ENCRYPTION"] == "off", sdef.name
        # Production refuses unencrypted overlays: a development posture with DEBUG off.
        assert (env["FARM_ENV"], env["DJANGO_DEBUG"]) == ("development", "false")
        assert env["FARM_CPU_RESERVATION_SCALE"] == "0.03"
        assert env["FARM_PANEL_URL_FROM_SWARM"] == farm["FARM_PANEL_URL_FROM_SWARM"]
    for sdef in _defs(encrypted=True).values():
        assert (sdef.env["FARM_ENV"], sdef.env["FARM_OVERLAY_ENCRYPTION"]) == ("production", "on")
        assert "DJANGO_DEBUG" not in sdef.env


def _settings_in(sdef: ServiceDef, tmp_path: Path) -> dict[str, Any]:
    """farm.settings as a process started with ``sdef``'s environment loads them (the
    secrets as files, as Swarm mounts them)."""
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir(exist_ok=True)
    for file, value in panel_stack.secret_values().items():
        (run_secrets / file).write_text(value + "\n")
    env = {k: v.replace("/run/secrets", str(run_secrets)) for k, v in sdef.env.items()}
    env |= {"PATH": "/usr/bin:/bin", "FARM_VAR_DIR": str(tmp_path / "var"), "HOME": str(tmp_path)}
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "db = s.DATABASES['default']; print(json.dumps({'hosts': s.FARM_DOCKER_HOSTS, "
        "'debug': s.DEBUG, 'enc': s.FARM_OVERLAY_ENCRYPTION, 'role': s.FARM_PROCESS_ROLE, "
        "'db': [db['ENGINE'], db['HOST'], str(db['PORT']), db['NAME'], db['USER']]}))"
    )
    env["DJANGO_SETTINGS_MODULE"] = "farm.settings"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize(
    "service", [platform_panel.WEB, platform_panel.WORKER, platform_panel.WATCH]
)
def test_each_service_starts_with_its_environment_on_either_kind_of_overlay(
    farm, tmp_path, encrypted, service
) -> None:
    loaded = _settings_in(_defs(encrypted=encrypted)[service], tmp_path)
    assert loaded["hosts"] == []  # a worker: DOCKER_HOST alone, its own manager's socket
    assert loaded["debug"] is False
    assert loaded["enc"] == ("on" if encrypted else "off")
    assert loaded["role"] == ("web" if service == platform_panel.WEB else "worker")
    assert loaded["db"] == ["django.db.backends.mysql", "mariadb", "3306", "panel", "panel"]


def test_the_panels_secrets_are_made_once_and_are_strong_enough_for_production(
    farm, settings
) -> None:
    first = panel_stack.secret_values()
    assert panel_stack.secret_values() == first
    assert set(platform_panel.SECRETS) <= set(first)
    check_production_posture(
        debug=False,
        secret_key=first["panel-secret-key"],
        allowed_hosts=["panel.localhost"],
        encryption_key=first["panel-encryption-key"],
    )
    Fernet(first["panel-encryption-key"].encode())
    db = database_settings(first["panel-database-url"], base_dir=Path(ROOT), conn_max_age=0)
    password = bootstrap.secret_value(panel_stack.PASSWORD_FILE)
    assert (db["HOST"], str(db["PORT"]), db["NAME"], db["USER"]) == (
        "mariadb",
        "3306",
        "panel",
        "panel",
    )
    assert db["PASSWORD"] == password
    # The platform's secrets are farm_up's own values, so the same Swarm secrets.
    assert first["mariadb-root-password"] == bootstrap.secret_value("mariadb-root-password")
    for name in ("panel-secret-key", "panel-encryption-key", panel_stack.PASSWORD_FILE):
        assert (Path(settings.FARM_SECRETS_DIR) / name).stat().st_mode & 0o777 == 0o600


def test_the_host_migrates_through_the_db_nodes_published_port(farm, settings) -> None:
    assert panel_stack.host_database_url("pw") == (
        f"mysql://panel:pw@10.213.0.11:{settings.FARM_MARIADB_PORT}/panel"
    )


def test_the_panel_database_has_its_own_names_never_a_sites() -> None:
    for name in ("wp_1", "panel`; DROP DATABASE x; --", "mysql"):
        with pytest.raises(mariadb.DatabaseError, match="panel database identifier"):
            mariadb.ensure_panel_database(name=name, user="panel", password="x")
    with pytest.raises(mariadb.DatabaseError):
        mariadb.ensure_site_database(name="panel", user="panel", password="x")


# -- the whole step against fakes of its seams -------------------------------------------


class FakeObjects:
    """Swarm secrets or configs: list by name, create."""

    def __init__(self) -> None:
        self.made: dict[str, bytes] = {}

    def list(self, filters: dict[str, str]) -> list[SimpleNamespace]:
        name = filters["name"]
        return [SimpleNamespace(name=name, id=f"id-{name}")] if name in self.made else []

    def create(self, *, name: str, data: bytes, labels: dict[str, str]) -> SimpleNamespace:
        self.made[name] = data
        return SimpleNamespace(name=name, id=f"id-{name}")


class FakeFarm:
    """The seams ensure_panel uses: MariaDB, manage.py migrate, the engine, the routes."""

    def __init__(self) -> None:
        self.databases: set[str] = set()
        self.users: dict[str, str] = {}
        self.migrated = False
        self.services: dict[str, str] = {}
        self.routes: set[str] = set()
        self.engine = SimpleNamespace(secrets=FakeObjects(), configs=FakeObjects())
        self.migrate_env: dict[str, str] = {}
        self.migrate_argv: list[str] = []
        self.commands: list[tuple[str, str]] = []  # (manage.py command, DATABASE_URL)

    def ensure_panel_database(self, *, name: str, user: str, password: str) -> list[str]:
        done = []
        if name not in self.databases:
            self.databases.add(name)
            done.append(f"created database {name}")
        if user not in self.users:
            done.append(f"created user {user}")
        self.users[user] = password
        return done

    def run(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        url = kw["env"]["DATABASE_URL"]
        self.commands.append((argv[2], url))
        if argv[2] != "migrate":
            return subprocess.CompletedProcess(argv, 0, "", "")
        self.migrate_argv, self.migrate_env = argv, kw["env"]
        if self.migrated:
            out = "Running migrations:\n  No migrations to apply.\n"
        else:  # the URL too, as a chatty tool might print it
            out = (
                f"connecting to {url}\nRunning migrations:\n"
                "  Applying farm.0001_initial... OK\n  Applying sites.0001_initial... OK\n"
            )
            self.migrated = True
        return subprocess.CompletedProcess(argv, 0, out, "")

    def apply_service(self, _cli: Any, sdef: ServiceDef) -> str:
        old = self.services.get(sdef.name)
        self.services[sdef.name] = sdef.spec_hash()
        return "created" if old is None else "unchanged" if old == sdef.spec_hash() else "updated"

    def write_route(self, host: str | None = None) -> bool:
        route = platform_panel.route(host)
        key = f"{route.name}={route.domain}->{route.url}"
        new = key not in self.routes
        self.routes.add(key)
        return new


@pytest.fixture
def fake_farm(farm, settings, monkeypatch) -> FakeFarm:
    fake = FakeFarm()
    monkeypatch.setattr(mariadb, "ensure_panel_database", fake.ensure_panel_database)
    monkeypatch.setattr(panel_stack, "client", lambda: fake.engine)
    monkeypatch.setattr(panel_stack, "apply_service", fake.apply_service)
    monkeypatch.setattr(panel_stack, "wait_converged", lambda *a, **kw: None)
    monkeypatch.setattr(platform_panel, "write_route", fake.write_route)
    refs = {role: f"127.0.0.1:5000/farm/{role}@sha256:{'b' * 64}" for role in images.ROLES}
    images.write_manifest(settings.FARM_IMAGE_MANIFEST_FILE, {**refs, "panel": IMAGE})
    return fake


def test_with_panel_twice_the_second_run_changes_nothing(fake_farm) -> None:
    lines: list[str] = []
    first = panel_stack.ensure_panel(progress=lines.append, run=fake_farm.run)
    assert "MariaDB: created database panel" in first.changes
    assert "MariaDB: created user panel" in first.changes
    assert "migrated database panel: 2 migration(s) applied" in first.changes
    for name in (platform_panel.WEB, platform_panel.WORKER, platform_panel.WATCH):
        assert f"created service {name}" in first.changes
    assert [c for c in first.changes if c.startswith("created secret farm_panel_secret_key-")]
    assert [c for c in first.changes if c.startswith("created config farm_panel_images-")]
    assert "route farm-panel: Host(panel.localhost) -> http://farm_panel-web:8000" in first.changes
    second = panel_stack.ensure_panel(progress=lines.append, run=fake_farm.run)
    assert second.changes == []
    assert "database panel migrations" in second.unchanged
    # The services run the pinned panel image from the manifest.
    assert fake_farm.services.keys() == {
        platform_panel.WEB,
        platform_panel.WORKER,
        platform_panel.WATCH,
    }


def test_the_database_password_is_in_no_output_and_no_argv(fake_farm) -> None:
    lines: list[str] = []
    report = panel_stack.ensure_panel(progress=lines.append, run=fake_farm.run)
    password = fake_farm.users["panel"]
    assert len(password) >= 24
    assert password in fake_farm.migrate_env["DATABASE_URL"]  # where it must be, only
    assert "10.213.0.11:" in fake_farm.migrate_env["DATABASE_URL"]
    assert not [a for a in fake_farm.migrate_argv if password in a]
    told = [*lines, *report.changes, *report.unchanged]
    assert not [line for line in told if password in line]


def test_a_failed_migrate_says_why_without_the_password(farm) -> None:
    password = bootstrap.secret_value(panel_stack.PASSWORD_FILE)

    def failing(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        url = kw["env"]["DATABASE_URL"]
        return subprocess.CompletedProcess(argv, 1, "", f"OperationalError: (1045) for {url}\n")

    lines: list[str] = []
    with pytest.raises(panel_stack.PanelStackError) as caught:
        panel_stack.migrate(password, bootstrap.Report(), lines.append, run=failing)
    assert "exit 1" in caught.value.message and "1045" in caught.value.message
    assert password not in caught.value.message and "********" in caught.value.message
    assert not [line for line in lines if password in line]


def test_a_manifest_without_the_panel_image_says_how_to_get_one(fake_farm, settings) -> None:
    path = settings.FARM_IMAGE_MANIFEST_FILE
    refs = images.read_manifest(path)
    del refs["panel"]
    images.write_manifest(path, refs)
    with pytest.raises(panel_stack.PanelStackError, match="--with-panel"):
        panel_stack.ensure_panel(progress=lambda _line: None, run=fake_farm.run)
    assert fake_farm.databases == set()  # nothing was done before the check


# -- the command ------------------------------------------------------------------------


def test_with_panel_is_for_the_local_farm_only() -> None:
    with pytest.raises(CommandError, match="--with-panel needs --nodes"):
        call_command("farm_up", "--with-panel")


def test_the_command_asks_the_local_farm_for_the_panel(monkeypatch, farm) -> None:
    asked: dict[str, Any] = {}

    def up(n: int, **kw: Any) -> local_farm.NodesReport:
        asked.update(kw, n=n)
        return local_farm.NodesReport(specs=plan_roles(n), settings=farm, encrypted=True)

    monkeypatch.setattr(local_farm, "up", up)
    out = io.StringIO()
    call_command("farm_up", "--nodes", "3", "--with-panel", stdout=out)
    assert (asked["n"], asked["with_panel"]) == (3, True)
    assert "curl -H 'Host: panel.localhost' http://10.213.0.11:80/healthz" in out.getvalue()


# -- the nodes' mounts the workers rely on ------------------------------------------------


def test_a_node_with_the_targets_read_only_is_made_again(monkeypatch) -> None:
    """The workers write the sites' Prometheus target files through their node's mount:
    a node made when it was read-only must be made again, one made writable is kept."""
    targets = "/srv/var/farm-nodes/prometheus/targets"
    wanted = {targets: {"bind": targets, "mode": "rw"}, "vol": {"bind": "/r", "mode": "rw"}}

    def node(rw: bool) -> SimpleNamespace:
        mounts = [
            {"Type": "bind", "Source": targets, "RW": rw},
            {"Type": "volume", "Name": "vol", "RW": True},
        ]
        return SimpleNamespace(name="farm-node-2", attrs={"Mounts": mounts, "HostConfig": {}})

    found: dict[str, SimpleNamespace] = {}
    monkeypatch.setattr(local_farm.engines, "find_engine", lambda _host, name: found.get(name))
    assert local_farm._binds_differ(None, "farm-node-2", wanted) is False  # type: ignore[arg-type]
    found["farm-node-2"] = node(rw=False)
    assert local_farm._binds_differ(None, "farm-node-2", wanted) is True  # type: ignore[arg-type]
    found["farm-node-2"] = node(rw=True)
    assert local_farm._binds_differ(None, "farm-node-2", wanted) is False  # type: ignore[arg-type]


def test_the_panel_on_the_farm_gets_its_periodic_tasks(fake_farm) -> None:
    """Without its schedules the in-farm workers would never sync the nodes, so the
    panel on the farm could place no site."""
    panel_stack.ensure_panel(progress=lambda m: None, run=fake_farm.run)
    commands = [command for command, _url in fake_farm.commands]
    assert commands == ["migrate", "ensure_schedules"]
    assert len({url for _command, url in fake_farm.commands}) == 1, "both on the farm's database"
