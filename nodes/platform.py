"""The platform services of a farm, declared: networks, secrets, configs, services.

Everything here is data (what should exist); ``nodes.bootstrap`` makes the
Swarm match it. The shape follows the reference design on one or many nodes:
Traefik on edge managers with host-mode ports, MariaDB on the db node with a
bind-mounted datadir, Redis, Prometheus scraping Traefik and the blackbox
exporter, Alertmanager sending to the panel's webhook.

Config files are JSON (a subset of YAML, which Prometheus and Alertmanager
read) and Docker configs are named by the hash of their content: configs are
immutable, so a changed file becomes a new config and the service update
rolls the task over to it.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field

import bcrypt
from django.conf import settings

from nodes.images import image_for
from nodes.swarm import FileRef, Health, Mount, NamedContent, Port, ServiceDef

STACK = "farm"
DB_NETWORK = "farm-db"
INTERNAL_NETWORK = "farm-internal"
MARIADB_ROOT_SECRET = "farm_mariadb_root"
ALERTMANAGER_TOKEN_SECRET = "farm_alertmanager_token"
# Prometheus and Alertmanager answer only with HTTP basic auth: the password (for
# Prometheus's own calls and the health checks) and the web config with its bcrypt hash.
MONITORING_PASSWORD_SECRET = "farm_monitoring_password"
MONITORING_WEB_SECRET = "farm_monitoring_web"
MONITORING_PASSWORD_FILE = "/run/secrets/monitoring-password"
MONITORING_WEB_FILE = "/run/secrets/monitoring-web.yml"
PROMETHEUS_VOLUME = "farm_prometheus-data"
ALERTMANAGER_VOLUME = "farm_alertmanager-data"
ROLE_LABELS = ("edge", "worker", "db")


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
    nets = [
        NetworkDef(DB_NETWORK, str(subnets[0]), encrypted=True),
        NetworkDef(INTERNAL_NETWORK, str(subnets[1]), encrypted=True),
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


def _yaml(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _monitoring_auth() -> dict[str, str]:
    """How Prometheus authenticates to itself and to Alertmanager."""
    return {"username": settings.FARM_MONITORING_USER, "password_file": MONITORING_PASSWORD_FILE}


def prometheus_config() -> NamedContent:
    # The blackbox module "http_site" counts any answer of the site itself as up (the
    # install screen's 302 too) and does not follow redirects: a *.localhost Location
    # would resolve to the prober itself.
    site_probe = {
        "job_name": "sites",
        "metrics_path": "/probe",
        "params": {"module": ["http_site"]},
        "file_sd_configs": [
            {"files": ["/etc/prometheus/targets/*.json"], "refresh_interval": "30s"}
        ],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["site_url"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": "blackbox:9115"},
        ],
    }
    config = {
        "global": {
            "scrape_interval": "15s",
            "evaluation_interval": "15s",
            "external_labels": {"farm": settings.FARM_STACK},
        },
        "alerting": {
            "alertmanagers": [
                {
                    "static_configs": [{"targets": ["alertmanager:9093"]}],
                    "basic_auth": _monitoring_auth(),
                }
            ]
        },
        "rule_files": ["/etc/prometheus/rules.yml"],
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": ["localhost:9090"]}],
                "basic_auth": _monitoring_auth(),
            },
            {"job_name": "traefik", "static_configs": [{"targets": ["traefik:8082"]}]},
            {"job_name": "blackbox", "static_configs": [{"targets": ["blackbox:9115"]}]},
            {
                "job_name": "alertmanager",
                "static_configs": [{"targets": ["alertmanager:9093"]}],
                "basic_auth": _monitoring_auth(),
            },
            site_probe,
        ],
    }
    return NamedContent("farm_prometheus", _yaml(config))


def prometheus_rules() -> NamedContent:
    rules = {
        "groups": [
            {
                "name": "farm",
                "rules": [
                    {
                        "alert": "SiteDown",
                        "expr": 'probe_success{job="sites"} == 0',
                        "for": "2m",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "{{ $labels.instance }} is not answering",
                            "description": "The blackbox HTTP probe has failed for 2 minutes.",
                        },
                    },
                    {
                        "alert": "TraefikDown",
                        "expr": 'up{job="traefik"} == 0',
                        "for": "1m",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": "Traefik does not answer its metrics scrape"},
                    },
                ],
            }
        ]
    }
    return NamedContent("farm_prometheus_rules", _yaml(rules))


def alertmanager_config() -> NamedContent:
    config = {
        "route": {
            "receiver": "panel",
            "group_by": ["alertname", "instance"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "panel",
                "webhook_configs": [
                    {
                        "url": f"{settings.FARM_PANEL_URL_FROM_SWARM.rstrip('/')}"
                        "/alerts/webhook/alertmanager/",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": "/run/secrets/alertmanager-token",
                            }
                        },
                    }
                ],
            }
        ],
    }
    return NamedContent("farm_alertmanager", _yaml(config))


def monitoring_web_config(password: str) -> NamedContent:
    """The web config (``--web.config.file``) of Prometheus and Alertmanager: basic auth
    for one user. The bcrypt salt is derived from the password, so the same password
    gives the same file (and farm_up a second time changes nothing); the password is
    24 random bytes (secrets.token_urlsafe), which is what protects it, not the salt."""
    digest = hashlib.sha256(b"farm-monitoring-web:" + password.encode()).digest()[:16]
    salt = b"$2b$10$" + _bcrypt_b64(digest)
    hashed = bcrypt.hashpw(password.encode(), salt).decode()
    return NamedContent(
        MONITORING_WEB_SECRET, _yaml({"basic_auth_users": {settings.FARM_MONITORING_USER: hashed}})
    )


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT_B64 = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _bcrypt_b64(raw: bytes) -> bytes:
    """bcrypt's base64: the standard bit layout in its own alphabet, no padding."""
    return base64.b64encode(raw).rstrip(b"=").translate(bytes.maketrans(_B64, _BCRYPT_B64))


def config_defs() -> list[NamedContent]:
    return [prometheus_config(), prometheus_rules(), alertmanager_config()]


def _svc(name: str) -> str:
    return f"{STACK}_{name}"


def secret_defs(values: dict[str, str]) -> list[NamedContent]:
    """The platform's secrets, from their values (kept in FARM_SECRETS_DIR)."""
    return [
        NamedContent(MARIADB_ROOT_SECRET, values["mariadb-root-password"]),
        NamedContent(ALERTMANAGER_TOKEN_SECRET, values["alertmanager-token"]),
        NamedContent(MONITORING_PASSWORD_SECRET, values["monitoring-password"]),
        monitoring_web_config(values["monitoring-password"]),
    ]


SECRET_FILES = ("mariadb-root-password", "alertmanager-token", "monitoring-password")


def service_defs(secret_values: dict[str, str]) -> list[ServiceDef]:
    configs = {c.base: c.name for c in config_defs()}
    secret_names = {s.base: s.name for s in secret_defs(secret_values)}
    edge = [f"node.labels.{role_label('edge')} == true", "node.role == manager"]
    db_node = [f"node.labels.{role_label('db')} == true"]
    http_health = ("CMD", "busybox", "wget", "-q", "-O", "/dev/null")
    # Prometheus and Alertmanager want basic auth on every path, /-/healthy too.
    authed_health = ("CMD", "/usr/local/bin/farm-web-healthcheck")
    internal_subnet = next(n.subnet for n in network_defs() if n.name == INTERNAL_NETWORK)
    monitoring_secrets = [
        FileRef(secret_names[MONITORING_PASSWORD_SECRET], "monitoring-password", mode=0o444),
        FileRef(secret_names[MONITORING_WEB_SECRET], "monitoring-web.yml", mode=0o444),
    ]
    traefik = ServiceDef(
        name=_svc("traefik"),
        image=image_for("traefik"),
        stack=STACK,
        args=[
            "--providers.swarm=true",
            "--providers.swarm.endpoint=unix:///var/run/docker.sock",
            "--providers.swarm.exposedByDefault=false",
            f"--providers.swarm.network={public_network(1)}",
            "--providers.swarm.refreshSeconds=2",
            "--entryPoints.web.address=:80",
            "--entryPoints.websecure.address=:443",
            "--entryPoints.metrics.address=:8082",
            "--metrics.prometheus=true",
            "--metrics.prometheus.entryPoint=metrics",
            # The metrics entry point listens on every network Traefik is on, the
            # public shards that every site's nginx joins too: its router (labels
            # below) lets only farm-internal (Prometheus) in.
            "--metrics.prometheus.manualRouting=true",
            "--accessLog=true",
            "--accessLog.format=json",
            "--api.dashboard=false",
            "--ping=true",
            "--log.level=INFO",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
        ],
        # Traefik reads its static config from flags or env, not both: the server
        # gets --ping=true above, the health check command this variable.
        env={"TRAEFIK_PING": "true"},
        labels={
            "traefik.enable": "true",
            "traefik.http.routers.farm-metrics.rule": "PathPrefix(`/metrics`)",
            "traefik.http.routers.farm-metrics.entrypoints": "metrics",
            "traefik.http.routers.farm-metrics.service": "prometheus@internal",
            "traefik.http.routers.farm-metrics.middlewares": "farm-internal-only",
            "traefik.http.middlewares.farm-internal-only.ipallowlist.sourcerange": internal_subnet,
            # A service with a port, or the Swarm provider skips this service whole.
            "traefik.http.services.farm-metrics.loadbalancer.server.port": "8082",
        },
        networks={**{net: ["traefik"] for net in public_networks()}, INTERNAL_NETWORK: ["traefik"]},
        ports=[Port(settings.FARM_HTTP_PORT, 80), Port(settings.FARM_HTTPS_PORT, 443)],
        mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", "bind", read_only=True)],
        constraints=edge,
        cpu_limit=1.0,
        mem_limit_mb=256,
        cpu_reservation=0.1,
        mem_reservation_mb=64,
        health=Health(
            ("CMD", "/traefik", "healthcheck", "--ping"), interval_s=5, start_period_s=10
        ),
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
        health=Health(
            ("CMD", "/usr/local/bin/healthcheck.sh", "--connect"),
            interval_s=5,
            retries=10,
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
        cpu_limit=0.5,
        mem_limit_mb=128,
        mem_reservation_mb=64,
        health=Health(("CMD", "redis-cli", "ping"), interval_s=5),
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
        env={"FARM_MONITORING_USER": settings.FARM_MONITORING_USER},
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
        constraints=[f"node.labels.{role_label('edge')} == true"],
        cpu_limit=1.0,
        mem_limit_mb=512,
        mem_reservation_mb=128,
        health=Health((*authed_health, "http://127.0.0.1:9090/-/healthy"), interval_s=5),
    )
    blackbox = ServiceDef(
        name=_svc("blackbox"),
        image=image_for("blackbox"),
        stack=STACK,
        # farm-internal only: it probes sites through Traefik, and its /probe (which
        # fetches any URL it is given) is no one else's to use.
        networks={INTERNAL_NETWORK: ["blackbox"]},
        cpu_limit=0.25,
        mem_limit_mb=64,
        mem_reservation_mb=32,
        health=Health((*http_health, "http://127.0.0.1:9115/-/healthy"), interval_s=5),
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
        env={"FARM_MONITORING_USER": settings.FARM_MONITORING_USER},
        mounts=[Mount(ALERTMANAGER_VOLUME, "/alertmanager")],
        networks={INTERNAL_NETWORK: ["alertmanager"]},
        ports=[Port(settings.FARM_ALERTMANAGER_PORT, 9093)],
        cpu_limit=0.25,
        mem_limit_mb=128,
        mem_reservation_mb=32,
        health=Health((*authed_health, "http://127.0.0.1:9093/-/healthy"), interval_s=5),
    )
    return [mariadb, redis, traefik, prometheus, blackbox, alertmanager]
