"""The routing Redis's client (nodes.routes), against a real redis-server with a
password: the keys Traefik reads, writes that change nothing when nothing changed,
removal of every key a route had, and a resync that brings lost keys back."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from nodes import routes
from nodes.routes import Backend, Route, RoutesError

PASSWORD = "routes-test-password"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def routing_redis(tmp_path: Path, settings) -> Iterator[redis.Redis]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("These tests need redis-server (Debian: apt-get install redis-server).")
    port = _free_port()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    settings.FARM_ROUTES_HOST, settings.FARM_ROUTES_PORT = "127.0.0.1", port
    settings.FARM_ROUTES_PASSWORD = PASSWORD
    admin = redis.Redis(port=port, password=PASSWORD, decode_responses=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield admin
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def site(n: int, domain: str | None = None) -> Route:
    return Route(f"wp-{n}", domain or f"s{n}.example.com", url=f"http://wp-{n}_nginx:80")


def test_a_route_is_the_keys_traefik_reads_under_its_root(routing_redis):
    assert routes.put(site(12, "shop.example.com"))
    keys = {k: routing_redis.get(k) for k in routing_redis.scan_iter("traefik/*")}
    router, mw = "traefik/http/routers/wp-12", "traefik/http/middlewares/wp-12"
    assert keys[f"{router}/rule"] == "Host(`shop.example.com`)"
    assert keys[f"{router}/entryPoints/0"] == "web"
    assert keys[f"{router}/service"] == "wp-12"
    assert [keys[f"{router}/middlewares/{i}"] for i in (0, 1, 2)] == [
        "wp-12-headers",
        "wp-12-ratelimit",
        "wp-12-retry",
    ]
    assert keys[f"{mw}-headers/headers/frameDeny"] == "true"
    assert keys[f"{mw}-headers/headers/stsSeconds"] == "31536000"
    assert keys[f"{mw}-ratelimit/rateLimit/average"] == "50"
    assert keys[f"{mw}-retry/retry/attempts"] == "3"
    assert keys["traefik/http/services/wp-12/loadBalancer/servers/0/url"] == "http://wp-12_nginx:80"
    assert len(keys) == len(site(12).as_keys()) == 16


def test_writing_the_same_route_twice_changes_nothing(routing_redis):
    assert routes.put(site(1)) is True
    assert routes.put(site(1)) is False, "no write, so no notification and no Traefik reload"
    assert routes.put(site(1, "renamed.example.com")) is True


def test_a_rewritten_route_loses_the_keys_it_no_longer_has(routing_redis):
    routes.put(Route("maint-wp-3", "x.example.com", service="farm-maintenance", priority=10000))
    routes.put(Route("maint-wp-3", "x.example.com", service="farm-maintenance"))
    assert routing_redis.get("traefik/http/routers/maint-wp-3/priority") is None
    assert routing_redis.get("traefik/http/routers/maint-wp-3/service") == "farm-maintenance"


def test_removing_a_route_removes_all_its_keys_and_only_its_own(routing_redis):
    routes.put(site(1))
    routes.put(site(11))
    assert routes.remove("wp-1") is True
    assert routes.remove("wp-1") is False
    left = set(routing_redis.scan_iter("traefik/*"))
    assert left == set(site(11).as_keys())
    assert routes.names() == {"wp-11"}


def test_sync_restores_a_lost_key_drops_unwanted_routes_and_stray_keys(routing_redis):
    maintenance = Backend("farm-maintenance", "http://farm_maintenance:80")
    for entry in (site(1), site(2), site(3), maintenance):
        routes.put(entry)
    routing_redis.delete("traefik/http/routers/wp-1/rule")  # lost
    routing_redis.set("traefik/http/routers/ghost/rule", "Host(`ghost.example.com`)")  # stray
    routes.put(Route("someone-else", "else.example.com", url="http://else:80"))

    report = routes.sync([site(1), site(2), maintenance], unwanted=lambda name: name == "wp-3")

    # The keepalive entry is always written back (Traefik ignores an empty tree).
    assert report.written == [routes.KEEPALIVE.name, "wp-1"] and report.removed == ["wp-3"]
    assert report.stray_keys == 1
    assert routing_redis.get("traefik/http/routers/wp-1/rule") == "Host(`s1.example.com`)"
    assert routes.names() == {
        "wp-1",
        "wp-2",
        "farm-maintenance",
        "someone-else",
        routes.KEEPALIVE.name,
    }
    assert routes.sync([site(1), site(2), maintenance], unwanted=lambda n: False).lines() == []


def test_what_reaches_a_rule_or_a_url_is_checked(routing_redis):
    for bad in (
        Route("wp-1", "a.example.com`) || Host(`b.example.com", url="http://wp-1_nginx:80"),
        Route("wp 1", "a.example.com", url="http://wp-1_nginx:80"),
        Route("wp-1", "a.example.com", url="http://evil/path?x"),
        Route("wp-1", "a.example.com"),
    ):
        with pytest.raises(RoutesError):
            routes.put(bad)
    assert routes.names() == set()


def test_a_wrong_password_is_a_clear_error_not_retryable(routing_redis, settings):
    settings.FARM_ROUTES_PASSWORD = "guessed"
    with pytest.raises(RoutesError, match="refused the panel's password") as refused:
        routes.put(site(1))
    assert refused.value.retryable is False


def test_no_answer_is_retryable(settings):
    settings.FARM_ROUTES_HOST, settings.FARM_ROUTES_PORT = "127.0.0.1", _free_port()
    settings.FARM_ROUTES_PASSWORD = PASSWORD
    with pytest.raises(RoutesError, match=re.escape("did not answer")) as refused:
        routes.names()
    assert refused.value.retryable is True


def test_stats_weigh_what_traefik_reads(routing_redis):
    routes.put(site(1))
    weight = routes.stats()
    assert (weight.routes, weight.keys) == (1, 16)
    assert weight.bytes == sum(len(k) + len(v) for k, v in site(1).as_keys().items())
