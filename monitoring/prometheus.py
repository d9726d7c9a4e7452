"""The one module that talks to Prometheus: blackbox targets (file_sd) and queries.

Each site is one JSON file in FARM_PROMETHEUS_TARGETS_DIR, which Prometheus
re-reads every 30 s. Public sites are probed at their URL; a ``*.localhost``
site (the local farm) has no public DNS, so the probe goes to Traefik with the
site's Host header (blackbox ``hostname`` parameter).
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
from sites.domains import is_local_domain


class PrometheusError(FarmError):
    pass


def target_file(site_id: int) -> Path:
    return Path(settings.FARM_PROMETHEUS_TARGETS_DIR) / f"site-{site_id}.json"


def site_target(*, site_id: int, domain: str, tenant: str) -> list[dict[str, Any]]:
    labels = {"site_id": str(site_id), "domain": domain, "tenant": tenant}
    if is_local_domain(domain):
        labels["site_url"] = f"http://{domain}/"
        labels["__param_hostname"] = domain
        return [{"targets": ["http://traefik/"], "labels": labels}]
    labels["site_url"] = f"https://{domain}/"
    return [{"targets": [f"https://{domain}/"], "labels": labels}]


def write_site_target(*, site_id: int, domain: str, tenant: str) -> bool:
    """Write (atomically) the site's target file; False when it was already right."""
    path = target_file(site_id)
    content = json.dumps(site_target(site_id=site_id, domain=domain, tenant=tenant), indent=2)
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


def query(promql: str, *, timeout: float = 10) -> list[dict[str, Any]]:
    try:
        response = requests.get(
            f"{settings.FARM_PROMETHEUS_URL}/api/v1/query",
            params={"query": promql},
            timeout=timeout,
        )
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise PrometheusError(f"Prometheus query failed: {exc}", retryable=True) from exc
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus refused the query: {body.get('error')}")
    return list(body["data"]["result"])


def active_targets(job: str) -> list[dict[str, Any]]:
    try:
        response = requests.get(
            f"{settings.FARM_PROMETHEUS_URL}/api/v1/targets", params={"state": "active"}, timeout=10
        )
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise PrometheusError(f"Prometheus did not answer: {exc}", retryable=True) from exc
    return [t for t in body["data"]["activeTargets"] if t["labels"].get("job") == job]
