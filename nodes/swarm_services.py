"""Declarative Swarm services: a ServiceDef becomes a full spec; applying it is idempotent.

A full spec is built from a ``ServiceDef``; its hash is stored as a label; an
existing service whose hash matches is left alone (so applying twice changes
nothing), a different one is updated in place (Swarm then rolls tasks over
with the service's update_config), a missing one is created.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import docker
import docker.errors
from django.conf import settings
from docker import types as dt

from nodes.swarm_client import (
    MANAGED_LABEL,
    SECOND_NS,
    SPEC_HASH_LABEL,
    STACK_LABEL,
    SwarmError,
    translate_errors,
)

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


Propagation = Literal["private", "rprivate", "shared", "rshared", "slave", "rslave"]


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    type: Literal["volume", "bind"] = "volume"
    read_only: bool = False
    # A bind mount's propagation: ``rslave`` lets a FUSE mount made under the source on
    # the node after the task started (GlusterFS remounted) appear in the container.
    propagation: Propagation | None = None


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
    """A container health check in exec form, or ``Health.DISABLED``.

    Leaving ``ServiceDef.health`` unset keeps the image's own HEALTHCHECK;
    ``DISABLED`` turns it off (Docker's ``NONE``)."""

    test: tuple[str, ...]
    interval_s: float = 10
    timeout_s: float = 5
    retries: int = 3
    start_period_s: float = 20

    DISABLED: ClassVar[Health]

    @property
    def disabled(self) -> bool:
        return self.test == ("NONE",)


Health.DISABLED = Health(("NONE",))


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
    max_replicas_per_node: int | None = None  # None: as many as the scheduler likes

    def spec_hash(self) -> str:
        document = asdict(self)
        # Fields added later count only when set, so that a service that does not use
        # them keeps its hash and is not rolled over by the upgrade that added them.
        if document["max_replicas_per_node"] is None:
            del document["max_replicas_per_node"]
        for mount in document["mounts"]:
            if mount["propagation"] is None:
                del mount["propagation"]
        return hashlib.sha256(
            json.dumps(document, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]


Outcome = Literal["created", "updated", "replaced", "unchanged"]


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
    if sdef.health is not None and sdef.health.disabled:
        healthcheck = dt.Healthcheck(test=["NONE"])
    elif sdef.health is not None:
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
            dt.Mount(
                m.target, m.source, type=m.type, read_only=m.read_only, propagation=m.propagation
            )
            for m in sdef.mounts
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
        placement=dt.Placement(
            constraints=sdef.constraints or None, maxreplicas=sdef.max_replicas_per_node
        ),
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
        if _mode_kind(existing["Spec"].get("Mode") or {}) != _mode_kind(spec["mode"]):
            # Swarm cannot turn a replicated service into a global one (or back) in place.
            cli.api.remove_service(existing["ID"])
            _wait_removed(cli, sdef.name)
            cli.api.create_service(**spec)
            return "replaced"
        cli.api.update_service(
            existing["ID"], existing["Version"]["Index"], fetch_current_spec=False, **spec
        )
        return "updated"


def _mode_kind(mode: Mapping[str, Any]) -> set[str]:
    """{"replicated"} or {"global"}: the Engine answers "Replicated", the SDK writes
    "replicated" (Go's JSON takes either)."""
    return {key.lower() for key in mode}


def _wait_removed(cli: docker.DockerClient, name: str, timeout_s: float = 30) -> None:
    """Until the name is free again (a removed service's name is taken a moment longer)."""
    deadline = time.monotonic() + timeout_s
    while find_service(cli, name) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


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
