"""The Docker client, and the one error every Docker call is turned into (SwarmError:
a human message with the engine's own words, and whether retrying can help)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import docker
import docker.errors
import requests
from django.conf import settings

from farm.errors import FarmError

logger = logging.getLogger(__name__)

STACK_LABEL = "com.docker.stack.namespace"
SPEC_HASH_LABEL = "farm.spec-hash"
MANAGED_LABEL = "farm.managed"
SECOND_NS = 1_000_000_000


class SwarmError(FarmError):
    """The Docker Engine or Swarm refused or could not be reached."""


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn docker/requests exceptions into SwarmError("<action>: <engine's words>")."""
    try:
        yield
    except SwarmError:
        raise
    except docker.errors.NotFound as exc:
        raise SwarmError(f"{action}: {_explain(exc)}", retryable=False) from exc
    except docker.errors.APIError as exc:
        status = exc.status_code or 0
        raise SwarmError(f"{action}: {_explain(exc)}", retryable=status >= 500) from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        # The engine is gone (or never answered): forget the client, so that the next
        # call connects again, to the next manager of FARM_DOCKER_HOSTS if this one died.
        reset_client_cache()
        raise SwarmError(
            f"{action}: the Docker Engine does not answer ({exc}). {ENGINE_HINT}",
            retryable=True,
        ) from exc


def remove_when_released(
    remove: Callable[[], object], what: str, *, attempts: int = 20, pause_s: float = 1.0
) -> None:
    """Remove a Docker object the engine may hold a little longer (a network until its
    last task has detached, a volume until its container is gone): tried again every
    ``pause_s`` seconds; one already gone counts as removed. SwarmError (retryable)
    with the engine's words once ``attempts`` tries have failed."""
    for attempt in range(attempts):
        try:
            remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if attempt == attempts - 1:
                raise SwarmError(f"Removing {what}: {_explain(exc)}", retryable=True) from exc
            time.sleep(pause_s)


ENGINE_HINT = (
    "Start it (on this machine: `dockerd &`, or `manage.py farm_up --start-engine`) "
    "or point DOCKER_HOST at a Swarm manager."
)


def _explain(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc)


# A manager must answer its probe (/_ping, /info) this fast, or the next one is tried.
PROBE_TIMEOUT_S = 5


def docker_hosts() -> list[str]:
    """The engines the panel may use, in order: FARM_DOCKER_HOSTS, else DOCKER_HOST as
    the one host ("": the SDK's default, the local socket)."""
    return list(settings.FARM_DOCKER_HOSTS) or [settings.DOCKER_HOST]


def uses_local_engine() -> bool:
    """No engine is named: the panel drives the one of this machine (and may start it,
    or clean up after it)."""
    return docker_hosts() == [""]


def _connect(base_url: str, timeout: int) -> docker.DockerClient:
    # version="auto": Debian's engine speaks API 1.41; the SDK's default is newer.
    if base_url:
        return docker.DockerClient(base_url=base_url, version="auto", timeout=timeout)
    return docker.DockerClient.from_env(version="auto", timeout=timeout)


def _first_manager(hosts: tuple[str, ...], timeout: int) -> docker.DockerClient:
    """The first of several engines that answers and is a Swarm manager; a worker or
    an engine in no swarm cannot create services, and is skipped."""
    why_not = []
    for host in hosts:
        try:
            probe = _connect(host, min(timeout, PROBE_TIMEOUT_S))
            try:
                probe.ping()
                manager = bool(probe.info().get("Swarm", {}).get("ControlAvailable"))
            finally:
                probe.close()
            if manager:
                return _connect(host, timeout)
            why_not.append(f"{host} is not a Swarm manager")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            why_not.append(f"{host} does not answer ({exc})")
        logger.warning("Docker Engine %s skipped: %s", host, why_not[-1])
    raise SwarmError(
        "No Docker Engine of FARM_DOCKER_HOSTS is a Swarm manager that answers: "
        + "; ".join(why_not)
        + ".",
        retryable=True,
    )


@cache
def _client(hosts: tuple[str, ...], timeout: int) -> docker.DockerClient:
    # One engine is used as it is, manager or not (farm_up makes it one; engine_status
    # says what it is), exactly as before there could be several.
    if len(hosts) == 1:
        return _connect(hosts[0], timeout)
    return _first_manager(hosts, timeout)


def client() -> docker.DockerClient:
    """The Docker client (cached until a connection error); SwarmError when no engine
    answers, and in a web process, which has no Docker socket."""
    if settings.FARM_PROCESS_ROLE == "web":
        raise SwarmError(
            "This is a web process (FARM_PROCESS_ROLE=web): it has no Docker socket. "
            "The workers talk to Docker; a page reads what they recorded.",
            retryable=False,
        )
    with translate_errors("Connecting to the Docker Engine"):
        return _client(tuple(docker_hosts()), settings.FARM_DOCKER_TIMEOUT)


def reset_client_cache() -> None:
    _client.cache_clear()


def engine_status() -> tuple[bool, str]:
    """(available, why not) — for the banner and the run command."""
    try:
        info = client().info()
    except SwarmError as exc:
        return False, exc.message
    except Exception as exc:  # the banner must never break a page
        return False, f"The Docker Engine could not be asked ({exc})."
    state = info.get("Swarm", {}).get("LocalNodeState", "inactive")
    if state != "active":
        return False, "The Docker Engine is not part of a Swarm (run `manage.py farm_up`)."
    if not info.get("Swarm", {}).get("ControlAvailable"):
        return False, "This Docker Engine is not a Swarm manager; point DOCKER_HOST at one."
    return True, ""
