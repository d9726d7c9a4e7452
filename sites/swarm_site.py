"""Make the Swarm (and Traefik's routes) match a site's stack spec, or remove the
stack; both idempotent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import docker
import docker.errors
from django.conf import settings

from nodes import routes
from nodes.overlay import check_encryption, network_options, overlay_encrypted
from nodes.swarm import (
    MANAGED_LABEL,
    STACK_LABEL,
    SwarmError,
    TaskState,
    apply_service,
    client,
    find_service,
    remove_service,
    remove_when_released,
    scale_service,
    service_tasks,
    tasks_by_service,
    translate_errors,
    wait_containers_gone,
    wait_converged,
)
from sites.stack import SiteStackSpec, maintenance_route_name, network_name, stack_name

Log = Callable[[str], None]


@cache
def _gateway_address() -> str:
    with translate_errors("Looking up docker_gwbridge"):
        net = client().networks.get("docker_gwbridge")
    return str(net.attrs["IPAM"]["Config"][0]["Gateway"])


def site_db_host() -> str:
    """Where php-fpm finds its database. ``auto`` (one machine): the farm's MariaDB
    through its published port on this node's gateway, so php needs no shared
    network; production sets ProxySQL's address."""
    if settings.FARM_SITE_DB_HOST != "auto":
        return str(settings.FARM_SITE_DB_HOST)
    return f"{_gateway_address()}:{settings.FARM_MARIADB_PORT}"


def _labels(stack: str) -> dict[str, str]:
    return {STACK_LABEL: stack, MANAGED_LABEL: "true"}


def ensure_network(cli: docker.DockerClient, spec: SiteStackSpec) -> bool:
    """The site's own overlay network, encrypted as FARM_OVERLAY_ENCRYPTION says; one that
    exists with the other encryption is refused, not used."""
    encrypted = overlay_encrypted()
    with translate_errors(f"Creating network {spec.network}"):
        existing = [n for n in cli.networks.list(names=[spec.network]) if n.name == spec.network]
        if existing:
            check_encryption(
                spec.network,
                existing[0].attrs,
                encrypted,
                f"set FARM_OVERLAY_ENCRYPTION back, or remove the stack {spec.stack} "
                "(its services and network) so that it is made again.",
            )
            return False
        cli.networks.create(
            spec.network,
            driver="overlay",
            attachable=False,
            scope="swarm",
            options=network_options(encrypted),
            labels=_labels(spec.stack),
        )
    return True


def _encryption_word() -> str:
    return "encrypted" if overlay_encrypted() else "unencrypted: FARM_OVERLAY_ENCRYPTION=off"


def ensure_objects(cli: docker.DockerClient, spec: SiteStackSpec) -> list[str]:
    done = []
    with translate_errors(f"Creating the secrets and configs of {spec.stack}"):
        for secret in spec.secrets:
            if not [
                s for s in cli.secrets.list(filters={"name": secret.name}) if s.name == secret.name
            ]:
                cli.secrets.create(
                    name=secret.name, data=secret.content.encode(), labels=_labels(spec.stack)
                )
                done.append(f"created secret {secret.name}")
        for config in spec.configs:
            if not [
                c for c in cli.configs.list(filters={"name": config.name}) if c.name == config.name
            ]:
                cli.configs.create(
                    name=config.name, data=config.content.encode(), labels=_labels(spec.stack)
                )
                done.append(f"created config {config.name}")
    return done


def apply_routes(spec: SiteStackSpec) -> list[str]:
    """The site's routes as the spec says (its own; the maintenance page's while on)."""
    done = [f"wrote route {r.name} (Host {r.domain})" for r in spec.routes if routes.put(r)]
    maintenance = maintenance_route_name(spec.site_id)
    if maintenance not in {r.name for r in spec.routes} and routes.remove(maintenance):
        done.append(f"removed route {maintenance}")
    return done


# How long a new stack's nginx waits for php-fpm (and Redis) to run before it is
# created anyway (the converge step then says what is wrong).
BACKENDS_FIRST_S = 30


def apply_stack(spec: SiteStackSpec, log: Log) -> list[str]:
    """Network, secrets, configs, routes, services; then drop what the spec no longer
    uses. The route comes first: Traefik then serves the site the moment nginx runs.

    A new stack's nginx (the service Traefik reaches) is created once php-fpm and
    Redis run: the site never answers 502 while php-fpm starts, and nginx's task
    starts on a machine that is not busy starting the others at the same time."""
    cli = client()
    done = []
    if ensure_network(cli, spec):
        done.append(f"created network {spec.network} ({_encryption_word()})")
    done += ensure_objects(cli, spec)
    done += apply_routes(spec)
    front = [s for s in spec.services if spec.shard_network in s.networks]
    backends = [s for s in spec.services if s not in front]
    new_front = [s for s in front if find_service(cli, s.name) is None]
    for sdef in backends + front:
        if new_front and sdef is new_front[0]:
            _wait_backends(cli, [b.name for b in backends], log)
        outcome = apply_service(cli, sdef)
        if outcome != "unchanged":
            done.append(f"{outcome} service {sdef.name}")
    wanted = set(spec.service_names)
    for svc in stack_services(cli, spec.stack):
        if svc["Spec"]["Name"] not in wanted:  # e.g. redis after the cache was turned off
            remove_service(cli, svc["Spec"]["Name"])
            done.append(f"removed service {svc['Spec']['Name']}")
    done += prune_objects(cli, spec.stack, keep={o.name for o in [*spec.secrets, *spec.configs]})
    for line in done:
        log(line)
    return done


def _wait_backends(cli: docker.DockerClient, names: list[str], log: Log) -> None:
    try:
        wait_converged(
            cli,
            names,
            timeout_s=BACKENDS_FIRST_S,
            require_healthy=False,
            give_up_after_s=BACKENDS_FIRST_S,
            poll_s=0.1,
        )
    except SwarmError as exc:  # nginx is created all the same; converge reports it
        log(f"creating nginx before its backends run: {exc.message}")


def stack_services(cli: docker.DockerClient, stack: str) -> list[dict[str, Any]]:
    with translate_errors(f"Listing the services of {stack}"):
        return [dict(s) for s in cli.api.services(filters={"label": f"{STACK_LABEL}={stack}"})]


def prune_objects(cli: docker.DockerClient, stack: str, keep: set[str]) -> list[str]:
    """Remove the stack's secrets/configs not in ``keep`` and not used by a service."""
    done = []
    in_use: set[str] = set()
    for svc in stack_services(cli, stack):
        container = svc["Spec"]["TaskTemplate"]["ContainerSpec"]
        in_use.update(r["SecretName"] for r in container.get("Secrets") or [])
        in_use.update(r["ConfigName"] for r in container.get("Configs") or [])
    with translate_errors(f"Pruning the secrets and configs of {stack}"):
        for collection, kind in ((cli.secrets, "secret"), (cli.configs, "config")):
            for obj in collection.list(filters={"label": f"{STACK_LABEL}={stack}"}):
                if obj.name in keep or obj.name in in_use:
                    continue
                try:
                    obj.remove()
                except docker.errors.APIError:
                    continue  # still referenced by a task that is going away: next time
                done.append(f"removed {kind} {obj.name}")
    return done


def wait_stack(
    spec: SiteStackSpec,
    *,
    log: Log,
    timeout_s: float,
    check_cancelled: Callable[[], None] | None = None,
) -> None:
    # Running is enough: the services have no health check (Traefik's answer is
    # the readiness test, the next step), and nothing is asked per container.
    wait_converged(
        client(),
        spec.service_names,
        timeout_s=timeout_s,
        require_healthy=False,
        poll_s=0.5,
        on_progress=log,
        check_cancelled=check_cancelled,
    )


def remove_stack(site_id: int, log: Log) -> list[str]:
    """Routes (Traefik answers 404 at once), services, then (once their containers
    are gone) network, secrets, configs."""
    cli = client()
    stack = stack_name(site_id)
    done = [
        f"removed route {name}"
        for name in (stack, maintenance_route_name(site_id))
        if routes.remove(name)
    ]
    names = [s["Spec"]["Name"] for s in stack_services(cli, stack)]
    for name in names:
        if remove_service(cli, name):
            done.append(f"removed service {name}")
    wait_containers_gone(cli, set(names), timeout_s=60)
    with translate_errors(f"Removing network {network_name(site_id)}"):
        for net in cli.networks.list(names=[network_name(site_id)]):
            if net.name == network_name(site_id):
                remove_when_released(net.remove, f"network {net.name}", pause_s=0.5)
                done.append(f"removed network {net.name}")
    done += prune_objects(cli, stack, keep=set())
    for line in done:
        log(line)
    return done


def scale_stack(site_id: int, replicas: int, log: Log) -> list[str]:
    cli = client()
    done = []
    for svc in stack_services(cli, stack_name(site_id)):
        name = svc["Spec"]["Name"]
        if scale_service(cli, name, replicas):
            done.append(f"scaled {name} to {replicas}")
    for line in done:
        log(line)
    return done


@dataclass(frozen=True)
class ServiceState:
    name: str
    image: str
    replicas: int | None
    tasks: list[TaskState]


def _shown(tasks: list[TaskState]) -> list[TaskState]:
    """The tasks a site page shows: those meant to run, and the ones that failed."""
    return [t for t in tasks if t.desired == "running" or t.state in ("failed", "rejected")][:5]


def stack_states(stack: str | None = None) -> dict[str, list[ServiceState]]:
    """What the Swarm says about the sites' services, by stack: one stack's, or every
    site's at once. Two Docker calls whatever the number of sites (a worker records
    the answer in ``sites.service_states``; pages read that, never this)."""
    cli = client()
    label = f"{STACK_LABEL}={stack}" if stack else STACK_LABEL
    with translate_errors(f"Listing the services of {stack or 'the sites'}"):
        services = [dict(s) for s in cli.api.services(filters={"label": label})]
    if not services:
        return {}
    if stack:
        names = [s["Spec"]["Name"] for s in services]
        tasks = {name: service_tasks(cli, name) for name in names}
    else:
        tasks = tasks_by_service(cli, {s["ID"]: s["Spec"]["Name"] for s in services})
    states: dict[str, list[ServiceState]] = {}
    for svc in services:
        spec = svc["Spec"]
        name = spec["Name"]
        states.setdefault(spec.get("Labels", {}).get(STACK_LABEL, ""), []).append(
            ServiceState(
                name=name,
                image=spec["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0],
                replicas=spec.get("Mode", {}).get("Replicated", {}).get("Replicas"),
                tasks=_shown(tasks.get(name, [])),
            )
        )
    return {key: sorted(value, key=lambda s: s.name) for key, value in states.items()}


def stack_state(site_id: int) -> list[ServiceState]:
    """What the Swarm says about one site's services (a call per service: 2 or 3)."""
    return stack_states(stack_name(site_id)).get(stack_name(site_id), [])


def service_exists(name: str) -> bool:
    return find_service(client(), name) is not None
