"""The panel brought up as a stack of the farm it manages, from the host
(``manage.py farm_up --nodes N --with-panel``; docs/plans/multi-node.md D7, C13).

Nothing here is particular to the local multi-node farm: it acts on the farm the
current settings point at (``local_farm.driving`` gives it the local farm's), through
the same seams as ``bootstrap.farm_up``, so a production farm_up can call it too. The
panel's image must be in the image manifest (FARM_IMAGES=registry), pinned by digest
like the platform's. In order, each step changing only what is missing or different:

1. the panel's database and user in the farm's MariaDB (``nodes.mariadb``); the user's
   password is generated once into FARM_SECRETS_DIR, like the platform's secrets;
2. ``manage.py migrate`` in a subprocess of the host, its DATABASE_URL naming the
   farm's MariaDB as the host reaches it (FARM_MARIADB_HOST:FARM_MARIADB_PORT). The
   password travels in that process's environment only: never in argv, never in
   progress, and an error's text has it blanked out;
3. the Swarm secrets the services mount (``platform_panel.SECRETS``: a SECRET_KEY of
   67 characters, a Fernet FARM_ENCRYPTION_KEY, the DATABASE_URL the containers use,
   ``mariadb:3306`` on farm-db) and the image manifest as a config;
4. the three services with the environment of ``service_defs`` (below), waited for;
5. the route ``Host(FARM_PANEL_HOST)`` -> ``farm_panel-web:8000`` in the routing Redis.

What the containers are told (``farm_env``, ``ENGINE_ENV``): the farm's shape as the
host drives it (overlay encryption, CPU reservation scale, address pools, shards), and
for the two services that talk to Docker, worker and watch, their own manager's
``/var/run/docker.sock`` only: FARM_DOCKER_HOSTS is empty, so no container is pointed
at the host's sockets of the local farm (/run/wpfarm-nodes/...). The web replicas get
neither socket nor DOCKER_HOST. Where the overlays cannot be encrypted (this kernel),
the containers run with FARM_ENV=development and DEBUG off: production refuses
FARM_OVERLAY_ENCRYPTION=off at start-up, and telling them "on" would make the sites'
networks encrypted ones that carry nothing between the nodes.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
from cryptography.fernet import Fernet
from django.conf import settings

from farm.env import env_str
from farm.errors import FarmError
from nodes import images, mariadb, platform, platform_panel
from nodes.bootstrap import Report, ensure_config, ensure_secret, secret_value
from nodes.overlay import overlay_encrypted
from nodes.swarm import FileRef, ServiceDef, apply_service, client, wait_converged

Progress = Callable[[str], None]
Runner = Callable[..., "subprocess.CompletedProcess[str]"]

PANEL_ROLE = "panel"  # the image role of the panel's recipe (nodes/images/builder/panel.py)
DATABASE = "panel"
USER = "panel"
PASSWORD_FILE = "panel-database-password"
SECRET_KEY_FILE = "panel-secret-key"
ENCRYPTION_KEY_FILE = "panel-encryption-key"
RESTIC_PASSWORD_FILE = "restic-password"
# How the containers reach MariaDB: its alias and port on farm-db (nodes/platform.py).
MARIADB_IN_SWARM = "mariadb:3306"
MIGRATE_TIMEOUT_S = 600
IMAGES_TARGET = platform_panel.IMAGES_CONFIG_TARGET
ENGINE_SERVICES = (platform_panel.WORKER, platform_panel.WATCH)
# The only engine a worker or the watcher talks to: its own manager's, bind-mounted.
ENGINE_ENV = {"DOCKER_HOST": f"unix://{platform_panel.DOCKER_SOCKET}", "FARM_DOCKER_HOSTS": ""}


class PanelStackError(FarmError):
    """The panel's stack could not be brought up on the farm."""


# -- secrets ------------------------------------------------------------------------


def stored_secret(name: str, make: Callable[[], str]) -> str:
    """The value in FARM_SECRETS_DIR/``name``, made once by ``make`` (mode 0600), like
    ``bootstrap.secret_value`` but for values of a given form (a Fernet key...)."""
    path = Path(settings.FARM_SECRETS_DIR) / name
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(make())
    return path.read_text().strip()


def database_password() -> str:
    return secret_value(PASSWORD_FILE)


def database_url(password: str, where: str) -> str:
    """``mysql://panel:…@<where>/panel``; the generated passwords are URL-safe."""
    return f"mysql://{USER}:{password}@{where}/{DATABASE}"


def host_database_url(password: str) -> str:
    """The panel's database as the host reaches the farm's MariaDB (its published port)."""
    return database_url(password, f"{settings.FARM_MARIADB_HOST}:{settings.FARM_MARIADB_PORT}")


def secret_values() -> dict[str, str]:
    """The value of every secret the panel's services mount, by its file name: the
    platform's (the same as farm_up's, so the same Swarm secrets) and the panel's own."""
    values = {name: secret_value(name) for name in platform.SECRET_FILES}
    restic = str(getattr(settings, "FARM_RESTIC_PASSWORD", "") or env_str("FARM_RESTIC_PASSWORD"))
    values[RESTIC_PASSWORD_FILE] = restic or secret_value(RESTIC_PASSWORD_FILE)
    values[SECRET_KEY_FILE] = stored_secret(SECRET_KEY_FILE, lambda: secrets.token_urlsafe(50))
    values[ENCRYPTION_KEY_FILE] = stored_secret(
        ENCRYPTION_KEY_FILE, lambda: Fernet.generate_key().decode()
    )
    values["panel-database-url"] = database_url(database_password(), MARIADB_IN_SWARM)
    return values


# -- what the containers are told ------------------------------------------------------


def farm_env(*, encrypted: bool) -> dict[str, str]:
    """What every panel container is given besides ``platform_panel``'s environment:
    the settings that shape what a worker creates, as the host has them."""
    env = {
        "FARM_OVERLAY_ENCRYPTION": "on" if encrypted else "off",
        "FARM_CPU_RESERVATION_SCALE": str(settings.FARM_CPU_RESERVATION_SCALE),
        "FARM_NETWORK_POOL": str(settings.FARM_NETWORK_POOL),
        "FARM_PUBLIC_SHARDS": str(settings.FARM_PUBLIC_SHARDS),
        "FARM_SITES_PER_SHARD": str(settings.FARM_SITES_PER_SHARD),
        "FARM_HTTP_PORT": str(settings.FARM_HTTP_PORT),
        "FARM_PREVIEW_DOMAIN": str(settings.FARM_PREVIEW_DOMAIN),
        # Alertmanager's webhook stays where farm_up points it, so the two never disagree.
        "FARM_PANEL_URL_FROM_SWARM": str(settings.FARM_PANEL_URL_FROM_SWARM),
    }
    if not encrypted:
        env |= {"FARM_ENV": "development", "DJANGO_DEBUG": "false"}
    return env


def service_defs(
    image: str, values: Mapping[str, str], *, encrypted: bool, images_config: str
) -> list[ServiceDef]:
    """``platform_panel.service_defs`` with ``farm_env`` and the image manifest for all
    three (the web's site form offers the runtimes of FARM_IMAGES' family: the local
    builds', not production's default upstream ones), and ENGINE_ENV for the worker
    and the watcher."""
    shared = farm_env(encrypted=encrypted)
    shared |= {"FARM_IMAGES": "registry", "FARM_IMAGE_MANIFEST_FILE": IMAGES_TARGET}
    manifest = FileRef(images_config, IMAGES_TARGET)
    defs = []
    for sdef in platform_panel.service_defs(image, dict(values), images_config=images_config):
        env = {**sdef.env, **shared}
        if sdef.name in ENGINE_SERVICES:
            env |= ENGINE_ENV
        configs = sdef.configs if manifest in sdef.configs else [*sdef.configs, manifest]
        defs.append(replace(sdef, env=env, configs=configs))
    return defs


# -- the steps --------------------------------------------------------------------------


def panel_image(manifest: Mapping[str, str]) -> str:
    image = manifest.get(PANEL_ROLE)
    if not image:
        raise PanelStackError(
            f"The image manifest {settings.FARM_IMAGE_MANIFEST_FILE} has no panel image: "
            "farm_up --nodes N --with-panel builds it and pushes it with the others."
        )
    return image


def ensure_database(report: Report) -> str:
    """The panel's database and user; returns the user's password."""
    password = database_password()
    done = mariadb.ensure_panel_database(name=DATABASE, user=USER, password=password)
    for line in done:
        report.changed(f"MariaDB: {line}")
    if not done:
        report.same(f"database {DATABASE}")
    return password


def _blank(text: str, password: str) -> str:
    return text.replace(password, "********") if password else text


def _manage(command: list[str], env: dict[str, str], password: str, run: Runner) -> str:
    """``manage.py <command>`` from the host against the panel's database on the farm;
    its output (the password blanked), or PanelStackError naming the command."""
    where = f"{settings.FARM_MARIADB_HOST}:{settings.FARM_MARIADB_PORT}"
    what = f"manage.py {command[0]} against {DATABASE} on {where}"
    argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *command]
    try:
        result = run(
            argv,
            env=env,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=MIGRATE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PanelStackError(
            f"{what} did not end within {MIGRATE_TIMEOUT_S} s.", retryable=True
        ) from None
    output = _blank(f"{result.stdout or ''}{result.stderr or ''}", password)
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-12:])
        raise PanelStackError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return output


def migrate(
    password: str, report: Report, progress: Progress, *, run: Runner = subprocess.run
) -> None:
    """``manage.py migrate`` against the panel's database on the farm, from the host,
    then its periodic tasks (``ensure_schedules``)."""
    where = f"{settings.FARM_MARIADB_HOST}:{settings.FARM_MARIADB_PORT}"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL_FILE"}
    env["DATABASE_URL"] = host_database_url(password)
    progress(f"migrating the panel's database {DATABASE} on {where}")
    output = _manage(["migrate", "--noinput"], env, password, run)
    applied = [line for line in output.splitlines() if line.strip().startswith("Applying ")]
    if applied:
        report.changed(f"migrated database {DATABASE}: {len(applied)} migration(s) applied")
    else:
        report.same(f"database {DATABASE} migrations")
    # The periodic tasks (node sync, reconcile, backups, RPO, alerts) the in-farm workers
    # run: without them a panel that runs only on the farm never learns its nodes.
    _manage(["ensure_schedules"], env, password, run)


def apply_services(
    cli: docker.DockerClient,
    defs: Sequence[ServiceDef],
    report: Report,
    *,
    wait_s: float,
    progress: Progress,
) -> None:
    for sdef in defs:
        outcome = apply_service(cli, sdef)
        if outcome == "unchanged":
            report.same(f"service {sdef.name}")
        else:
            report.changed(f"{outcome} service {sdef.name}")
    progress("Waiting for the panel's services to run (and the web replicas to be healthy)")
    wait_converged(
        cli,
        [s.name for s in defs],
        timeout_s=wait_s,
        replicas={s.name: s.replicas for s in defs},
        on_progress=progress,
        give_up_after_s=120,
    )


def ensure_panel(
    *,
    wait_s: float = 300,
    progress: Progress = print,
    pull_into: Mapping[str, docker.DockerClient] | None = None,
    run: Runner = subprocess.run,
) -> Report:
    """Bring the panel's stack up on the farm of the current settings (or repair it);
    see the module's docstring. ``pull_into``: engines that pull the panel's image
    first (any node may get a web replica), so a task rescheduled there never waits;
    ``run`` runs ``migrate`` (subprocess.run)."""
    report = Report()
    started = time.monotonic()
    manifest = images.read_manifest(settings.FARM_IMAGE_MANIFEST_FILE)
    image = panel_image(manifest)
    password = ensure_database(report)
    migrate(password, report, progress, run=run)
    cli = client()
    values = secret_values()
    for secret in platform_panel.secret_defs(values):
        ensure_secret(cli, secret, report)
    config = platform_panel.images_manifest(manifest)
    ensure_config(cli, config, report)
    for engine in (pull_into or {}).values():
        images.pre_pull(engine, [image], progress=progress)
    defs = service_defs(image, values, encrypted=overlay_encrypted(), images_config=config.name)
    apply_services(cli, defs, report, wait_s=wait_s, progress=progress)
    route = platform_panel.route()
    if platform_panel.write_route():
        report.changed(f"route {route.name}: Host({route.domain}) -> {route.url}")
    else:
        report.same(f"route {route.name}")
    report.timings["panel"] = time.monotonic() - started
    return report


def describe(values: Mapping[str, Any]) -> str:
    """Where the panel answers, for the command's last line."""
    edge = str(values.get("FARM_EDGE_URL") or settings.FARM_EDGE_URL)
    return f"curl -H 'Host: {settings.FARM_PANEL_HOST}' {edge.rstrip('/')}/healthz"


__all__ = [
    "ENGINE_ENV",
    "PanelStackError",
    "ensure_panel",
    "farm_env",
    "host_database_url",
    "migrate",
    "secret_values",
    "service_defs",
]
