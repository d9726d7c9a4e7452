"""Issue 11: Traefik's routes come from the routing Redis, on the real farm.

A route written through nodes.routes is served (how fast is measured by
benchmarks/density.py, not here) and removing it, even the last site's, gives
Traefik's own 404; the routes outlive a restart of the Redis (an append-only file on
a volume) and Traefik hears of new ones after it; the maintenance page's route wins
over a site's; and tenant code, on a site's network, can neither read nor write the
routes (the published port wants the password; the service's name is not on it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import docker.errors
import pytest
import requests
from django.conf import settings

from nodes import routes
from nodes.images import image_for
from nodes.platform import public_network
from nodes.routes import Route, RoutesError
from nodes.swarm import (
    Health,
    ServiceDef,
    apply_service,
    client,
    remove_service,
    wait_converged,
)
from sites.maintenance import apply_maintenance
from sites.stack import maintenance_backend
from tests.support.farm import ensure_farm, gateway_address

pytestmark = [pytest.mark.swarm, pytest.mark.slow]


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    """The farm's nginx image on the first public shard: its /healthz answers 200 "ok"."""
    ensure_farm()
    cli = client()
    name = f"test-route-{uuid.uuid4().hex[:6]}"
    apply_service(
        cli,
        ServiceDef(
            name=name,
            image=image_for("nginx"),
            stack="test-routes",
            networks={public_network(1): []},
            mem_limit_mb=32,
            health=Health.DISABLED,
        ),
    )
    wait_converged(cli, [name], timeout_s=120, require_healthy=False)
    try:
        yield name
    finally:
        remove_service(cli, name)


@pytest.fixture
def made() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        routes.remove(name)


def edge(domain: str, path: str = "/healthz") -> tuple[int, str]:
    try:
        answer = requests.get(
            f"{settings.FARM_EDGE_URL}{path}",
            headers={"Host": domain},
            timeout=5,
            allow_redirects=False,
        )
    except requests.RequestException:
        return 0, ""
    return answer.status_code, answer.text


def seconds_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what} within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


def route_to(backend: str, made: list[str]) -> Route:
    name = f"t-{uuid.uuid4().hex[:8]}"
    made.append(name)
    return Route(name, f"{name}.localhost", url=f"http://{backend}:8080")


def test_a_route_written_is_served_and_removing_the_last_one_gives_traefiks_404(backend, made):
    # farm_up keeps an entry no router uses, so even the last route's removal is seen
    # (Traefik ignores an empty tree: its issue 8092).
    ensure_farm()
    assert routes.KEEPALIVE.name in routes.names()
    route = route_to(backend, made)
    assert edge(route.domain) == (404, "404 page not found\n"), "Traefik's own 404 before"
    assert routes.put(route)
    seconds_until(lambda: edge(route.domain) == (200, "ok\n"), 10, "served")
    status, _ = edge(route.domain, "/")
    assert status == 404  # nginx's: the route goes to the backend, whatever the path

    assert routes.remove(route.name)
    seconds_until(lambda: edge(route.domain)[1] == "404 page not found\n", 10, "gone")


def _routes_task() -> str:
    running = client().api.tasks(filters={"service": "farm_routes", "desired-state": "running"})
    return next((t["ID"] for t in running if t["Status"]["State"] == "running"), "")


def test_the_routes_outlive_a_restart_of_the_routing_redis(backend, made):
    before = route_to(backend, made)
    routes.put(before)
    seconds_until(lambda: edge(before.domain)[0] == 200, 10, "served")
    first = _routes_task()
    container = client().api.inspect_task(first)["Status"]["ContainerStatus"]["ContainerID"]
    client().containers.get(container).kill()  # Swarm starts another task on the volume

    def back() -> bool:
        try:
            return _routes_task() not in ("", first) and before.name in routes.names()
        except RoutesError:
            return False

    seconds_until(back, 90, "the routing Redis back with its routes")
    assert edge(before.domain)[0] == 200
    after = route_to(backend, made)
    routes.put(after)
    # Traefik's watch reconnects by itself; the new route shows it is listening again.
    seconds_until(lambda: edge(after.domain)[0] == 200, 60, "a route written after the restart")


@pytest.mark.django_db
def test_the_maintenance_page_wins_over_the_sites_route(backend, made):
    apply_maintenance()  # the farm_maintenance service and its Traefik service
    wait_converged(client(), ["farm_maintenance"], timeout_s=120, require_healthy=False)
    site = route_to(backend, made)
    routes.put(site)
    seconds_until(lambda: edge(site.domain)[0] == 200, 10, "the site")
    name = f"maint-{site.name}"
    made.append(name)
    backend_service = maintenance_backend().name
    routes.put(Route(name, site.domain, service=backend_service, priority=10_000))

    seconds_until(lambda: edge(site.domain)[0] == 503, 10, "the maintenance page")
    status, page = edge(site.domain, "/wp-admin/")
    assert status == 503 and "Down for maintenance" in page
    routes.remove(name)
    seconds_until(lambda: edge(site.domain)[0] == 200, 10, "the site again")


@pytest.fixture
def site_like_network() -> Iterator[str]:
    """An encrypted overlay with nothing of the platform on it, as a site's."""
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


def test_tenant_code_can_neither_read_nor_write_the_routing_redis(backend, made, site_like_network):
    route = route_to(backend, made)
    routes.put(route)
    rule = f"traefik/http/routers/{route.name}/rule"
    published = ["-h", gateway_address(), "-p", str(settings.FARM_ROUTES_PORT)]
    attempts = {
        "read": [*published, "GET", rule],
        "write": [*published, "SET", rule, "Host(`hijacked.example.com`)"],
        "list": [*published, "SCAN", "0"],
        "by name": ["-h", "routes", "-p", "6379", "PING"],
    }
    said = {}
    for what, argv in attempts.items():
        try:
            output: bytes | str = client().containers.run(
                image_for("redis"),
                argv,
                entrypoint=["redis-cli"],
                network=site_like_network,
                remove=True,
                stdout=True,
                stderr=True,
            )
        except docker.errors.ContainerError as failed:  # redis-cli exits 1: no connection
            output = failed.stderr or b""
        said[what] = (
            output.decode(errors="replace") if isinstance(output, bytes) else output
        ).strip()
    for what in ("read", "write", "list"):
        assert said[what].startswith("NOAUTH"), (what, said[what])
    assert "Could not connect" in said["by name"], said["by name"]
    assert routes.client().get(rule) == f"Host(`{route.domain}`)"
