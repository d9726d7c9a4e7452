"""Which site an alert is about: the sites app says, monitoring only asks.

Alertmanager's labels name a site (``site_id`` on the panel's own probes, the
``instance`` URL otherwise), but sites sit above monitoring, so monitoring cannot
query them. ``SitesConfig.ready()`` registers the lookup here instead, the way
operation kinds are registered. This module imports no model, so an app's
``apps.py`` can import it. With no lookup registered, an alert is about no site.
"""

from __future__ import annotations

from collections.abc import Callable

# labels -> (site id, tenant id) of the site the alert is about, or None.
SiteLookup = Callable[[dict[str, str]], tuple[int, int] | None]
_lookup: SiteLookup | None = None


def register_site_lookup(lookup: SiteLookup) -> None:
    """Say how an alert's labels name a site (one lookup; registering again replaces it)."""
    global _lookup
    _lookup = lookup


def site_for(labels: dict[str, str]) -> tuple[int | None, int | None]:
    """(site id, tenant id) of the site ``labels`` name; (None, None) for none."""
    found = _lookup(labels) if _lookup is not None else None
    return found if found is not None else (None, None)
