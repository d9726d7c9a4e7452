"""The platform services of a farm, declared: networks, secrets, configs, services.

Everything here is data (what should exist); ``nodes.bootstrap`` makes the
Swarm match it. The shape follows the reference design on one or many nodes:
Traefik on edge managers with host-mode ports, MariaDB on the db node with a
bind-mounted datadir, Redis, Prometheus scraping Traefik and the blackbox
exporter, Alertmanager sending to the panel's webhook, and the routing Redis
Traefik reads the sites' routes from (``nodes.routes`` writes them). The config
files themselves are in ``nodes.platform_config``.

Health checks run every 30 s (no more often), in exec form, and none starts a
shell: an idle farm spends next to nothing on them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from django.conf import settings

from nodes import routes
from nodes.images import image_for, recipes
from nodes.overlay import overlay_encrypted
from nodes.platform_config import (
    MONITORING_WEB_FILE,
    MONITORING_WEB_SECRET,
    ROUTES_ALIAS,
    ROUTES_REDIS_FILE,
    ROUTES_REDIS_SECRET,
    TRAEFIK_DYNAMIC_CONFIG,
    TRAEFIK_DYNAMIC_FILE,
    TRAEFIK_STATIC_FILE,
    TRAEFIK_STATIC_SECRET,
    alertmanager_config,
    monitoring_web_config,
    prometheus_config,
    prometheus_rules,
    routes_redis_config,
    traefik_dynamic_config,
    traefik_static_config,
)
from nodes.swarm import FileRef, Health, Mount, NamedContent, Port, ServiceDef

STACK = "farm"
DB_NETWORK = "farm-db"
INTERNAL_NETWORK = "farm-internal"
MARIADB_ROOT_SECRET = "farm_mariadb_root"
ALERTMANAGER_TOKEN_SECRET = "farm_alertmanager_token"
# Prometheus and Alertmanager answer only with HTTP basic auth: the password (for
# Prometheus's own calls and the health checks) and the web config with its bcrypt hash.
MONITORING_PASSWORD_SECRET = "farm_monitoring_password"
PROMETHEUS_VOLUME = "farm_prometheus-data"
ALERTMANAGER_VOLUME = "farm_alertmanager-data"
ROUTES_VOLUME = "farm_routes-data"
VOLUMES = (PROMETHEUS_VOLUME, ALERTMANAGER_VOLUME, ROUTES_VOLUME)  # farm_down removes them
# A platform health check runs at most this often (the sites' services have none).
HEALTH_INTERVAL_S = 30
ROLE_LABELS = ("edge", "worker", "db")
# The multi-node farm's private registry (docs/plans/multi-node.md, D3): every node's
# engine pulls from 127.0.0.1:5000, its own node's task, so it runs everywhere.
REGISTRY_PORT = 5000
# On each node: a bind of one host volume shared by every node, so a blob pushed through
# one task is there for all (content-addressed: concurrent writers agree).
REGISTRY_STORAGE_DIR = "/srv/farm-registry"
REGISTRY_DATA_PATH = "/var/lib/docker-registry"  # the farm/registry image's storage


def role_label(role: str) -> str:
    return f"farm.role.{role}"


def public_network(shard: int) -> str:
    return f"traefik-public-{shard}"


def public_networks() -> list[str]:
    return [public_network(n) for n in range(1, settings.FARM_PUBLIC_SHARDS + 1)]


@dataclass(frozen=True)
class NetworkDef:
    name: str
    subnet: str
    encrypted: bool
    labels: dict[str, str] = field(default_factory=dict)


def network_defs() -> list[NetworkDef]:
    """farm-db and farm-internal take the first two /24s of the pool, the public
    shards the next ones (explicit subnets, so shards never collide with the
    networks Docker allocates for sites)."""
    pool = ipaddress.ip_network(settings.FARM_NETWORK_POOL)
    subnets = list(pool.subnets(new_prefix=24))
    needed = 2 + settings.FARM_PUBLIC_SHARDS
    if len(subnets) < needed:
        raise ValueError(
            f"FARM_NETWORK_POOL {pool} has room for {len(subnets)} /24s, {needed} are needed."
        )
    encrypted = overlay_encrypted()  # FARM_OVERLAY_ENCRYPTION; the public shards never are
    nets = [
        NetworkDef(DB_NETWORK, str(subnets[0]), encrypted=encrypted),
        NetworkDef(INTERNAL_NETWORK, str(subnets[1]), encrypted=encrypted),
    ]
    for shard in range(1, settings.FARM_PUBLIC_SHARDS + 1):
        nets.append(
            NetworkDef(
                public_network(shard),
                str(subnets[1 + shard]),
                encrypted=False,
                labels={"farm.public-shard": str(shard)},
            )
        )
    return nets


def internal_subnet() -> str:
    return next(n.subnet for n in network_defs() if n.name == INTERNAL_NETWORK)


def config_defs() -> list[NamedContent]:
    return [
        prometheus_config(),
        prometheus_rules(),
        alertmanager_config(),
        traefik_dynamic_config(internal_subnet()),
    ]


def _svc(name: str) -> str:
    return f"{STACK}_{name}"


def secret_defs(values: dict[str, str]) -> list[NamedContent]:
    """The platform's secrets, from their values (kept in FARM_SECRETS_DIR)."""
    return [
        NamedContent(MARIADB_ROOT_SECRET, values["mariadb-root-password"]),
        NamedContent(ALERTMANAGER_TOKEN_SECRET, values["alertmanager-token"]),
        NamedContent(MONITORING_PASSWORD_SECRET, values["monitoring-password"]),
        monitoring_web_config(values["monitoring-password"]),
        traefik_static_config(values[routes.PASSWORD_FILE]),
        routes_redis_config(values[routes.PASSWORD_FILE]),
    ]


SECRET_FILES = (
    "mariadb-root-password",
    "alertmanager-token",
    "monitoring-password",
    routes.PASSWORD_FILE,
)


def _health(*test: str, start_period_s: float = 20, retries: int = 3) -> Health:
    return Health(
        ("CMD", *test),
        interval_s=HEALTH_INTERVAL_S,
        retries=retries,
        start_period_s=start_period_s,
    )


def _listening(port: int) -> Health:
    """Something accepts TCP connections on ``port`` (busybox nc, then true: no shell).
    Prometheus and Alertmanager want basic auth on every path, /-/healthy too; their
    own scrapes (up{job=...}) are the deeper check."""
    return _health("busybox", "nc", "-w", "3", "127.0.0.1", str(port), "-e", "true")


def service_defs(secret_values: dict[str, str]) -> list[ServiceDef]:
    configs = {c.base: c.name for c in config_defs()}
    secret_names = {s.base: s.name for s in secret_defs(secret_values)}
    edge = [f"node.labels.{role_label('edge')} == true", "node.role == manager"]
    db_node = [f"node.labels.{role_label('db')} == true"]
    monitoring_secrets = [
        FileRef(secret_names[MONITORING_PASSWORD_SECRET], "monitoring-password", mode=0o444),
        FileRef(secret_names[MONITORING_WEB_SECRET], "monitoring-web.yml", mode=0o444),
    ]
    traefik = ServiceDef(
        name=_svc("traefik"),
        image=image_for("traefik"),
        stack=STACK,
        # Everything is in the static file (a secret: it holds the routing Redis's
        # password); Traefik reads a file or flags, not both.
        args=[f"--configFile={TRAEFIK_STATIC_FILE}"],
        secrets=[FileRef(secret_names[TRAEFIK_STATIC_SECRET], "traefik.yml", mode=0o400)],
        configs=[FileRef(configs[TRAEFIK_DYNAMIC_CONFIG], TRAEFIK_DYNAMIC_FILE)],
        networks={**{net: ["traefik"] for net in public_networks()}, INTERNAL_NETWORK: ["traefik"]},
        ports=[Port(settings.FARM_HTTP_PORT, 80), Port(settings.FARM_HTTPS_PORT, 443)],
        # One on every edge manager (host-mode ports: each answers on its own node).
        global_mode=True,
        constraints=edge,
        cpu_limit=1.0,
        mem_limit_mb=256,
        cpu_reservation=0.1,
        mem_reservation_mb=64,
        # The check's own flags: ping on the default "traefik" entry point (:8080).
        health=_health("/traefik", "healthcheck", "--ping", start_period_s=10),
    )
    routes_redis = ServiceDef(
        name=_svc("routes"),
        image=image_for("redis"),
        stack=STACK,
        # Every route is kept (an append-only file on a volume, fsync every second)
        # and never evicted; keyspace notifications tell each Traefik of a change.
        args=[
            "--include",
            ROUTES_REDIS_FILE,
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory",
            "96mb",
            "--maxmemory-policy",
            "noeviction",
            "--notify-keyspace-events",
            "K$g",
            "--hz",
            "10",
        ],
        secrets=[FileRef(secret_names[ROUTES_REDIS_SECRET], "routes-redis.conf", mode=0o444)],
        mounts=[Mount(ROUTES_VOLUME, "/data")],
        networks={INTERNAL_NETWORK: [ROUTES_ALIAS]},
        # For the panel, like MariaDB's; tenant code reaches host ports too, so it is
        # never without its password (requirepass).
        ports=[Port(settings.FARM_ROUTES_PORT, 6379)],
        # Pinned like MariaDB: its append-only file is on a node-local volume, and the
        # panel reaches it on that node's published port.
        constraints=db_node,
        cpu_limit=0.5,
        mem_limit_mb=128,
        mem_reservation_mb=32,
        # PING answers NOAUTH without the password, which still proves it is up.
        health=_health("redis-cli", "ping", start_period_s=10),
    )
    mariadb = ServiceDef(
        name=_svc("mariadb"),
        image=image_for("mariadb"),
        stack=STACK,
        args=["mariadbd", "--max-connections=600", "--innodb-buffer-pool-size=256M"],
        env={"MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/mariadb-root", "MARIADB_ROOT_HOST": "%"},
        secrets=[FileRef(secret_names[MARIADB_ROOT_SECRET], "mariadb-root", mode=0o400)],
        networks={DB_NETWORK: ["mariadb"]},
        ports=[Port(settings.FARM_MARIADB_PORT, 3306)],
        mounts=[Mount(settings.FARM_MARIADB_DATA, "/var/lib/mysql", "bind")],
        constraints=db_node,
        cpu_limit=1.0,
        mem_limit_mb=1024,
        cpu_reservation=0.25,
        mem_reservation_mb=512,
        # mariadb-admin ping answers 0 while the server accepts connections (an
        # "access denied" too); the entry point's privilege-less user keeps the log quiet.
        health=_health(
            "mariadb-admin",
            "--defaults-file=/var/lib/mysql/.my-healthcheck.cnf",
            "ping",
            "--protocol=tcp",
            "-h",
            "127.0.0.1",
            "--connect-timeout=3",
            retries=5,
            start_period_s=60,
        ),
        stop_grace_s=60,
    )
    redis = ServiceDef(
        name=_svc("redis"),
        image=image_for("redis"),
        stack=STACK,
        command=None,
        args=["--maxmemory", "96mb", "--maxmemory-policy", "allkeys-lru"],
        networks={INTERNAL_NETWORK: ["redis"]},
        constraints=db_node,
        cpu_limit=0.5,
        mem_limit_mb=128,
        mem_reservation_mb=64,
        health=_health("redis-cli", "ping", start_period_s=10),
    )
    prometheus = ServiceDef(
        name=_svc("prometheus"),
        image=image_for("prometheus"),
        stack=STACK,
        args=[
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--storage.tsdb.retention.time=15d",
            # No --web.enable-lifecycle: file_sd targets are re-read by themselves
            # and a new config is a new task; /-/quit and /-/reload stay off.
            f"--web.config.file={MONITORING_WEB_FILE}",
        ],
        configs=[
            FileRef(configs["farm_prometheus"], "/etc/prometheus/prometheus.yml"),
            FileRef(configs["farm_prometheus_rules"], "/etc/prometheus/rules.yml"),
        ],
        secrets=monitoring_secrets,
        mounts=[
            Mount(PROMETHEUS_VOLUME, "/prometheus"),
            Mount(
                str(settings.FARM_PROMETHEUS_TARGETS_DIR),
                "/etc/prometheus/targets",
                "bind",
                read_only=True,
            ),
        ],
        networks={INTERNAL_NETWORK: ["prometheus"]},
        ports=[Port(settings.FARM_PROMETHEUS_PORT, 9090)],
        # Its TSDB is a node-local volume: pinned to the db node, like the other singletons.
        constraints=db_node,
        cpu_limit=1.0,
        mem_limit_mb=512,
        mem_reservation_mb=128,
        health=_listening(9090),
    )
    blackbox = ServiceDef(
        name=_svc("blackbox"),
        image=image_for("blackbox"),
        stack=STACK,
        # farm-internal only: it probes sites through Traefik, and its /probe (which
        # fetches any URL it is given) is no one else's to use.
        networks={INTERNAL_NETWORK: ["blackbox"]},
        constraints=db_node,
        cpu_limit=0.25,
        mem_limit_mb=64,
        mem_reservation_mb=32,
        health=_health(
            "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9115/-/healthy"
        ),
    )
    alertmanager = ServiceDef(
        name=_svc("alertmanager"),
        image=image_for("alertmanager"),
        stack=STACK,
        args=[
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "--storage.path=/alertmanager",
            "--cluster.listen-address=",
            f"--web.config.file={MONITORING_WEB_FILE}",
        ],
        configs=[FileRef(configs["farm_alertmanager"], "/etc/alertmanager/alertmanager.yml")],
        secrets=[
            FileRef(secret_names[ALERTMANAGER_TOKEN_SECRET], "alertmanager-token", mode=0o444),
            *monitoring_secrets,
        ],
        mounts=[Mount(ALERTMANAGER_VOLUME, "/alertmanager")],
        networks={INTERNAL_NETWORK: ["alertmanager"]},
        ports=[Port(settings.FARM_ALERTMANAGER_PORT, 9093)],
        constraints=db_node,
        cpu_limit=0.25,
        mem_limit_mb=128,
        mem_reservation_mb=32,
        health=_listening(9093),
    )
    return [mariadb, redis, routes_redis, traefik, prometheus, blackbox, alertmanager]


def registry_def(image: str | None = None) -> ServiceDef:
    """``farm_registry``: the private registry, one task on every node (global) with its
    port published in host mode, so 127.0.0.1:5000 on any node is that node's own task
    (no routing mesh here). Deployed by the multi-node farm only, never by the
    single-node ``farm_up`` (not in ``service_defs``).

    ``image`` defaults to the local ``farm/registry:<hash>`` tag: the registry's own
    image cannot come from the registry, so it is side-loaded into each node's engine.
    """
    return ServiceDef(
        name=_svc("registry"),
        image=image or recipes()["registry"].content_tag(),
        stack=STACK,
        ports=[Port(REGISTRY_PORT, REGISTRY_PORT)],
        mounts=[Mount(REGISTRY_STORAGE_DIR, REGISTRY_DATA_PATH, "bind")],
        global_mode=True,
        cpu_limit=0.5,
        mem_limit_mb=256,
        mem_reservation_mb=32,
        # GET /v2/ is 200 without credentials once the registry serves (exec form, no shell).
        health=_health(
            "busybox",
            "wget",
            "-q",
            "-O-",
            f"http://127.0.0.1:{REGISTRY_PORT}/v2/",
            start_period_s=10,
        ),
    )
