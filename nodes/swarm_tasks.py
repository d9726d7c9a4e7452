"""Convergence, read from task states (the SDK does not wait the way the CLI does)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors
import requests

from nodes.swarm_client import SwarmError, translate_errors
from nodes.swarm_services import find_service

# --------------------------------------------------------------------------
# Tasks: convergence is read from task states (the SDK does not wait).
# --------------------------------------------------------------------------

FAILED_TASK_STATES = {"failed", "rejected", "orphaned"}


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


def service_tasks(cli: docker.DockerClient, service: str) -> list[TaskState]:
    with translate_errors(f"Reading the tasks of {service}"):
        tasks = cli.api.tasks(filters={"service": service})
    out = []
    for task in tasks:
        status = task.get("Status", {})
        out.append(
            TaskState(
                service=service,
                task_id=task["ID"],
                state=status.get("State", ""),
                desired=task.get("DesiredState", ""),
                message=status.get("Message", ""),
                error=status.get("Err", ""),
                node_id=task.get("NodeID", ""),
                container_id=status.get("ContainerStatus", {}).get("ContainerID", ""),
            )
        )
    return out


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
    on_progress: Callable[[str], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
) -> None:
    """Wait until each service has its replicas running (and healthy when it has a
    health check).

    A problem Swarm reports and does not get past (an image that does not exist,
    no node with room, a task that keeps crashing) fails within
    ``give_up_after_s`` with Swarm's own words, instead of at the timeout.
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
                raise SwarmError(
                    f"{name}: the update did not take and Swarm {update.replace('_', ' ')}"
                    f" it: {why}",
                    retryable=False,
                )
            if update in ("updating", "rollback_started"):
                pending.append(f"{name}: {update}")
                continue
            tasks = service_tasks(cli, name)
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
        time.sleep(1)


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
