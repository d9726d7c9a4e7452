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


@cache
def _client(base_url: str, timeout: int) -> docker.DockerClient:
    # version="auto": Debian's engine speaks API 1.41; the SDK's default is newer.
    if base_url:
        return docker.DockerClient(base_url=base_url, version="auto", timeout=timeout)
    return docker.DockerClient.from_env(version="auto", timeout=timeout)


def client() -> docker.DockerClient:
    with translate_errors("Connecting to the Docker Engine"):
        return _client(settings.DOCKER_HOST, settings.FARM_DOCKER_TIMEOUT)


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
