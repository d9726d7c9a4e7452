"""The platform's configuration files, as data: Prometheus, Alertmanager, Traefik.

Config files are JSON (a subset of YAML, which Prometheus, Alertmanager and Traefik
read) and Docker configs and secrets are named by the hash of their content: they
are immutable, so a changed file becomes a new object and the service update rolls
the task over to it. ``nodes.platform`` mounts them.
"""

from __future__ import annotations

import base64
import hashlib
import json

import bcrypt
from django.conf import settings

from nodes import routes
from nodes.swarm import NamedContent

MONITORING_WEB_SECRET = "farm_monitoring_web"
MONITORING_PASSWORD_FILE = "/run/secrets/monitoring-password"
MONITORING_WEB_FILE = "/run/secrets/monitoring-web.yml"
TRAEFIK_STATIC_SECRET = "farm_traefik_static"
TRAEFIK_STATIC_FILE = "/run/secrets/traefik.yml"
TRAEFIK_DYNAMIC_CONFIG = "farm_traefik_dynamic"
TRAEFIK_DYNAMIC_FILE = "/etc/traefik/dynamic.yml"
ROUTES_REDIS_SECRET = "farm_routes_redis"
ROUTES_REDIS_FILE = "/run/secrets/routes-redis.conf"
ROUTES_ALIAS = "routes"  # the routing Redis on farm-internal, as Traefik reaches it
# How often Prometheus probes each site's front page (through Traefik, WordPress and
# its database): a minute keeps SiteDown (for: 2m) true for a broken site at one PHP
# request per site per minute.
SITE_PROBE_INTERVAL = "60s"


def _yaml(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _monitoring_auth() -> dict[str, str]:
    """How Prometheus authenticates to itself and to Alertmanager."""
    return {"username": settings.FARM_MONITORING_USER, "password_file": MONITORING_PASSWORD_FILE}


def prometheus_config() -> NamedContent:
    # The blackbox module "http_site" asks for the site's front page (WordPress and its
    # database answer it) and counts any answer of the site itself as up (the install
    # screen's 302 too); it does not follow redirects: a *.localhost Location would
    # resolve to the prober itself.
    site_probe = {
        "job_name": "sites",
        "scrape_interval": SITE_PROBE_INTERVAL,
        "scrape_timeout": "15s",
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
            {
                "job_name": "traefik",
                "scrape_interval": "30s",
                "static_configs": [{"targets": ["traefik:8082"]}],
            },
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


def traefik_static_config(routes_password: str) -> NamedContent:
    """Traefik's static configuration, a secret (it holds the routing Redis's password).

    Site routes come from the routing Redis (the KV provider, told of each change by
    keyspace notifications); the farm's own router (metrics) from a file. No Docker
    provider: Traefik needs no Docker socket and makes no Docker API call."""
    config = {
        "entryPoints": {
            "web": {"address": ":80"},
            "websecure": {"address": ":443"},
            "metrics": {"address": ":8082"},
            "traefik": {"address": ":8080"},
        },
        "providers": {
            "redis": {
                "endpoints": [f"{ROUTES_ALIAS}:6379"],
                "rootKey": routes.ROOT,
                "password": routes_password,
            },
            "file": {"filename": TRAEFIK_DYNAMIC_FILE},
        },
        # The metrics entry point listens on every network Traefik is on, the public
        # shards that every site's nginx joins too: its router (the file below) lets
        # only farm-internal (Prometheus) in.
        "metrics": {"prometheus": {"entryPoint": "metrics", "manualRouting": True}},
        # A site's nginx answers a SYN in well under a millisecond on its shard: a dial
        # that takes a second has hit a task that is not there (yet); give up on it,
        # and the route's retry middleware tries again on a new connection.
        "serversTransport": {"forwardingTimeouts": {"dialTimeout": "1s"}},
        "accessLog": {"format": "json"},
        "ping": {"entryPoint": "traefik"},  # :8080 answers /ping and nothing else (no API)
        "log": {"level": "INFO"},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }
    return NamedContent(TRAEFIK_STATIC_SECRET, _yaml(config))


def traefik_dynamic_config(internal_subnet: str) -> NamedContent:
    """The farm's own router: Prometheus (on farm-internal) scrapes Traefik's metrics."""
    config = {
        "http": {
            "routers": {
                "farm-metrics": {
                    "rule": "PathPrefix(`/metrics`)",
                    "entryPoints": ["metrics"],
                    "service": "prometheus@internal",
                    "middlewares": ["farm-internal-only"],
                }
            },
            "middlewares": {
                "farm-internal-only": {"ipAllowList": {"sourceRange": [internal_subnet]}}
            },
        }
    }
    return NamedContent(TRAEFIK_DYNAMIC_CONFIG, _yaml(config))


def routes_redis_config(routes_password: str) -> NamedContent:
    """The routing Redis's password, as a config file it includes (a secret)."""
    return NamedContent(ROUTES_REDIS_SECRET, f"requirepass {routes_password}\n")
