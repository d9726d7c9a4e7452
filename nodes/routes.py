"""The one client of the routing Redis (``farm_routes``): Traefik's dynamic configuration.

Traefik reads its site routers, services and middlewares from this Redis (its KV
provider, root key ``traefik``), on every edge node alike, and hears of each change
through Redis keyspace notifications: a route written here is served within about
a second, with no Docker API call (the Swarm provider polled every service and task
every 2 s). The panel writes here and nothing else does; the Redis keeps its data
in an append-only file on a volume and never evicts a key (``noeviction``).

A route is a ``Host(...)`` router on the web entry point with its own security
headers, rate limit and retry middlewares, to a service of its own (``url``) or to one
another route declares (``service``). Each route's keys are listed in an index
hash outside Traefik's root key, so writing or removing one touches only its keys
and writing what is already there changes nothing (no notification, no reload).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import cast

import redis
from django.conf import settings

from farm.errors import FarmError

ROOT = "traefik"
INDEX = "farm:routes"  # route name -> JSON list of its keys (not under ROOT: Traefik ignores it)
PASSWORD_FILE = "routes-password"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DOMAIN = re.compile(r"^[a-z0-9.-]{1,253}$")
_URL = re.compile(r"^http://[A-Za-z0-9._-]+:[0-9]{1,5}$")

# The farm's security headers and rate limit, one middleware each per route.
HEADERS = {
    "frameDeny": "true",
    "contentTypeNosniff": "true",
    "browserXssFilter": "true",
    "referrerPolicy": "strict-origin-when-cross-origin",
    "stsSeconds": "31536000",
}
RATE_LIMIT = {"average": "50", "burst": "100"}
# A request whose connection to the backend fails (Traefik's dial timeout is 1 s, see
# ``platform_config.traefik_static_config``) is sent again on a new connection: a dial
# begun in the instant a new task's address is known but before its network answers
# otherwise hung ~5 s (seen in 4 of 18 new sites), and a moved task's first requests too.
# Only failures before any response are retried: a 502 that nginx answers is not.
RETRY = {"attempts": "3", "initialInterval": "100ms"}


class RoutesError(FarmError):
    """The routing Redis did not answer, refused the panel's password, or a route is malformed."""


@dataclass(frozen=True)
class Backend:
    """A Traefik service with no router of its own (e.g. the maintenance page)."""

    name: str
    url: str

    def as_keys(self) -> dict[str, str]:
        _check(_NAME, self.name, "service name")
        _check(_URL, self.url, "service URL")
        return {f"{ROOT}/http/services/{self.name}/loadBalancer/servers/0/url": self.url}


@dataclass(frozen=True)
class Route:
    name: str
    domain: str
    url: str | None = None  # a service of the route's own name, at this URL
    service: str | None = None  # or a service another route or Backend declares
    priority: int | None = None
    retry_attempts: int | None = None  # None: RETRY's

    def as_keys(self) -> dict[str, str]:
        _check(_NAME, self.name, "route name")
        _check(_DOMAIN, self.domain, "domain")
        if (self.url is None) == (self.service is None):
            raise RoutesError(f"Route {self.name} needs either a URL or a service, not both.")
        router = f"{ROOT}/http/routers/{self.name}"
        middlewares = f"{ROOT}/http/middlewares/{self.name}"
        keys = {
            f"{router}/rule": f"Host(`{self.domain}`)",
            f"{router}/entryPoints/0": "web",
            f"{router}/middlewares/0": f"{self.name}-headers",
            f"{router}/middlewares/1": f"{self.name}-ratelimit",
            f"{router}/middlewares/2": f"{self.name}-retry",
            f"{router}/service": self.service or self.name,
            **{f"{middlewares}-headers/headers/{k}": v for k, v in HEADERS.items()},
            **{f"{middlewares}-ratelimit/rateLimit/{k}": v for k, v in RATE_LIMIT.items()},
            **{f"{middlewares}-retry/retry/{k}": v for k, v in self._retry().items()},
        }
        if self.priority is not None:
            keys[f"{router}/priority"] = str(self.priority)
        if self.url is not None:
            keys.update(Backend(self.name, self.url).as_keys())
        return keys

    def _retry(self) -> dict[str, str]:
        if self.retry_attempts is None:
            return RETRY
        if not 1 <= self.retry_attempts <= 10:
            raise RoutesError(f"Route {self.name}: {self.retry_attempts} retry attempts (1-10).")
        return {**RETRY, "attempts": str(self.retry_attempts)}


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.match(value):
        raise RoutesError(f"Refusing the {what} {value!r} for a Traefik route.")


def password() -> str:
    """FARM_ROUTES_PASSWORD, or the secret farm_up generated into FARM_SECRETS_DIR."""
    if settings.FARM_ROUTES_PASSWORD:
        return str(settings.FARM_ROUTES_PASSWORD)
    path = Path(settings.FARM_SECRETS_DIR) / PASSWORD_FILE
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise RoutesError(
            f"The routing Redis's password is not in {path} (run manage.py farm_up).",
            retryable=False,
        ) from exc


@cache
def _client(host: str, port: int, secret: str) -> redis.Redis:
    return redis.Redis(
        host=host,
        port=port,
        password=secret,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=10,
    )


def client() -> redis.Redis:
    return _client(settings.FARM_ROUTES_HOST, settings.FARM_ROUTES_PORT, password())


@contextmanager
def _talking(what: str) -> Iterator[None]:
    try:
        yield
    except redis.AuthenticationError as exc:
        raise RoutesError(
            f"{what}: the routing Redis refused the panel's password ({exc}); check "
            "FARM_ROUTES_PASSWORD or run manage.py farm_up.",
            retryable=False,
        ) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RoutesError(
            f"{what}: the routing Redis at {settings.FARM_ROUTES_HOST}:"
            f"{settings.FARM_ROUTES_PORT} did not answer ({exc}).",
            retryable=True,
        ) from exc
    except redis.RedisError as exc:
        raise RoutesError(f"{what}: the routing Redis said {exc}", retryable=True) from exc


Entry = Route | Backend

# Traefik's KV provider ignores an empty tree: when the last key under the root goes,
# it keeps serving the last configuration it read (traefik/traefik issues 8092 and
# 10010). This backend (no router points at it) is always there, so removing the
# last site's route is seen like any other removal. farm_up writes it; sync keeps it.
KEEPALIVE = Backend("farm-keepalive", "http://127.0.0.1:9")


# redis-py types its replies for the sync and the asyncio client alike: these say
# what the sync client (decode_responses=True) returns.
def _indexed(cli: redis.Redis, name: str) -> list[str] | None:
    raw = cast(str | None, cli.hget(INDEX, name))
    return None if raw is None else list(json.loads(raw))


def _values(cli: redis.Redis, keys: list[str]) -> list[str | None]:
    return cast(list[str | None], cli.mget(keys)) if keys else []


def _index(cli: redis.Redis) -> dict[str, list[str]]:
    raw = cast(dict[str, str], cli.hgetall(INDEX))
    return {name: list(json.loads(keys)) for name, keys in raw.items()}


def put(entry: Entry) -> bool:
    """Write a route (or backend) as given; False when it was already exactly so."""
    want = entry.as_keys()
    cli = client()
    with _talking(f"Writing the route {entry.name}"):
        old = set(_indexed(cli, entry.name) or [])
        have = dict(zip(want, _values(cli, list(want)), strict=True))
        if old == set(want) and have == want:
            return False
        pipe = cli.pipeline(transaction=True)
        if stale := sorted(old - set(want)):
            pipe.delete(*stale)
        pipe.mset(want)
        pipe.hset(INDEX, entry.name, json.dumps(sorted(want)))
        pipe.execute()
    return True


def remove(name: str) -> bool:
    """Remove the route (or backend) ``name`` and all its keys; False when there was none."""
    cli = client()
    with _talking(f"Removing the route {name}"):
        keys = _indexed(cli, name)
        if keys is None:
            return False
        pipe = cli.pipeline(transaction=True)
        if keys:
            pipe.delete(*keys)
        pipe.hdel(INDEX, name)
        pipe.execute()
    return True


def ensure_keepalive() -> bool:
    """Write :data:`KEEPALIVE` (farm_up calls this once the routing Redis runs)."""
    return put(KEEPALIVE)


def names() -> set[str]:
    """Every route and backend the index lists."""
    with _talking("Listing the routes"):
        return set(_index(client()))


@dataclass
class SyncReport:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stray_keys: int = 0

    def lines(self) -> list[str]:
        out = [f"wrote route {n}" for n in self.written]
        out += [f"removed route {n}" for n in self.removed]
        if self.stray_keys:
            out.append(f"deleted {self.stray_keys} key(s) of no route")
        return out


def sync(wanted: Iterable[Entry], *, unwanted: Callable[[str], bool]) -> SyncReport:
    """Write every ``wanted`` route that is missing or different (a lost key comes
    back), remove the listed routes ``unwanted`` says go, and delete keys under the
    root that no route owns (left by a lost index). Other routes are left alone."""
    report = SyncReport()
    entries = {e.name: e for e in [KEEPALIVE, *wanted]}
    for name, entry in sorted(entries.items()):
        if put(entry):
            report.written.append(name)
    for name in sorted(names() - set(entries)):
        if unwanted(name) and remove(name):
            report.removed.append(name)
    cli = client()
    with _talking("Looking for stray route keys"):
        kept = {k for e in entries.values() for k in e.as_keys()}
        kept |= {k for keys in _index(cli).values() for k in keys}
        found = (str(k) for k in cli.scan_iter(match=f"{ROOT}/*", count=1000))
        stray = [k for k in found if k not in kept]
        if stray:
            cli.delete(*stray)
    report.stray_keys = len(stray)
    return report


@dataclass(frozen=True)
class Stats:
    routes: int
    keys: int
    bytes: int  # keys and values under the root: what each Traefik reads on a change


def stats() -> Stats:
    """What Traefik's dynamic configuration weighs (for the density benchmark)."""
    cli = client()
    with _talking("Measuring the routes"):
        keys = [str(k) for k in cli.scan_iter(match=f"{ROOT}/*", count=1000)]
        values = _values(cli, keys)
        size = sum(len(k) + len(v or "") for k, v in zip(keys, values, strict=True))
        return Stats(routes=len(_index(cli)), keys=len(keys), bytes=size)
