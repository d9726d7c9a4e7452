"""The one module that talks to Prometheus: blackbox targets (file_sd) and queries.

Each site is one JSON file in FARM_PROMETHEUS_TARGETS_DIR, which Prometheus
re-reads every 30 s. Public sites are probed at their URL; a site with no public
DNS (``via_edge``: a ``*.localhost`` site of the local farm, the caller says) is
probed at the edge (Traefik, on farm-internal) with the site's Host header
(blackbox ``hostname`` parameter).
The blackbox module does not follow redirects and counts the site's own answers
(2xx, 3xx such as the install screen's 302, 401, 403) as up; Traefik's 404 (no
route), 502/503 (nothing behind it) and a refused connection are down.

Prometheus wants basic auth (monitoring.credentials) for every call.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

from farm.errors import FarmError
from monitoring.credentials import monitoring_auth


class PrometheusError(FarmError):
    pass


def target_file(site_id: int) -> Path:
    return Path(settings.FARM_PROMETHEUS_TARGETS_DIR) / f"site-{site_id}.json"


def site_target(*, site_id: int, domain: str, tenant: str, via_edge: bool) -> list[dict[str, Any]]:
    labels = {"site_id": str(site_id), "domain": domain, "tenant": tenant}
    if via_edge:
        labels["site_url"] = f"http://{domain}/"
        labels["__param_hostname"] = domain
        return [{"targets": ["http://traefik/"], "labels": labels}]
    labels["site_url"] = f"https://{domain}/"
    return [{"targets": [f"https://{domain}/"], "labels": labels}]


def write_site_target(*, site_id: int, domain: str, tenant: str, via_edge: bool) -> bool:
    """Write (atomically) the site's target file; False when it was already right.
    ``via_edge``: the site has no public DNS, probe it through Traefik."""
    path = target_file(site_id)
    target = site_target(site_id=site_id, domain=domain, tenant=tenant, via_edge=via_edge)
    content = json.dumps(target, indent=2)
    if path.exists() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".site-", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # Prometheus never reads a half-written file
    return True


def remove_site_target(site_id: int) -> bool:
    path = target_file(site_id)
    if path.exists():
        path.unlink()
        return True
    return False


def _get(path: str, params: dict[str, str], *, timeout: float, what: str) -> dict[str, Any]:
    try:
        response = requests.get(
            f"{settings.FARM_PROMETHEUS_URL.rstrip('/')}{path}",
            params=params,
            auth=monitoring_auth(),
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise PrometheusError(f"{what}: Prometheus did not answer: {exc}", retryable=True) from exc
    if response.status_code == 401:
        raise PrometheusError(
            f"{what}: Prometheus refused the panel's credentials (401); check "
            "FARM_MONITORING_USER/FARM_MONITORING_PASSWORD or run manage.py farm_up."
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise PrometheusError(
            f"{what}: Prometheus answered {response.status_code} without JSON", retryable=True
        ) from exc
    if not isinstance(body, dict):
        raise PrometheusError(f"{what}: Prometheus's answer is not an object")
    return body


def query(promql: str, *, timeout: float = 10) -> list[dict[str, Any]]:
    body = _get("/api/v1/query", {"query": promql}, timeout=timeout, what="Prometheus query")
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus refused the query: {body.get('error')}")
    return list(body["data"]["result"])


def active_targets(job: str) -> list[dict[str, Any]]:
    body = _get("/api/v1/targets", {"state": "active"}, timeout=10, what="Prometheus targets")
    return [t for t in body["data"]["activeTargets"] if t["labels"].get("job") == job]
