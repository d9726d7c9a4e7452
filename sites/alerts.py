"""Which site an alert is about, from its labels: monitoring asks through the lookup
``SitesConfig.ready()`` registers (``monitoring.site_lookup``)."""

from __future__ import annotations

from sites.models import Site


def site_for_labels(labels: dict[str, str]) -> tuple[int, int] | None:
    """(site id, tenant id) named by ``site_id`` (the panel's own probes) or by the
    host of ``instance`` (the live site that claims that domain); else None."""
    rows = Site.objects.values_list("pk", "tenant_id")
    site_id = labels.get("site_id")
    if site_id and site_id.isdigit():
        return rows.filter(pk=int(site_id)).first()
    instance = labels.get("instance", "")
    domain = instance.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return rows.filter(domain_claim=domain).first() if domain else None
