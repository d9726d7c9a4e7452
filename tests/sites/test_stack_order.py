"""A new site's nginx is created only once php-fpm (and Redis) run; an existing
stack is updated in one pass (sites.swarm_site.apply_stack).

The Swarm is replaced by recording fakes of the calls apply_stack makes, so the
order of creations and waits is what is checked, not timing."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.swarm import SwarmError
from sites import swarm_site
from sites.stack import build_spec
from tests.sites.test_idle_cost import allocated_site


class Recorder:
    def __init__(self, existing: set[str], wait_fails: bool = False) -> None:
        self.existing = existing
        self.wait_fails = wait_fails
        self.calls: list[tuple[str, ...]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(swarm_site, "client", lambda: object())
        monkeypatch.setattr(swarm_site, "ensure_network", lambda cli, spec: False)
        monkeypatch.setattr(swarm_site, "ensure_objects", lambda cli, spec: [])
        monkeypatch.setattr(swarm_site, "apply_routes", lambda spec: [])
        monkeypatch.setattr(swarm_site, "stack_services", lambda cli, stack: [])
        monkeypatch.setattr(swarm_site, "prune_objects", lambda cli, stack, keep: [])
        monkeypatch.setattr(swarm_site, "find_service", self.find_service)
        monkeypatch.setattr(swarm_site, "apply_service", self.apply_service)
        monkeypatch.setattr(swarm_site, "wait_converged", self.wait_converged)

    def find_service(self, cli: Any, name: str) -> dict[str, Any] | None:
        return {"Spec": {"Name": name}} if name in self.existing else None

    def apply_service(self, cli: Any, sdef: Any) -> str:
        self.calls.append(("apply", sdef.name.rpartition("_")[2]))
        return "updated" if sdef.name in self.existing else "created"

    def wait_converged(self, cli: Any, names: list[str], **kwargs: Any) -> None:
        assert kwargs["require_healthy"] is False
        self.calls.append(("wait", *sorted(n.rpartition("_")[2] for n in names)))
        if self.wait_fails:
            raise SwarmError("wp-1_php: no suitable node", retryable=False)


@pytest.mark.django_db
@pytest.mark.parametrize("cache_enabled", [True, False])
def test_a_new_stack_starts_nginx_after_its_backends_run(tenant, monkeypatch, cache_enabled):
    spec = build_spec(allocated_site(tenant, cache_enabled=cache_enabled), db_host="db:3306")
    fake = Recorder(existing=set())
    fake.install(monkeypatch)
    swarm_site.apply_stack(spec, log=lambda line: None)
    backends = ["php", "redis"] if cache_enabled else ["php"]
    assert fake.calls == [
        *[("apply", b) for b in backends],
        ("wait", *sorted(backends)),
        ("apply", "nginx"),
    ]


@pytest.mark.django_db
def test_an_existing_stack_is_updated_without_waiting(tenant, monkeypatch):
    spec = build_spec(allocated_site(tenant, cache_enabled=True), db_host="db:3306")
    fake = Recorder(existing={s.name for s in spec.services})
    fake.install(monkeypatch)
    swarm_site.apply_stack(spec, log=lambda line: None)
    assert [c[0] for c in fake.calls] == ["apply", "apply", "apply"]


@pytest.mark.django_db
def test_nginx_is_created_even_when_its_backends_do_not_run(tenant, monkeypatch):
    spec = build_spec(allocated_site(tenant, cache_enabled=False), db_host="db:3306")
    fake = Recorder(existing=set(), wait_fails=True)
    fake.install(monkeypatch)
    lines: list[str] = []
    swarm_site.apply_stack(spec, log=lines.append)
    assert fake.calls[-1] == ("apply", "nginx")
    assert any("no suitable node" in line for line in lines)


def test_nginx_gives_up_on_a_dead_php_address_in_seconds(tenant) -> None:
    """A php task on a failed node stays in the name's answers for a while; nginx must
    not wait its default 60 s on it (benchmarks/failover.py measures the effect)."""
    from nodes.images import site_runtimes
    from sites.models import Site
    from sites.wordpress import nginx_site_conf

    site = Site.objects.create(tenant=tenant, domain="fast.example.test", status="active")
    conf = nginx_site_conf(site, site_runtimes()["php8.2"])
    assert "fastcgi_connect_timeout 2s;" in conf
