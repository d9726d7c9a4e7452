"""Monitoring knows sites only by their ids: an alert names its site and tenant by
id, Alertmanager's labels name a site through the lookup the sites app registers,
and a probe target says itself whether it goes through the edge."""

from __future__ import annotations

import json

import pytest

from monitoring import alertmanager, prometheus, site_lookup
from monitoring.alerts import raise_alert
from monitoring.models import Alert
from sites.alerts import site_for_labels
from sites.models import Site


def firing(labels: dict[str, str]) -> dict:
    return {
        "alerts": [
            {
                "status": "firing",
                "fingerprint": "seam-1",
                "labels": {"alertname": "SiteDown", **labels},
                "annotations": {},
                "startsAt": "2026-11-26T10:00:00Z",
            }
        ]
    }


@pytest.mark.django_db
def test_a_raised_alert_names_its_site_and_tenant_by_id(tenant):
    site = Site.objects.create(tenant=tenant, domain="ids.acme.test", status="active")
    alert = raise_alert(
        fingerprint="seam-raise",
        name="BackupFailed",
        summary="Backup of ids.acme.test failed",
        site_id=site.pk,
        tenant_id=tenant.pk,
    )
    alert.refresh_from_db()
    assert (alert.site, alert.tenant) == (site, tenant)
    farm_wide = raise_alert(fingerprint="seam-farm", name="X", summary="no site")
    assert (farm_wide.site_id, farm_wide.tenant_id) == (None, None)


@pytest.mark.django_db
def test_the_sites_lookup_is_registered_at_start_up_and_finds_by_id_or_by_domain(tenant):
    site = Site.objects.create(tenant=tenant, domain="down.acme.test", status="active")
    assert site_lookup._lookup is site_for_labels, "SitesConfig.ready() registers it"
    assert site_for_labels({"site_id": str(site.pk)}) == (site.pk, tenant.pk)
    assert site_for_labels({"instance": "http://down.acme.test:80/"}) == (site.pk, tenant.pk)
    assert site_for_labels({"instance": "http://elsewhere.test/"}) is None
    assert site_for_labels({}) is None


@pytest.mark.django_db
def test_without_a_registered_lookup_an_alert_is_about_no_site(tenant, monkeypatch):
    site = Site.objects.create(tenant=tenant, domain="down.acme.test", status="active")
    monkeypatch.setattr(site_lookup, "_lookup", None)
    assert alertmanager.ingest(firing({"site_id": str(site.pk)})) == 1
    alert = Alert.objects.get(fingerprint="seam-1")
    assert (alert.site_id, alert.tenant_id) == (None, None)

    site_lookup.register_site_lookup(lambda labels: (site.pk, tenant.pk))
    alertmanager.ingest(firing({}))
    alert.refresh_from_db()
    assert (alert.site, alert.tenant) == (site, tenant)


def test_a_target_through_the_edge_probes_traefik_with_the_sites_host(settings, tmp_path):
    settings.FARM_PROMETHEUS_TARGETS_DIR = tmp_path
    assert prometheus.write_site_target(
        site_id=7, domain="shop.localhost", tenant="acme", via_edge=True
    )
    [target] = json.loads((tmp_path / "site-7.json").read_text())
    assert target["targets"] == ["http://traefik/"]
    assert target["labels"]["__param_hostname"] == "shop.localhost"
    assert target["labels"]["site_url"] == "http://shop.localhost/"
    assert not prometheus.write_site_target(
        site_id=7, domain="shop.localhost", tenant="acme", via_edge=True
    ), "already right: not written again"


def test_a_public_target_probes_the_sites_own_url(settings, tmp_path):
    settings.FARM_PROMETHEUS_TARGETS_DIR = tmp_path
    prometheus.write_site_target(site_id=8, domain="shop.example", tenant="acme", via_edge=False)
    [target] = json.loads((tmp_path / "site-8.json").read_text())
    assert target == {
        "targets": ["https://shop.example/"],
        "labels": {
            "site_id": "8",
            "domain": "shop.example",
            "tenant": "acme",
            "site_url": "https://shop.example/",
        },
    }
