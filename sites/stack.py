"""A site's Swarm stack, declared: network, secrets, configs and three services.

``SiteStackSpec`` is pure data derived from a Site row (plus its secrets);
``sites.swarm_site`` makes the Swarm match it. The php-fpm service sits only
on the site's own encrypted network, so no other site can reach its FastCGI
port or its Redis; nginx joins that network and one public shard, where
Traefik reaches it by name (its route is in the routing Redis, ``nodes.routes``).

No site service has a Docker health check (``Health.DISABLED``: the images carry
one): on Engine 20.10 a task waits one whole interval for its first check, so a
30-s check would hold every new site back 30 s, and a 2-s one costs an ``exec``
per service every 2 s for ever. Swarm restarts a process that exits; the panel
decides a new site is ready by asking for its install screen through Traefik,
and Prometheus probes every site's front page once a minute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings

from nodes.capacity import SITE_SERVICES
from nodes.images import SiteRuntime, image_for, site_runtime
from nodes.platform import role_label
from nodes.routes import Backend, Route
from nodes.swarm import FileRef, Health, Mount, NamedContent, ServiceDef
from sites.wordpress import nginx_site_conf, wp_config_php

if TYPE_CHECKING:
    from sites.models import Site

WWW_DATA_UID = 33
SALT_KEYS = (
    "AUTH_KEY",
    "SECURE_AUTH_KEY",
    "LOGGED_IN_KEY",
    "NONCE_KEY",
    "AUTH_SALT",
    "SECURE_AUTH_SALT",
    "LOGGED_IN_SALT",
    "NONCE_SALT",
)


@dataclass
class SiteStackSpec:
    site_id: int
    domain: str
    stack: str
    network: str
    shard_network: str
    site_dir: str
    runtime: SiteRuntime
    cache_enabled: bool
    db_password: NamedContent
    salts: NamedContent
    wp_config: NamedContent
    nginx_conf: NamedContent
    services: list[ServiceDef] = field(default_factory=list)
    # Traefik's routes to it: the site's own, and the maintenance page's while it is on.
    routes: list[Route] = field(default_factory=list)

    @property
    def secrets(self) -> list[NamedContent]:
        return [self.db_password, self.salts]

    @property
    def configs(self) -> list[NamedContent]:
        return [self.wp_config, self.nginx_conf]

    @property
    def service_names(self) -> list[str]:
        return [s.name for s in self.services]


def stack_name(site_id: int) -> str:
    return f"wp-{site_id}"


def network_name(site_id: int) -> str:
    return f"{stack_name(site_id)}_net"


def site_dir(site_id: int) -> str:
    return str(settings.FARM_SITES_ROOT / stack_name(site_id))


MAINTENANCE_PRIORITY = 10_000  # above any site router's (Traefik's default: the rule's length)
MAINTENANCE_SERVICE = "farm-maintenance"
PHP_MEM_LIMIT_MB = 384


def maintenance_backend() -> Backend:
    """The maintenance page's service in Traefik (the ``farm_maintenance`` Swarm service)."""
    return Backend(MAINTENANCE_SERVICE, "http://farm_maintenance:80")


def site_route(site_id: int, domain: str) -> Route:
    """Host(domain) to the site's nginx, by its Swarm service name (dnsrr: Traefik,
    on every public shard, resolves it to the task's address)."""
    stack = stack_name(site_id)
    return Route(stack, domain, url=f"http://{stack}_nginx:80")


def maintenance_route_name(site_id: int) -> str:
    return f"maint-{stack_name(site_id)}"


def maintenance_route(site_id: int, domain: str) -> Route:
    return Route(
        maintenance_route_name(site_id),
        domain,
        service=MAINTENANCE_SERVICE,
        priority=MAINTENANCE_PRIORITY,
    )


def site_routes(site: Site) -> list[Route]:
    routes = [site_route(site.pk, site.domain)]
    if site.maintenance:
        routes.append(maintenance_route(site.pk, site.domain))
    return routes


def build_spec(site: Site, *, db_host: str) -> SiteStackSpec:
    """Everything the site's stack should be, from the Site row (no I/O)."""
    if not site.pk or not site.db_name or not site.db_password or not site.wp_salts:
        raise ValueError("The site has not been allocated yet (run the allocate step).")
    stack = stack_name(site.pk)
    runtime = site_runtime(site.image_choice)
    network = network_name(site.pk)
    directory = site_dir(site.pk)
    db_password = NamedContent(f"{stack}_db_password", site.db_password)
    salts = NamedContent(f"{stack}_wp_salts", site.wp_salts)
    wp_config = NamedContent(f"{stack}_wp_config", wp_config_php(site, runtime, db_host=db_host))
    nginx_conf = NamedContent(f"{stack}_nginx", nginx_site_conf(site, runtime))
    workers = [f"node.labels.{role_label('worker')} == true"]
    secret_refs = [
        FileRef(db_password.name, "db_password", mode=0o440, gid=str(WWW_DATA_UID)),
        FileRef(salts.name, "wp_salts", mode=0o440, gid=str(WWW_DATA_UID)),
    ]
    php = ServiceDef(
        name=f"{stack}_php",
        image=image_for(runtime.role),
        stack=stack,
        networks={network: ["php"]},
        secrets=secret_refs,
        configs=[FileRef(wp_config.name, runtime.config_path, mode=0o444)],
        mounts=[Mount(directory, runtime.content_dir, "bind")],
        constraints=workers,
        cpu_limit=0.5,
        mem_limit_mb=PHP_MEM_LIMIT_MB,
        cpu_reservation=SITE_SERVICES["php"].cpu,
        mem_reservation_mb=SITE_SERVICES["php"].memory_mb,
        labels={"farm.site": str(site.pk), "farm.role": "php"},
        health=Health.DISABLED,
    )
    nginx = ServiceDef(
        name=f"{stack}_nginx",
        image=image_for("nginx"),
        stack=stack,
        networks={network: ["nginx"], site.network_shard: []},
        configs=[FileRef(nginx_conf.name, "/etc/nginx/conf.d/site.conf", mode=0o444)],
        mounts=[Mount(directory, runtime.content_dir, "bind", read_only=True)],
        constraints=workers,
        cpu_limit=0.25,
        mem_limit_mb=64,
        cpu_reservation=SITE_SERVICES["nginx"].cpu,
        mem_reservation_mb=SITE_SERVICES["nginx"].memory_mb,
        labels={"farm.site": str(site.pk), "farm.role": "nginx"},
        health=Health.DISABLED,
    )
    services = [php, nginx]
    if site.cache_enabled:
        services.append(
            ServiceDef(
                name=f"{stack}_redis",
                image=image_for("redis"),
                stack=stack,
                args=["--maxmemory", "48mb", "--maxmemory-policy", "allkeys-lru"],
                networks={network: ["redis"]},
                constraints=workers,
                cpu_limit=0.25,
                mem_limit_mb=64,
                cpu_reservation=SITE_SERVICES["redis"].cpu,
                mem_reservation_mb=SITE_SERVICES["redis"].memory_mb,
                labels={"farm.site": str(site.pk), "farm.role": "redis"},
                health=Health.DISABLED,
            )
        )
    return SiteStackSpec(
        site_id=site.pk,
        domain=site.domain,
        stack=stack,
        network=network,
        shard_network=site.network_shard,
        site_dir=directory,
        runtime=runtime,
        cache_enabled=site.cache_enabled,
        db_password=db_password,
        salts=salts,
        wp_config=wp_config,
        nginx_conf=nginx_conf,
        services=services,
        routes=site_routes(site),
    )


def salts_json(values: dict[str, str]) -> str:
    missing = [k for k in SALT_KEYS if k not in values]
    if missing:
        raise ValueError(f"missing salts: {missing}")
    return json.dumps({k: values[k] for k in SALT_KEYS})
