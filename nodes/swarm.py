"""The one module that talks to the Docker Engine / Swarm API.

Everything that creates or reads Swarm objects (platform services, site
stacks, node inventory) goes through here, so errors come out as one
``SwarmError`` with a human message and a retry hint, and "apply this
service" means the same everywhere: a full spec is built from a
``ServiceDef``; its hash is stored as a label; an existing service whose hash
matches is left alone (so applying twice changes nothing), a different one is
updated in place (Swarm then rolls tasks over with the service's
update_config), a missing one is created.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Literal

import docker
import docker.errors
import requests
from django.conf import settings
from docker import types as dt

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


# --------------------------------------------------------------------------
# Declarative services
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedContent:
    """The content of a secret or config and the name it gets in Swarm.

    Secrets and configs are immutable, so the name carries a hash of the
    content: a change is a new object (services move to it on update) and
    the old one is pruned once nothing uses it.
    """

    base: str
    content: str

    @property
    def name(self) -> str:
        return f"{self.base}-{hashlib.sha256(self.content.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class Port:
    published: int
    target: int
    protocol: Literal["tcp", "udp"] = "tcp"


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    type: Literal["volume", "bind"] = "volume"
    read_only: bool = False


@dataclass(frozen=True)
class FileRef:
    """A secret or config, by name, mounted at ``target`` in the container."""

    name: str
    target: str
    mode: int = 0o444
    uid: str = "0"
    gid: str = "0"


@dataclass(frozen=True)
class Health:
    test: tuple[str, ...]
    interval_s: float = 10
    timeout_s: float = 5
    retries: int = 3
    start_period_s: float = 20


@dataclass
class ServiceDef:
    name: str
    image: str
    stack: str
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    container_labels: dict[str, str] = field(default_factory=dict)
    networks: dict[str, list[str]] = field(default_factory=dict)  # network name -> aliases
    mounts: list[Mount] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)  # always host mode (no routing mesh)
    endpoint_mode: Literal["vip", "dnsrr"] = "dnsrr"
    secrets: list[FileRef] = field(default_factory=list)
    configs: list[FileRef] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    replicas: int = 1
    global_mode: bool = False
    cpu_limit: float | None = None
    mem_limit_mb: int | None = None
    cpu_reservation: float | None = None
    mem_reservation_mb: int | None = None
    health: Health | None = None
    user: str | None = None
    stop_grace_s: int = 10
    restart_delay_s: int = 5
    restart_max_attempts: int = 0  # 0: keep trying
    hosts: dict[str, str] = field(default_factory=dict)

    def spec_hash(self) -> str:
        return hashlib.sha256(
            json.dumps(asdict(self), sort_keys=True, default=str).encode()
        ).hexdigest()[:16]


Outcome = Literal["created", "updated", "unchanged"]


def _file_refs(
    refs: list[FileRef], lookup: Callable[[str], str], kind: Literal["secret", "config"]
) -> list[Any]:
    out: list[Any] = []
    for ref in refs:
        object_id = lookup(ref.name)
        if kind == "secret":
            out.append(
                dt.SecretReference(
                    object_id,
                    ref.name,
                    filename=ref.target,
                    uid=ref.uid,
                    gid=ref.gid,
                    mode=ref.mode,
                )
            )
        else:
            out.append(
                dt.ConfigReference(
                    object_id,
                    ref.name,
                    filename=ref.target,
                    uid=ref.uid,
                    gid=ref.gid,
                    mode=ref.mode,
                )
            )
    return out


def _build(cli: docker.DockerClient, sdef: ServiceDef) -> dict[str, Any]:
    api = cli.api
    labels = {
        **sdef.labels,
        STACK_LABEL: sdef.stack,
        MANAGED_LABEL: "true",
        SPEC_HASH_LABEL: sdef.spec_hash(),
    }
    healthcheck = None
    if sdef.health is not None:
        healthcheck = dt.Healthcheck(
            test=list(sdef.health.test),
            interval=int(sdef.health.interval_s * SECOND_NS),
            timeout=int(sdef.health.timeout_s * SECOND_NS),
            retries=sdef.health.retries,
            start_period=int(sdef.health.start_period_s * SECOND_NS),
        )
    container = dt.ContainerSpec(
        image=sdef.image,
        command=sdef.command,
        args=sdef.args,
        env=[f"{k}={v}" for k, v in sorted(sdef.env.items())],
        labels={**sdef.container_labels, STACK_LABEL: sdef.stack},
        mounts=[
            dt.Mount(m.target, m.source, type=m.type, read_only=m.read_only) for m in sdef.mounts
        ],
        secrets=_file_refs(sdef.secrets, lambda n: api.inspect_secret(n)["ID"], "secret"),
        configs=_file_refs(sdef.configs, lambda n: api.inspect_config(n)["ID"], "config"),
        healthcheck=healthcheck,
        user=sdef.user,
        stop_grace_period=sdef.stop_grace_s * SECOND_NS,
        hosts=sdef.hosts or None,
    )
    resources = dt.Resources(
        cpu_limit=int(sdef.cpu_limit * SECOND_NS) if sdef.cpu_limit else None,
        mem_limit=sdef.mem_limit_mb * 1024 * 1024 if sdef.mem_limit_mb else None,
        cpu_reservation=(
            int(sdef.cpu_reservation * settings.FARM_CPU_RESERVATION_SCALE * SECOND_NS) or None
            if sdef.cpu_reservation
            else None
        ),
        mem_reservation=(
            sdef.mem_reservation_mb * 1024 * 1024 if sdef.mem_reservation_mb else None
        ),
    )
    networks = [
        dt.NetworkAttachmentConfig(network_id(cli, name), aliases=aliases or None)
        for name, aliases in sorted(sdef.networks.items())
    ]
    task_template = dt.TaskTemplate(
        container_spec=container,
        resources=resources,
        restart_policy=dt.RestartPolicy(
            condition="any",
            delay=sdef.restart_delay_s * SECOND_NS,
            max_attempts=sdef.restart_max_attempts,
        ),
        placement=dt.Placement(constraints=sdef.constraints or None),
        networks=networks,
    )
    mode = (
        dt.ServiceMode("global")
        if sdef.global_mode
        else dt.ServiceMode("replicated", replicas=sdef.replicas)
    )
    ports: Any = {p.published: (p.target, p.protocol, "host") for p in sdef.ports}
    endpoint = dt.EndpointSpec(mode=sdef.endpoint_mode, ports=ports or None)
    return {
        "task_template": task_template,
        "name": sdef.name,
        "labels": labels,
        "mode": mode,
        "update_config": dt.UpdateConfig(
            parallelism=1,
            delay=5 * SECOND_NS,
            failure_action="rollback",
            monitor=15 * SECOND_NS,
            order="stop-first" if sdef.ports else "start-first",
        ),
        "rollback_config": dt.RollbackConfig(
            parallelism=1, failure_action="pause", order="stop-first"
        ),
        "endpoint_spec": endpoint,
    }


def network_id(cli: docker.DockerClient, name: str) -> str:
    with translate_errors(f"Looking up network {name}"):
        for net in cli.api.networks(names=[name]):
            if net["Name"] == name:
                return str(net["Id"])
    raise SwarmError(f"Network {name} does not exist.", retryable=False)


def find_service(cli: docker.DockerClient, name: str) -> dict[str, Any] | None:
    with translate_errors(f"Looking up service {name}"):
        for svc in cli.api.services(filters={"name": name}):
            if svc["Spec"]["Name"] == name:
                return dict(svc)
    return None


def apply_service(cli: docker.DockerClient, sdef: ServiceDef) -> Outcome:
    """Create or update the service so it matches ``sdef``; idempotent."""
    existing = find_service(cli, sdef.name)
    with translate_errors(f"Applying service {sdef.name}"):
        spec = _build(cli, sdef)
        if existing is None:
            cli.api.create_service(**spec)
            return "created"
        if (
            existing["Spec"].get("Labels", {}).get(SPEC_HASH_LABEL)
            == spec["labels"][SPEC_HASH_LABEL]
        ):
            return "unchanged"
        cli.api.update_service(
            existing["ID"], existing["Version"]["Index"], fetch_current_spec=False, **spec
        )
        return "updated"


def remove_service(cli: docker.DockerClient, name: str) -> bool:
    existing = find_service(cli, name)
    if existing is None:
        return False
    with translate_errors(f"Removing service {name}"):
        try:
            cli.api.remove_service(existing["ID"])
        except docker.errors.NotFound:
            return False
    return True


def scale_service(cli: docker.DockerClient, name: str, replicas: int) -> bool:
    """Set the replica count without touching the rest of the spec; True if it changed."""
    existing = find_service(cli, name)
    if existing is None:
        raise SwarmError(f"Service {name} does not exist.", retryable=False)
    current = existing["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas")
    if current == replicas:
        return False
    with translate_errors(f"Scaling {name} to {replicas}"):
        spec = existing["Spec"]
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        cli.api.update_service(
            existing["ID"],
            existing["Version"]["Index"],
            task_template=spec["TaskTemplate"],
            name=spec["Name"],
            labels=spec.get("Labels"),
            mode=spec["Mode"],
            update_config=spec.get("UpdateConfig"),
            rollback_config=spec.get("RollbackConfig"),
            endpoint_spec=spec.get("EndpointSpec"),
            fetch_current_spec=False,
        )
    return True


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
                raise SwarmError(
                    f"{name}: the update did not take and Swarm {update.replace('_', ' ')}"
                    f" it ({_update_message(cli, name)})",
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
