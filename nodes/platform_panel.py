"""The panel as services of the farm it manages (docs/plans/multi-node.md D7), declared.

Three services of the ``farm/panel`` image (nodes/images, role ``panel``):

``farm_panel-web``
    gunicorn, 2 replicas, at most one per node, on the first public shard (Traefik
    reaches it there), farm-internal and farm-db. **No Docker socket and no
    DOCKER_HOST**: FARM_PROCESS_ROLE=web makes asking for a Docker client an error,
    so a page can never wait on an engine, and a web replica taken over gets no engine.
``farm_panel-worker``
    ``manage.py qcluster``, 2 replicas on managers, at most one per node. It talks to
    its own manager's engine through the bind-mounted ``/var/run/docker.sock`` and
    reads and writes the sites' files at FARM_SITES_ROOT, the same absolute path as on
    every node (GlusterFS, mounted ``rslave`` so a remount on the node reaches it).
    A dead manager's worker moves; its operation's lease (60 s) hands the work to the
    other worker.
``farm_panel-watch``
    ``manage.py watch_nodes``, 1 replica on a manager, with the socket (C12).

Secrets are Swarm secrets under /run/secrets, named like the files of
FARM_SECRETS_DIR (which points there), and the settings that have a ``*_FILE`` form
are given it. The route ``Host(FARM_PANEL_HOST)`` → ``http://farm_panel-web:8000`` goes
into the routing Redis with 2 retry attempts: with no IPVS, a name can still resolve to
a web task that just died for a few seconds.
"""

from __future__ import annotations

import json

from django.conf import settings

from nodes import routes
from nodes.platform import (
    ALERTMANAGER_TOKEN_SECRET,
    DB_NETWORK,
    INTERNAL_NETWORK,
    MARIADB_ROOT_SECRET,
    MONITORING_PASSWORD_SECRET,
    STACK,
    network_defs,
    public_network,
)
from nodes.swarm import FileRef, Health, Mount, NamedContent, ServiceDef

WEB = f"{STACK}_panel-web"
WORKER = f"{STACK}_panel-worker"
WATCH = f"{STACK}_panel-watch"
PORT = 8000
ROUTE = "farm-panel"
ROUTE_RETRY_ATTEMPTS = 2
DOCKER_SOCKET = "/var/run/docker.sock"
SECRETS_DIR = "/run/secrets"
# The image's user (nodes/images/builder/panel.py PANEL_UID): the web replicas run as it.
PANEL_UID = "10001"
IMAGES_CONFIG_TARGET = "/etc/farm/images.json"
# The image's ENTRYPOINT (tini) stays: these are its arguments.
WEB_COMMAND = tuple(f"gunicorn farm.wsgi:application -b 0.0.0.0:{PORT} -w 2 --threads 2".split())

# Secret file name (in FARM_SECRETS_DIR, and under /run/secrets in the services) ->
# (Swarm secret base name, the setting that reads it through ``<NAME>_FILE``, or "" when
# the panel reads it from FARM_SECRETS_DIR by its file name).
SECRETS: dict[str, tuple[str, str]] = {
    "panel-secret-key": ("farm_panel_secret_key", "SECRET_KEY"),
    "panel-encryption-key": ("farm_panel_encryption_key", "FARM_ENCRYPTION_KEY"),
    "panel-database-url": ("farm_panel_database_url", "DATABASE_URL"),
    "restic-password": ("farm_restic_password", "FARM_RESTIC_PASSWORD"),
    routes.PASSWORD_FILE: ("farm_routes_password", "FARM_ROUTES_PASSWORD"),
    "mariadb-root-password": (MARIADB_ROOT_SECRET, "FARM_MARIADB_ADMIN_PASSWORD"),
    "monitoring-password": (MONITORING_PASSWORD_SECRET, "FARM_MONITORING_PASSWORD"),
    "alertmanager-token": (ALERTMANAGER_TOKEN_SECRET, ""),  # the webhook's bearer token
}
# What each service is given: the web replicas serve pages and the Alertmanager webhook;
# the watcher starts operations in the database; the workers run them.
WEB_SECRETS = (
    "panel-secret-key",
    "panel-encryption-key",
    "panel-database-url",
    "alertmanager-token",
)
WATCH_SECRETS = ("panel-secret-key", "panel-encryption-key", "panel-database-url")
WORKER_SECRETS = tuple(SECRETS)


def secret_defs(values: dict[str, str]) -> list[NamedContent]:
    """Every secret the panel services mount, from the values in FARM_SECRETS_DIR (the
    platform's own have the same names as farm_up's, so they are the same secrets)."""
    missing = sorted(set(SECRETS) - set(values))
    if missing:
        raise KeyError(f"the panel's secrets need values for {', '.join(missing)}")
    return [NamedContent(base, values[file]) for file, (base, _setting) in SECRETS.items()]


def _secrets(values: dict[str, str], files: tuple[str, ...], uid: str) -> list[FileRef]:
    names = {s.base: s.name for s in secret_defs(values)}
    return [FileRef(names[SECRETS[file][0]], file, mode=0o400, uid=uid) for file in files]


def _file_settings(files: tuple[str, ...]) -> dict[str, str]:
    return {
        f"{SECRETS[file][1]}_FILE": f"{SECRETS_DIR}/{file}" for file in files if SECRETS[file][1]
    }


def route(host: str | None = None) -> routes.Route:
    """The panel's Traefik route: its host name to the web replicas."""
    return routes.Route(
        name=ROUTE,
        domain=host or settings.FARM_PANEL_HOST,
        url=f"http://{WEB}:{PORT}",
        retry_attempts=ROUTE_RETRY_ATTEMPTS,
    )


def write_route(host: str | None = None) -> bool:
    """Write the panel's route into the routing Redis; False when it was already there."""
    return routes.put(route(host))


def _common_env(host: str, https: bool) -> dict[str, str]:
    shard = next(n.subnet for n in network_defs() if n.name == public_network(1))
    scheme = "https" if https else "http"
    return {
        "FARM_ENV": "production",
        "ALLOWED_HOSTS": host,
        "SITE_URL": f"{scheme}://{host}",
        "CSRF_TRUSTED_ORIGINS": f"{scheme}://{host}",
        # Traefik reaches the web replicas on the first public shard: only it is believed
        # about the client's address and scheme.
        "FARM_TRUSTED_PROXIES": shard,
        "SECURE_SSL_REDIRECT": "true" if https else "false",
        "FARM_SECRETS_DIR": SECRETS_DIR,
        "FARM_PANEL_HOST": host,
        "FARM_STACK": str(settings.FARM_STACK),
        "FARM_QUEUE": str(settings.FARM_QUEUE),
        # The redis broker is the platform's farm_redis, on farm-internal.
        **({"REDIS_URL": "redis://redis:6379/0"} if settings.FARM_QUEUE == "redis" else {}),
    }


def _worker_env() -> dict[str, str]:
    """Where a worker finds the farm from inside the Swarm (service names on its overlays)
    and the host's paths, which are the same on every node."""
    return {
        "DOCKER_HOST": f"unix://{DOCKER_SOCKET}",
        "FARM_ROUTES_HOST": "routes",
        "FARM_ROUTES_PORT": "6379",
        "FARM_MARIADB_HOST": "mariadb",
        "FARM_MARIADB_PORT": "3306",
        "FARM_PROMETHEUS_URL": "http://prometheus:9090",
        "FARM_ALERTMANAGER_URL": "http://alertmanager:9093",
        "FARM_EDGE_URL": "http://traefik:80",
        "FARM_SITE_DB_HOST": str(settings.FARM_SITE_DB_HOST),
        "FARM_SITES_ROOT": str(settings.FARM_SITES_ROOT),
        "FARM_PROMETHEUS_TARGETS_DIR": str(settings.FARM_PROMETHEUS_TARGETS_DIR),
    }


def _engine_mounts() -> list[Mount]:
    sites = str(settings.FARM_SITES_ROOT)
    targets = str(settings.FARM_PROMETHEUS_TARGETS_DIR)
    return [
        Mount(DOCKER_SOCKET, DOCKER_SOCKET, "bind"),
        Mount(sites, sites, "bind", propagation="rslave"),
        Mount(targets, targets, "bind"),
    ]


def service_defs(
    image: str,
    secret_values: dict[str, str],
    *,
    host: str | None = None,
    https: bool = False,
    images_config: str | None = None,
) -> list[ServiceDef]:
    """The three panel services. ``images_config`` names a Swarm config holding the image
    manifest (role → image): a panel in a container cannot compute the local image map
    (it reads the host's apt sources, plan R10), so its workers read that file."""
    host = (host or settings.FARM_PANEL_HOST).strip().lower()
    common = _common_env(host, https)
    manager = ["node.role == manager"]
    # Without a manifest, the host's image mode as it is: "local" then fails loudly in a
    # worker (no apt sources to read) rather than running other images than the host's.
    images_env = {"FARM_IMAGES": str(settings.FARM_IMAGES)}
    if settings.FARM_IMAGE_OVERRIDES:
        images_env["FARM_IMAGE_OVERRIDES"] = json.dumps(settings.FARM_IMAGE_OVERRIDES)
    configs: list[FileRef] = []
    if images_config is not None:
        images_env = {"FARM_IMAGES": "registry", "FARM_IMAGE_MANIFEST_FILE": IMAGES_CONFIG_TARGET}
        configs = [FileRef(images_config, IMAGES_CONFIG_TARGET)]
    web = ServiceDef(
        name=WEB,
        image=image,
        stack=STACK,
        args=list(WEB_COMMAND),
        env={**common, **_file_settings(WEB_SECRETS), "FARM_PROCESS_ROLE": "web"},
        secrets=_secrets(secret_values, WEB_SECRETS, PANEL_UID),
        networks={public_network(1): [], INTERNAL_NETWORK: [], DB_NETWORK: []},
        replicas=2,
        max_replicas_per_node=1,
        cpu_limit=1.0,
        mem_limit_mb=384,
        cpu_reservation=0.1,
        mem_reservation_mb=192,
        health=Health(
            ("CMD", "busybox", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PORT}/healthz"),
            interval_s=30,
            start_period_s=30,
        ),
        stop_grace_s=20,
    )
    worker = ServiceDef(
        name=WORKER,
        image=image,
        stack=STACK,
        args=["python3", "manage.py", "qcluster"],
        env={
            **common,
            **_worker_env(),
            **images_env,
            **_file_settings(WORKER_SECRETS),
            "FARM_PROCESS_ROLE": "worker",
        },
        secrets=_secrets(secret_values, WORKER_SECRETS, "0"),
        configs=configs,
        mounts=_engine_mounts(),
        networks={INTERNAL_NETWORK: [], DB_NETWORK: []},
        constraints=manager,
        replicas=2,
        max_replicas_per_node=1,
        user="0",  # the engine's socket and the sites' files (www-data's) are root's to use
        cpu_limit=1.0,
        mem_limit_mb=768,
        cpu_reservation=0.1,
        mem_reservation_mb=256,
        health=Health.DISABLED,  # the image's check asks gunicorn, which a worker is not
        # An operation's step may be mid-way: give qcluster time to stop its workers.
        stop_grace_s=60,
    )
    watch = ServiceDef(
        name=WATCH,
        image=image,
        stack=STACK,
        args=["python3", "manage.py", "watch_nodes"],
        env={
            **common,
            "DOCKER_HOST": f"unix://{DOCKER_SOCKET}",
            **_file_settings(WATCH_SECRETS),
            "FARM_PROCESS_ROLE": "worker",
        },
        secrets=_secrets(secret_values, WATCH_SECRETS, "0"),
        mounts=[Mount(DOCKER_SOCKET, DOCKER_SOCKET, "bind")],
        networks={INTERNAL_NETWORK: [], DB_NETWORK: []},
        constraints=manager,
        replicas=1,
        user="0",
        cpu_limit=0.5,
        mem_limit_mb=256,
        mem_reservation_mb=96,
        health=Health.DISABLED,
        stop_grace_s=10,
    )
    return [web, worker, watch]


def images_manifest(images: dict[str, str]) -> NamedContent:
    """The image manifest as a Swarm config (``images_config`` of :func:`service_defs`)."""
    return NamedContent("farm_panel_images", json.dumps(images, sort_keys=True, indent=2) + "\n")
