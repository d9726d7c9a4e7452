"""Which routes Traefik should have, read from the Site rows, and the routing Redis
made to match (``nodes.routes`` is the client).

A site's route is written with its stack (``sites.swarm_site.apply_stack``) and
removed with it; the maintenance page's routes follow the ``maintenance`` flag.
``sync_routes`` puts back whatever the Redis lost and drops the routes of sites
that are gone; reconcile runs it every 10 minutes, and so does every change of a
maintenance page. Sites being built or taken down are left to their operation.
"""

from __future__ import annotations

import re

from nodes import routes
from sites.models import LIVE_STATUSES, Site, SiteStatus
from sites.stack import maintenance_backend, maintenance_route, site_route

# Sites whose route must exist: complete ones (a suspended or restoring site keeps
# its route under the maintenance page's).
ROUTED = (SiteStatus.ACTIVE, SiteStatus.SUSPENDED, SiteStatus.RESTORING)
_SITE_ROUTE = re.compile(r"^(maint-)?wp-([0-9]+)$")


def wanted_routes() -> list[routes.Entry]:
    wanted: list[routes.Entry] = [maintenance_backend()]
    rows = Site.objects.filter(status__in=LIVE_STATUSES).values_list(
        "pk", "domain", "status", "maintenance"
    )
    for site_id, domain, status, maintenance in rows:
        if status in ROUTED:
            wanted.append(site_route(site_id, domain))
        if maintenance:
            wanted.append(maintenance_route(site_id, domain))
    return wanted


def sync_routes() -> routes.SyncReport:
    live = dict(Site.objects.filter(status__in=LIVE_STATUSES).values_list("pk", "maintenance"))

    def unwanted(name: str) -> bool:
        match = _SITE_ROUTE.match(name)
        if match is None:
            return False  # not a site's: someone else's to keep
        site_id = int(match.group(2))
        if site_id not in live:
            return True
        return bool(match.group(1)) and not live[site_id]

    return routes.sync(wanted_routes(), unwanted=unwanted)
