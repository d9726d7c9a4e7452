"""Convergence, read from task states (the SDK does not wait the way the CLI does)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests

from nodes.swarm_client import SwarmError, translate_errors
from nodes.swarm_services import find_service

# --------------------------------------------------------------------------
# Tasks: convergence is read from task states (the SDK does not wait).
# --------------------------------------------------------------------------

FAILED_TASK_STATES = {"failed", "rejected", "orphaned"}

# What the engine says when a VXLAN interface with a network's VXLAN id is left over
# (stranded by an earlier swarm: seen in CI after `swarm leave --force` with the farm
# running): every task on that network is rejected, however often Swarm retries.
STALE_OVERLAY = re.compile(
    r"subnet sandbox join failed.*error creating vxlan interface: file exists", re.I
)
STALE_OVERLAY_FIX = (
    "The Docker Engine holds a stale VXLAN interface with this network's id (left "
    "by an earlier swarm, e.g. one left with `docker swarm leave --force` while its "
    "services ran). Run `manage.py farm_down --reset-engine` (it removes every "
    "service and network, leaves the swarm, deletes the stale VXLAN interfaces and "
    "starts a new swarm), then `manage.py farm_up`; by hand, delete the host's "
    "`vx-...` interfaces that `ip -d link show type vxlan` lists."
)


class UpdateRolledBack(SwarmError):
    """Swarm rolled an update back (or paused it): the spec written did not take."""


class StaleOverlayState(SwarmError):
    """Tasks are rejected because of an earlier swarm's leftover overlay state."""


def stale_overlay_error(service: str, problem: str) -> StaleOverlayState | None:
    """The error to raise when ``problem`` is the engine's stale-overlay message."""
    if not STALE_OVERLAY.search(problem):
        return None
    return StaleOverlayState(f"{service}: {problem}. {STALE_OVERLAY_FIX}", retryable=False)


def _stale_overlay(service: str, tasks: list[TaskState]) -> StaleOverlayState | None:
    """Twice rejected for the stale-overlay reason, and no task got further since."""
    ordered = sorted(tasks, key=lambda t: _instant(t.created_at))
    stale = [i for i, t in enumerate(ordered) if STALE_OVERLAY.search(t.error)]
    if len(stale) < 2:
        return None
    later = ordered[stale[-1] + 1 :]
    if any(t.state in ("preparing", "starting", "running") for t in later):
        return None
    last = ordered[stale[-1]]
    return stale_overlay_error(service, f"{last.state}: {last.error}")


def _instant(raw: str) -> str:
    """A sortable form of the engine's timestamps (their fractions vary in length)."""
    head, _, fraction = raw.rstrip("Z").partition(".")
    return f"{head}.{fraction.ljust(9, '0')}"


@dataclass(frozen=True)
class TaskState:
    service: str
    task_id: str
    state: str
    desired: str
    message: str
    error: str
    node_id: str
    container_id: str
    health: str | None = None
    created_at: str = ""  # RFC 3339 as the engine writes it (nanoseconds)


def service_tasks(
    cli: docker.DockerClient, service: str, *, up_to_date: bool = False
) -> list[TaskState]:
    """The tasks of a service; ``up_to_date``: only those that run its current spec.

    ``_up-to-date`` is the filter the docker CLI's own convergence wait uses: Swarm
    keeps a task that runs the service's current spec version (the one the last
    create or update wrote, or the previous one after a rollback), and drops the
    tasks of every earlier spec, even while they still run."""
    filters: dict[str, str] = {"service": service}
    if up_to_date:
        filters["_up-to-date"] = "true"
    with translate_errors(f"Reading the tasks of {service}"):
        tasks = cli.api.tasks(filters=filters)
    return [_task_state(service, task) for task in tasks]


def tasks_by_service(cli: docker.DockerClient, names: dict[str, str]) -> dict[str, list[TaskState]]:
    """The tasks of many services in one call (the engine's whole task list): ``names``
    maps a service's id to its name; tasks of other services are left out."""
    with translate_errors("Reading the tasks of the Swarm"):
        tasks = cli.api.tasks()
    out: dict[str, list[TaskState]] = {name: [] for name in names.values()}
    for task in tasks:
        name = names.get(task.get("ServiceID", ""))
        if name is not None:
            out[name].append(_task_state(name, task))
    return out


def _task_state(service: str, task: dict[str, Any]) -> TaskState:
    status = task.get("Status", {})
    return TaskState(
        service=service,
        task_id=task["ID"],
        state=status.get("State", ""),
        desired=task.get("DesiredState", ""),
        message=status.get("Message", ""),
        error=status.get("Err", ""),
        node_id=task.get("NodeID", ""),
        container_id=status.get("ContainerStatus", {}).get("ContainerID", ""),
        created_at=task.get("CreatedAt", ""),
    )


def container_health(cli: docker.DockerClient, container_id: str) -> str | None:
    """'healthy', 'unhealthy', 'starting', or None when it has no health check."""
    if not container_id:
        return None
    try:
        info = cli.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return None
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return None  # a task on another node: its health shows as the task state
    health = info.get("State", {}).get("Health")
    return str(health["Status"]) if health else None


def wait_converged(
    cli: docker.DockerClient,
    services: list[str],
    *,
    timeout_s: float,
    replicas: dict[str, int] | None = None,
    require_healthy: bool = True,
    give_up_after_s: float = 20,
    poll_s: float = 1.0,
    on_progress: Callable[[str], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
) -> None:
    """Wait until each service has its replicas running the spec last written to it
    (and healthy when it has a health check), and any update Swarm started for that
    spec has completed.

    Right after an update, before Swarm has even started rolling it out, the old
    tasks still run and are healthy: they do not count, only tasks of the current
    spec version do (Swarm's ``_up-to-date`` filter). While Swarm says the update
    is in progress (or rolling back) the service is not converged either; an
    update Swarm rolled back or paused is a failure with Swarm's words.

    A problem Swarm reports and does not get past (an image that does not exist,
    no node with room, a task that keeps crashing) fails within
    ``give_up_after_s`` with Swarm's own words, instead of at the timeout.

    ``require_healthy=False`` counts a running task as ready whatever its health
    (site services have no Docker health check: the panel probes them through
    Traefik instead), and asks the engine nothing per container.
    """
    deadline = time.monotonic() + timeout_s
    first_seen: dict[str, float] = {}
    last_report = ""
    while True:
        pending: list[str] = []
        for name in services:
            want = (replicas or {}).get(name, 1)
            update = _update_state(cli, name)
            if update in ("rollback_completed", "paused", "rollback_paused"):
                why = "; ".join(
                    sorted({t.error for t in service_tasks(cli, name) if t.error})
                ) or _update_message(cli, name)
                raise UpdateRolledBack(
                    f"{name}: the update did not take and Swarm {update.replace('_', ' ')}"
                    f" it: {why}",
                    retryable=False,
                )
            if update in ("updating", "rollback_started"):
                pending.append(f"{name}: {update}")
                continue
            tasks = service_tasks(cli, name, up_to_date=True)
            current = [t for t in tasks if t.desired == "running"]
            ready = [
                t
                for t in current
                if t.state == "running"
                and (
                    not require_healthy
                    or container_health(cli, t.container_id) in (None, "healthy")
                )
            ]
            if len(ready) >= want:
                first_seen.pop(name, None)
                continue
            stale = _stale_overlay(name, tasks)
            if stale is not None:
                raise stale  # waiting does not make it better
            problem = _task_problem(tasks, current)
            if problem:
                seen = first_seen.setdefault(name, time.monotonic())
                if time.monotonic() - seen > give_up_after_s:
                    raise SwarmError(f"{name}: {problem}", retryable=False)
                pending.append(f"{name}: {problem}")
            else:
                first_seen.pop(name, None)
                states = ", ".join(sorted({t.state for t in current})) or "no tasks yet"
                pending.append(f"{name}: {states}")
        if not pending:
            return
        report = "; ".join(pending)
        if on_progress and report != last_report:
            on_progress(report)
            last_report = report
        if time.monotonic() > deadline:
            raise SwarmError(
                f"Services did not converge within {timeout_s:.0f} s: {report}", retryable=True
            )
        if check_cancelled:
            check_cancelled()
        time.sleep(poll_s)


def _update_state(cli: docker.DockerClient, name: str) -> str:
    svc = find_service(cli, name)
    return str(((svc or {}).get("UpdateStatus") or {}).get("State", ""))


def _update_message(cli: docker.DockerClient, name: str) -> str:
    svc = find_service(cli, name)
    return str(((svc or {}).get("UpdateStatus") or {}).get("Message", ""))


def _task_problem(tasks: list[TaskState], current: list[TaskState]) -> str:
    """Swarm's words for why a service's tasks are not running, if it said any."""
    for task in current:
        if task.state == "pending" and task.error:
            return f"pending: {task.error}"  # e.g. "no suitable node (insufficient memory...)"
    progressing = {
        "new",
        "allocated",
        "pending",
        "assigned",
        "accepted",
        "ready",
        "preparing",
        "starting",
        "running",
    }
    failures = [t for t in tasks if t.state in FAILED_TASK_STATES]
    if failures and not any(t.state in progressing for t in current):
        worst = failures[0]
        return f"{worst.state}: {worst.error or worst.message}"  # e.g. "No such image: ..."
    return ""


def wait_containers_gone(
    cli: docker.DockerClient, services: set[str], *, timeout_s: float = 90
) -> bool:
    """Wait until no container of these services is left (a network cannot be removed
    while one is attached). True when they are gone, False at the timeout."""
    deadline = time.monotonic() + timeout_s
    while services:
        with translate_errors("Listing containers"):
            # The summary list: inspecting each would race with their removal.
            left = [
                c
                for c in cli.api.containers(all=True)
                if c.get("Labels", {}).get("com.docker.swarm.service.name") in services
            ]
        if not left:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True
