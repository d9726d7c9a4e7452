"""Alertmanager's webhook turns into Alert rows; tenants see their own sites' alerts."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from monitoring.credentials import monitoring_auth
from monitoring.models import Alert
from monitoring.tasks import UNREACHABLE, sync_alerts
from sites.models import Site
from tests.conftest import client_for
from tests.support.farm import ensure_farm

pytestmark = pytest.mark.django_db

TOKEN = "webhook-token-for-tests"


@pytest.fixture
def token(settings, tmp_path) -> str:
    settings.FARM_SECRETS_DIR = tmp_path
    (tmp_path / "alertmanager-token").write_text(TOKEN)
    return TOKEN


def payload(status: str, domain: str) -> dict:
    return {
        "version": "4",
        "status": status,
        "receiver": "panel",
        "alerts": [
            {
                "status": status,
                "fingerprint": "abc123",
                "labels": {
                    "alertname": "SiteDown",
                    "severity": "critical",
                    "instance": f"http://{domain}/",
                    "job": "sites",
                },
                "annotations": {"summary": f"{domain} is not answering"},
                "startsAt": "2026-11-26T10:00:00Z",
                "endsAt": "2026-11-26T10:30:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
            }
        ],
    }


def post(client, body, token=TOKEN):
    return client.post(
        reverse("alertmanager_webhook"),
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_the_webhook_needs_the_token(client, token):
    assert post(client, payload("firing", "x.example"), token="wrong").status_code == 401
    assert client.get(reverse("alertmanager_webhook")).status_code == 405
    assert not Alert.objects.exists()


def test_firing_then_resolved_is_one_alert_on_the_right_site(
    client, token, tenant, owner, outsider
):
    site = Site.objects.create(tenant=tenant, domain="down.acme.test", status="active")
    assert post(client, payload("firing", site.domain)).json() == {"alerts": 1}
    alert = Alert.objects.get()
    assert (alert.status, alert.site, alert.tenant, alert.severity) == (
        "firing",
        site,
        tenant,
        "critical",
    )
    assert (
        "down.acme.test is not answering"
        in client_for(owner).get(reverse("alert_list")).content.decode()
    )
    assert "down.acme.test" not in client_for(outsider).get(reverse("alert_list")).content.decode()

    post(client, payload("resolved", site.domain))
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolved_at is not None
    assert Alert.objects.count() == 1


def test_a_body_that_is_not_json_is_refused(client, token):
    response = client.post(
        reverse("alertmanager_webhook"),
        data="nope",
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 400


# The pull from Alertmanager's API: the webhook's backstop.


def firing(fingerprint: str, *, source: str = "alertmanager", name: str = "SiteDown") -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        fingerprint=fingerprint,
        source=source,
        name=name,
        summary=name,
        started_at=now,
        last_seen_at=now,
    )


def test_when_alertmanager_does_not_answer_nothing_is_resolved_and_an_alert_says_so(settings):
    settings.FARM_ALERTMANAGER_URL = "http://127.0.0.1:9"  # nothing listens on discard
    from_alertmanager = firing("am-1")
    assert "Alertmanager did not answer" in sync_alerts()
    from_alertmanager.refresh_from_db()
    assert from_alertmanager.status == "firing"
    unreachable = Alert.objects.get(fingerprint=UNREACHABLE)
    assert unreachable.status == "firing" and unreachable.source == "panel"

    sync_alerts()  # still down: the same alert, not a second one
    assert Alert.objects.filter(fingerprint=UNREACHABLE).count() == 1


def alertmanager_post(alerts: list[dict]) -> None:
    response = requests.post(
        f"{settings.FARM_ALERTMANAGER_URL}/api/v2/alerts",
        json=alerts,
        auth=monitoring_auth(),
        timeout=10,
    )
    assert response.status_code == 200, response.text


@pytest.mark.swarm
@pytest.mark.slow
def test_alerts_firing_in_the_real_alertmanager_are_pulled_in_and_resolved(tenant):
    ensure_farm()
    site = Site.objects.create(tenant=tenant, domain="pulled.acme.test", status="active")
    name = f"FarmTest{uuid.uuid4().hex[:8]}"
    alert = {
        "labels": {"alertname": name, "site_id": str(site.pk), "severity": "critical"},
        "annotations": {"summary": f"{site.domain} is not answering"},
    }
    firing("lost-webhook")  # left by a lost webhook; Alertmanager no longer has it
    firing(UNREACHABLE, source="panel", name="AlertmanagerUnreachable")
    alertmanager_post([alert])
    try:
        sync_alerts()
        pulled = Alert.objects.get(name=name)
        assert (pulled.status, pulled.site, pulled.tenant, pulled.severity) == (
            "firing",
            site,
            tenant,
            "critical",
        )
        assert pulled.summary == "pulled.acme.test is not answering"
        assert Alert.objects.get(fingerprint="lost-webhook").status == "resolved"
        assert Alert.objects.get(fingerprint=UNREACHABLE).status == "resolved"

        sync_alerts()  # the same firing is one row, however often it is pulled
        assert Alert.objects.filter(name=name).count() == 1
    finally:
        ended = (timezone.now() - timedelta(minutes=1)).isoformat()
        alertmanager_post([{**alert, "endsAt": ended}])

    sync_alerts()
    pulled.refresh_from_db()
    assert pulled.status == "resolved" and pulled.resolved_at is not None
