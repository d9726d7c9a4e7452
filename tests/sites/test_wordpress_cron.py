"""The five-minute task that runs WordPress's cron: every active site's wp-cron.php is
called through Traefik by its Host header (WordPress's page-view cron is off), and
the task says how many sites answered."""

from __future__ import annotations

import pytest

from sites.models import Site, SiteStatus
from sites.tasks import run_wordpress_cron
from tests.fakes.edge import running_fake_edge

pytestmark = pytest.mark.django_db


def test_every_active_site_gets_its_wp_cron_call_through_the_edge(tenant, settings):
    Site.objects.create(tenant=tenant, domain="a.acme.test", status=SiteStatus.ACTIVE)
    Site.objects.create(tenant=tenant, domain="b.acme.test", status=SiteStatus.ACTIVE)
    Site.objects.create(tenant=tenant, domain="asleep.acme.test", status=SiteStatus.SUSPENDED)
    with running_fake_edge() as edge:
        settings.FARM_EDGE_URL = edge.url
        edge.route("a.acme.test", "/wp-cron.php", 200)

        summary = run_wordpress_cron()

    assert sorted(edge.requests) == [
        ("a.acme.test", "/wp-cron.php"),
        ("b.acme.test", "/wp-cron.php"),
    ], "suspended sites are left alone"
    # Any answer counts (b has no route yet: Traefik's 404); only no answer is a failure.
    assert summary == "2 of 2 sites"


def test_a_site_the_edge_does_not_answer_for_is_counted_as_failed(tenant, settings):
    Site.objects.create(tenant=tenant, domain="a.acme.test", status=SiteStatus.ACTIVE)
    settings.FARM_EDGE_URL = "http://127.0.0.1:9"  # nothing listens there

    assert run_wordpress_cron() == "0 of 1 sites"
