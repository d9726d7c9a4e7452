"""Issue 9, item 8: what tenant code can reach of the platform, on the real farm.

Site containers reach the host's published ports through their gateway (php-fpm
reaches MariaDB that way), so Prometheus and Alertmanager answer nobody without
the farm's credentials, and nothing on the public shards (which every site's
nginx joins) reaches Traefik's metrics or the blackbox exporter.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import docker.errors
import pytest
import requests
from django.conf import settings

from monitoring import prometheus
from monitoring.credentials import monitoring_auth
from nodes import platform
from nodes.swarm import client
from tests.support.farm import ensure_farm, gateway_address, http_statuses_from

pytestmark = [pytest.mark.swarm, pytest.mark.slow]


@pytest.fixture
def site_like_network() -> Iterator[str]:
    """An encrypted overlay network with nothing of the platform on it, as a site's."""
    ensure_farm()
    cli = client()
    name = f"test-site-like-{uuid.uuid4().hex[:8]}"
    net = cli.networks.create(
        name, driver="overlay", attachable=True, scope="swarm", options={"encrypted": "true"}
    )
    try:
        yield name
    finally:
        for _ in range(20):
            try:
                net.remove()
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:
                time.sleep(1)


def test_item8_tenant_code_gets_401_from_prometheus_and_alertmanager(site_like_network):
    gateway = gateway_address()
    prom = f"http://{gateway}:{settings.FARM_PROMETHEUS_PORT}"
    am = f"http://{gateway}:{settings.FARM_ALERTMANAGER_PORT}"
    injected = f"Injected{uuid.uuid4().hex[:8]}"
    alert = [{"labels": {"alertname": injected, "site_id": "1", "severity": "critical"}}]
    now = datetime.now(UTC)
    silence = {
        "matchers": [{"name": "alertname", "value": "SiteDown", "isRegex": False}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "tenant",
        "comment": "shh",
    }
    asked = [
        ("GET", f"{prom}/api/v1/query?query=up", ""),
        ("POST", f"{prom}/-/quit", ""),
        ("POST", f"{prom}/-/reload", ""),
        ("GET", f"{am}/api/v2/alerts", ""),
        ("POST", f"{am}/api/v2/alerts", json.dumps(alert)),
        ("POST", f"{am}/api/v2/silences", json.dumps(silence)),
    ]

    statuses = http_statuses_from(site_like_network, asked)

    assert statuses == {f"{method} {url}": "401" for method, url, _ in asked}
    # The panel's own, authenticated calls work; Prometheus did not quit.
    wait_for_value('up{job="prometheus"}', "1")
    response = requests.get(
        f"{settings.FARM_ALERTMANAGER_URL}/api/v2/alerts", auth=monitoring_auth(), timeout=10
    )
    assert response.status_code == 200
    assert injected not in response.text
    silences = requests.get(
        f"{settings.FARM_ALERTMANAGER_URL}/api/v2/silences", auth=monitoring_auth(), timeout=10
    ).json()
    assert not [s for s in silences if s.get("createdBy") == "tenant"]


def test_item8_a_wrong_password_is_refused_too():
    ensure_farm()
    user, _ = monitoring_auth()
    for url in (
        f"{settings.FARM_PROMETHEUS_URL}/api/v1/query?query=up",
        f"{settings.FARM_ALERTMANAGER_URL}/api/v2/alerts",
    ):
        assert requests.get(url, auth=(user, "guessed"), timeout=10).status_code == 401, url


def test_item8_the_public_shards_reach_neither_traefiks_metrics_nor_the_blackbox_exporter():
    ensure_farm()
    shard = platform.public_network(1)
    metrics = "http://farm_traefik:8082/metrics"
    probe = "http://farm_blackbox:9115/probe?module=http_2xx&target=http://farm_redis:6379/"

    api = "http://farm_traefik:8080/api/rawdata"
    redis = "http://farm_redis:6379/"

    statuses = http_statuses_from(shard, [("GET", u, "") for u in (metrics, probe, api, redis)])

    assert statuses[f"GET {metrics}"] == "403", "Traefik's metrics are farm-internal only"
    assert statuses[f"GET {probe}"] == "none", "the blackbox exporter is not on the shards"
    assert statuses[f"GET {api}"] == "404", "Traefik's :8080 answers /ping, no API"
    assert statuses[f"GET {redis}"] == "none", "the platform's Redis is farm-internal only"
    # Prometheus, on farm-internal, still scrapes Traefik.
    wait_for_value('up{job="traefik"}', "1")


def wait_for_value(promql: str, value: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus.query(promql)
        if result and result[0]["value"][1] == value:
            return
        assert time.monotonic() < deadline, f"{promql} is {result}, not {value}"
        time.sleep(2)
