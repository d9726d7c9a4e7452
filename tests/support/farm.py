"""The local single-node farm, for tests that need the real Swarm.

Tests share one farm (ports 80 and 13306 exist once per machine); ``ensure_farm``
is cheap when the farm is already up (farm_up changes nothing then).
"""

from __future__ import annotations

import time

import pytest

from nodes.bootstrap import Report, farm_up
from nodes.swarm import client, engine_status

_last_up: Report | None = None


def require_engine() -> None:
    available, why = engine_status()
    if not available:
        try:
            client().ping()
        except Exception:
            pytest.fail(f"These tests need the local Docker Engine: {why}")


def ensure_farm() -> Report:
    global _last_up
    require_engine()
    started = time.monotonic()
    _last_up = farm_up(progress=lambda m: None)
    _last_up.timings.setdefault("ensure", time.monotonic() - started)
    return _last_up
