"""Removing what a Docker test's site left on the farm: its stack, database and user,
files and blackbox target, whatever state the test left it in (each part is a no-op
when that part is gone already)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitoring import prometheus
from nodes import mariadb
from sites import files
from sites.swarm_site import remove_stack


def remove_test_site(site_id: int) -> None:
    remove_stack(site_id, lambda m: None)
    mariadb.drop_site_database(name=f"wp_{site_id}", user=f"wp_{site_id}")
    files.remove_site_files(site_id)
    prometheus.remove_site_target(site_id)


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """A list the test adds its sites' ids to; each is removed afterwards."""
    site_ids: list[int] = []
    yield site_ids
    for site_id in site_ids:
        remove_test_site(site_id)
