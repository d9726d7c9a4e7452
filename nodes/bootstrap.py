"""Bring a farm up (or down) on the Swarm the panel points at, idempotently.

``farm_up`` checks each piece against the real engine and changes only what is
missing or different: engine answering (optionally starting Debian's
``dockerd`` here), Swarm initialised, node roles labelled, images present,
networks, secrets, configs and platform services as declared in
``nodes.platform``, then waits until every service runs and is healthy. It
reports every action; a second run reports nothing changed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from django.conf import settings

from nodes import platform, routes
from nodes.images import build_images
from nodes.overlay import check_encryption, network_options
from nodes.swarm import (
    MANAGED_LABEL,
    STACK_LABEL,
    NamedContent,
    SwarmError,
    UpdateRolledBack,
    apply_service,
    client,
    remove_when_released,
    reset_client_cache,
    translate_errors,
    uses_local_engine,
    wait_containers_gone,
    wait_converged,
)

Progress = Callable[[str], None]


@dataclass
class Report:
    changes: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def changed(self, what: str) -> None:
        self.changes.append(what)

    def same(self, what: str) -> None:
        self.unchanged.append(what)

    @property
    def no_changes(self) -> bool:
        return not self.changes


# -- the engine ---------------------------------------------------------------


def ensure_engine(*, start_engine: bool, progress: Progress, report: Report) -> docker.DockerClient:
    try:
        cli = client()
        with translate_errors("Asking the Docker Engine"):
            cli.ping()
        return cli
    except SwarmError as exc:
        if not start_engine or not uses_local_engine():
            raise
        if not shutil.which("dockerd"):
            raise SwarmError(
                "No Docker Engine answers and dockerd is not installed "
                "(on Debian: apt-get install docker.io).",
            ) from exc
    log = Path(settings.VAR_DIR) / "log" / "dockerd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    progress(f"Starting dockerd (log: {log})")
    # The local farm's images are built here and are in no registry: without this, every
    # task start first tries a pull (a DNS lookup and a registry ping that fail offline).
    env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
    with log.open("ab") as out:
        subprocess.Popen(
            ["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    reset_client_cache()
    deadline = time.monotonic() + 60
    while True:
        try:
            cli = client()
            cli.ping()
            report.changed("started dockerd")
            return cli
        except Exception:
            if time.monotonic() > deadline:
                raise SwarmError(f"dockerd did not answer within 60 s; see {log}.") from None
            time.sleep(1)
            reset_client_cache()


def ensure_swarm(cli: docker.DockerClient, report: Report) -> None:
    with translate_errors("Reading the Swarm state"):
        state = cli.info().get("Swarm", {})
    if state.get("LocalNodeState") == "active":
        if not state.get("ControlAvailable"):
            raise SwarmError("This engine is a Swarm worker; point DOCKER_HOST at a manager.")
        report.same("swarm")
        return
    with translate_errors("Initialising the Swarm"):
        cli.swarm.init(advertise_addr=settings.FARM_SWARM_ADVERTISE_ADDR)
    report.changed(f"initialised a swarm (advertise address {settings.FARM_SWARM_ADVERTISE_ADDR})")


def label_nodes(cli: docker.DockerClient, report: Report) -> None:
    """A single node takes every role. On a bigger swarm, nodes with no farm role
    yet get the obvious one (managers edge, workers worker); the db role is the
    operator's choice and is never guessed."""
    with translate_errors("Listing nodes"):
        nodes = cli.nodes.list()
    single = len(nodes) == 1
    for node in nodes:
        spec = node.attrs["Spec"]
        hostname = node.attrs["Description"]["Hostname"]
        labels = dict(spec.get("Labels") or {})
        has_role = any(platform.role_label(r) in labels for r in platform.ROLE_LABELS)
        if single:
            wanted = set(platform.ROLE_LABELS)
        elif has_role:
            continue
        else:
            wanted = {"edge"} if spec.get("Role") == "manager" else {"worker"}
        missing = {
            platform.role_label(r) for r in wanted if labels.get(platform.role_label(r)) != "true"
        }
        if not missing:
            report.same(f"node {hostname} labels")
            continue
        labels.update({key: "true" for key in missing})
        with translate_errors("Labelling a node"):
            node.update({**spec, "Labels": labels})
        report.changed(f"labelled node {hostname}: {', '.join(sorted(missing))}")


# -- images -------------------------------------------------------------------


def ensure_images(cli: docker.DockerClient, progress: Progress, report: Report) -> None:
    if settings.FARM_IMAGES != "local":
        report.same(f"images ({settings.FARM_IMAGES}; pulled by the engine)")
        return
    started = time.monotonic()
    result = build_images(cli, cache_dir=settings.FARM_IMAGE_CACHE_DIR, progress=progress)
    built = [o for o in result.images if o.action == "built"]
    report.timings["images"] = time.monotonic() - started
    for outcome in built:
        report.changed(f"built image {outcome.tag} in {outcome.seconds:.0f} s")
    if not built:
        report.same("images")


# -- secrets, configs, networks ---------------------------------------------


def secret_value(name: str) -> str:
    """The value behind a platform secret, generated once into FARM_SECRETS_DIR."""
    path = Path(settings.FARM_SECRETS_DIR) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_secret(
    cli: docker.DockerClient, secret: NamedContent, report: Report, *, stack: str = platform.STACK
) -> str:
    """Create the secret if absent (its name carries a hash of its value)."""
    name = secret.name
    with translate_errors(f"Creating secret {name}"):
        existing = [s for s in cli.secrets.list(filters={"name": name}) if s.name == name]
        if existing:
            report.same(f"secret {name}")
            return str(existing[0].id)
        created = cli.secrets.create(
            name=name,
            data=secret.content.encode(),
            labels={STACK_LABEL: stack, MANAGED_LABEL: "true"},
        )
        report.changed(f"created secret {name}")
        return str(created.id)


def ensure_config(
    cli: docker.DockerClient, config: NamedContent, report: Report, *, stack: str = platform.STACK
) -> None:
    name = config.name
    with translate_errors(f"Creating config {name}"):
        if any(c.name == name for c in cli.configs.list(filters={"name": name})):
            report.same(f"config {name}")
            return
        cli.configs.create(
            name=name,
            data=config.content.encode(),
            labels={STACK_LABEL: stack, MANAGED_LABEL: "true"},
        )
        report.changed(f"created config {name}")


def ensure_network(cli: docker.DockerClient, net: platform.NetworkDef, report: Report) -> None:
    with translate_errors(f"Creating network {net.name}"):
        existing = [n for n in cli.networks.list(names=[net.name]) if n.name == net.name]
        if existing:
            attrs = existing[0].attrs
            subnets = [c.get("Subnet") for c in (attrs.get("IPAM", {}).get("Config") or [])]
            fix = "remove it (manage.py farm_down) and run farm_up again."
            if attrs.get("Driver") != "overlay" or net.subnet not in subnets:
                raise SwarmError(
                    f"Network {net.name} exists with other settings (driver "
                    f"{attrs.get('Driver')}, subnets {subnets}); {fix}",
                    retryable=False,
                )
            check_encryption(net.name, attrs, net.encrypted, fix)
            report.same(f"network {net.name}")
            return
        cli.networks.create(
            net.name,
            driver="overlay",
            attachable=True,
            scope="swarm",
            options=network_options(net.encrypted),
            ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=net.subnet)]),
            labels={STACK_LABEL: platform.STACK, MANAGED_LABEL: "true", **net.labels},
        )
        report.changed(
            f"created network {net.name} ({net.subnet}{', encrypted' if net.encrypted else ''})"
        )


def prune_unused(cli: docker.DockerClient, report: Report, stack: str = platform.STACK) -> None:
    """Remove this stack's configs and secrets no service refers to any more."""
    used: set[str] = set()
    with translate_errors("Listing services"):
        for svc in cli.api.services():
            spec = svc["Spec"]["TaskTemplate"]["ContainerSpec"]
            used.update(ref["SecretName"] for ref in spec.get("Secrets") or [])
            used.update(ref["ConfigName"] for ref in spec.get("Configs") or [])
    for kind in ("configs", "secrets"):
        collection: Any = getattr(cli, kind)
        with translate_errors(f"Listing {kind}"):
            objects = collection.list(filters={"label": f"{STACK_LABEL}={stack}"})
        for obj in objects:
            if (
                obj.name not in used
                and obj.attrs["Spec"].get("Labels", {}).get("farm.keep") != "true"
            ):
                with translate_errors(f"Removing {obj.name}"):
                    obj.remove()
                report.changed(f"removed unused {kind[:-1]} {obj.name}")


# -- the whole farm -----------------------------------------------------------


def prepare_directories() -> None:
    for path in (
        settings.FARM_MARIADB_DATA,
        settings.FARM_PROMETHEUS_TARGETS_DIR,
        settings.FARM_SITES_ROOT,
    ):
        Path(path).mkdir(parents=True, exist_ok=True)


def farm_up(
    *,
    start_engine: bool = False,
    build: bool = True,
    wait_s: float = 300,
    progress: Progress = print,
) -> Report:
    report = Report()
    started = time.monotonic()
    cli = ensure_engine(start_engine=start_engine, progress=progress, report=report)
    ensure_swarm(cli, report)
    label_nodes(cli, report)
    if build:
        ensure_images(cli, progress, report)
    prepare_directories()
    for net in platform.network_defs():
        ensure_network(cli, net, report)
    values = {name: secret_value(name) for name in platform.SECRET_FILES}
    for secret in platform.secret_defs(values):
        ensure_secret(cli, secret, report)
    for config in platform.config_defs():
        ensure_config(cli, config, report)
    services = platform.service_defs(values)
    converge_started = time.monotonic()
    for attempt in (1, 2):
        for sdef in services:
            outcome = apply_service(cli, sdef)
            if outcome == "unchanged":
                report.same(f"service {sdef.name}")
            else:
                report.changed(f"{outcome} service {sdef.name}")
        progress("Waiting for the platform services to run and pass their health checks")
        try:
            wait_converged(
                cli,
                [s.name for s in services],
                timeout_s=wait_s,
                on_progress=progress,
                give_up_after_s=120,
            )
            break
        except UpdateRolledBack as exc:
            # Docker 20.10 now and then fails to start a task of a good spec
            # ("unable to remount dir as readonly ... device or resource busy" on
            # its secrets mount) and Swarm rolls the update back: write it once more.
            if attempt == 2:
                raise
            progress(f"{exc.message}; applying the platform services once more")
    report.timings["converge"] = time.monotonic() - converge_started
    if routes.ensure_keepalive():
        report.changed(f"route {routes.KEEPALIVE.name} (keeps Traefik's tree non-empty)")
    prune_unused(cli, report)
    report.timings["total"] = time.monotonic() - started
    return report


def farm_managed(labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return labels.get(MANAGED_LABEL) == "true"


def farm_down(*, purge_data: bool = False, progress: Progress = print) -> Report:
    """Remove every service, network, secret, config and volume the farm made
    (the platform and the site stacks), and the node role labels."""
    report = Report()
    cli = client()
    with translate_errors("Reading the Swarm state"):
        in_swarm = cli.info().get("Swarm", {}).get("LocalNodeState") == "active"
    if in_swarm:
        _remove_swarm_objects(cli, report, progress)
    if purge_data:
        for path in (
            settings.FARM_MARIADB_DATA,
            settings.FARM_PROMETHEUS_TARGETS_DIR,
            settings.FARM_SITES_ROOT,
        ):
            if Path(path).exists():
                shutil.rmtree(path)
                report.changed(f"deleted {path}")
    return report


def _remove_swarm_objects(cli: docker.DockerClient, report: Report, progress: Progress) -> None:
    with translate_errors("Listing services"):
        services = [s for s in cli.services.list() if farm_managed(s.attrs["Spec"].get("Labels"))]
    for svc in services:
        with translate_errors(f"Removing service {svc.name}"):
            try:
                svc.remove()
            except docker.errors.NotFound:
                continue
        report.changed(f"removed service {svc.name}")
    if not wait_containers_gone(cli, {s.name for s in services}):
        progress("some containers are still stopping; continuing")
    for kind in ("networks", "configs", "secrets", "volumes"):
        collection: Any = getattr(cli, kind)
        with translate_errors(f"Listing {kind}"):
            objects = collection.list(filters={"label": f"{MANAGED_LABEL}=true"})
        if kind == "volumes":
            objects = [v for v in collection.list() if v.name in platform.VOLUMES]
        for obj in objects:
            remove_when_released(obj.remove, f"{kind[:-1]} {obj.name}")
            report.changed(f"removed {kind[:-1]} {obj.name}")
    with translate_errors("Listing nodes"):
        for node in cli.nodes.list():
            spec = node.attrs["Spec"]
            labels = dict(spec.get("Labels") or {})
            kept = {k: v for k, v in labels.items() if not k.startswith("farm.role.")}
            if kept != labels:
                node.update({**spec, "Labels": kept})
                report.changed(
                    f"removed farm role labels from {node.attrs['Description']['Hostname']}"
                )
