"""The one way into the Docker Engine / Swarm API (a facade over three modules).

Everything that creates or reads Swarm objects (platform services, site
stacks, node inventory) goes through here, so errors come out as one
``SwarmError`` with a human message and a retry hint:

* ``nodes.swarm_client``: the client, SwarmError, error translation;
* ``nodes.swarm_services``: declarative services applied idempotently;
* ``nodes.swarm_tasks``: task states, health and convergence;
* ``nodes.swarm_reset``: leaving an engine clean for the next farm.
"""

from nodes.swarm_client import (
    ENGINE_HINT,
    MANAGED_LABEL,
    SECOND_NS,
    SPEC_HASH_LABEL,
    STACK_LABEL,
    SwarmError,
    client,
    docker_hosts,
    engine_status,
    remove_when_released,
    reset_client_cache,
    translate_errors,
    uses_local_engine,
)
from nodes.swarm_services import (
    FileRef,
    Health,
    Mount,
    NamedContent,
    Outcome,
    Port,
    ServiceDef,
    apply_service,
    find_service,
    network_id,
    remove_service,
    scale_service,
)
from nodes.swarm_tasks import (
    FAILED_TASK_STATES,
    STALE_OVERLAY_FIX,
    StaleOverlayState,
    TaskState,
    UpdateRolledBack,
    container_health,
    service_tasks,
    tasks_by_service,
    wait_containers_gone,
    wait_converged,
)

__all__ = [
    "ENGINE_HINT",
    "FAILED_TASK_STATES",
    "MANAGED_LABEL",
    "SECOND_NS",
    "SPEC_HASH_LABEL",
    "STACK_LABEL",
    "STALE_OVERLAY_FIX",
    "FileRef",
    "Health",
    "Mount",
    "NamedContent",
    "Outcome",
    "Port",
    "ServiceDef",
    "StaleOverlayState",
    "SwarmError",
    "TaskState",
    "UpdateRolledBack",
    "apply_service",
    "client",
    "container_health",
    "docker_hosts",
    "engine_status",
    "find_service",
    "network_id",
    "remove_service",
    "remove_when_released",
    "reset_client_cache",
    "scale_service",
    "service_tasks",
    "tasks_by_service",
    "translate_errors",
    "uses_local_engine",
    "wait_containers_gone",
    "wait_converged",
]
