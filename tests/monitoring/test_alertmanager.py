"""Alertmanager's webhook turns into Alert rows; tenants see their own sites' alerts."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from monitoring.models import Alert
from sites.models import Site
from tests.conftest import client_for

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
