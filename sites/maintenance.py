"""The maintenance page Traefik shows for suspended or restoring sites.

One platform service (``farm_maintenance``) answers 503 with a short page. A
site in maintenance gets a route for its Host to that service in the routing
Redis, with a priority above the site's own route (``sites.stack``); turning the
page on or off writes routes only (no task restarts, no Docker labels).
"""

from __future__ import annotations

from nodes.bootstrap import Report, ensure_config
from nodes.images import image_for
from nodes.platform import public_network
from nodes.swarm import FileRef, Health, NamedContent, ServiceDef, apply_service, client
from sites.routing import sync_routes

SERVICE = "farm_maintenance"
STACK = "farm"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Down for maintenance</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:17px/1.5 system-ui,sans-serif;max-width:36rem;margin:15vh auto;padding:0 1rem}
</style>
</head><body><h1>Down for maintenance</h1>
<p>This site is briefly unavailable while it is being looked after.
Please try again in a few minutes.</p>
</body></html>
"""

CONF = """# The farm's maintenance page: every request gets 503 and the page.
server {
    listen 80 default_server;
    server_name _;
    root /usr/share/farm-maintenance;
    error_page 503 /index.html;
    location = /index.html { internal; }
    location / { return 503; }
    add_header Retry-After 300 always;
    add_header Cache-Control "no-store" always;
}
"""


def maintenance_objects() -> list[NamedContent]:
    return [
        NamedContent("farm_maintenance_conf", CONF),
        NamedContent("farm_maintenance_page", PAGE),
    ]


def maintenance_service() -> ServiceDef:
    """Traefik reaches it by name on the first public shard (``stack.maintenance_backend``)."""
    conf, page = maintenance_objects()
    return ServiceDef(
        name=SERVICE,
        image=image_for("nginx"),
        stack=STACK,
        networks={public_network(1): []},
        configs=[
            FileRef(conf.name, "/etc/nginx/conf.d/maintenance.conf"),
            FileRef(page.name, "/usr/share/farm-maintenance/index.html"),
        ],
        cpu_limit=0.1,
        mem_limit_mb=32,
        mem_reservation_mb=16,
        health=Health.DISABLED,  # as the sites' nginx: Swarm restarts it if it exits
    )


def apply_maintenance() -> str:
    """Make the maintenance page route exactly the sites flagged for maintenance."""
    cli = client()
    for obj in maintenance_objects():
        ensure_config(cli, obj, Report())
    outcome = apply_service(cli, maintenance_service())
    changed = sync_routes().lines()
    return f"{outcome}; {'; '.join(changed) if changed else 'routes unchanged'}"
