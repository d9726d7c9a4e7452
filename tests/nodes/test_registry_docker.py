"""Issue 12, C3/C7 for real: the farm/registry image, built offline, takes a push from the
host's Docker Engine, and the digest the push names is the one the registry answers to
``HEAD /v2/<repo>/manifests/<tag>``; the engine then knows the image by that digest.

Needs a Docker Engine and root to build the images (debootstrap); marked ``external``
with the other image tests, so the quick suite never runs it. The registry runs as a
plain container on 127.0.0.1:15000 with its storage in a temporary host directory
(no Swarm involved); the container and the pushed tag are removed afterwards.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from nodes import images
from nodes.images import ImageBuildError, build_images, pre_pull, push_images
from nodes.registry import RegistryError, manifest_digest, ping

pytestmark = [pytest.mark.external, pytest.mark.docker, pytest.mark.slow]

PORT = 15000  # far from farm_registry's 5000, which a multi-node farm may publish
REGISTRY = f"127.0.0.1:{PORT}"


@pytest.fixture(scope="module")
def host() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker Engine answers: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def tags(host: docker.DockerClient) -> dict[str, str]:
    """The registry image and one small farm image to push (redis), built if missing."""
    try:
        report = build_images(
            host, cache_dir=images.default_cache_dir(), roles=["registry", "redis"]
        )
    except ImageBuildError as exc:
        if os.geteuid() != 0:
            pytest.skip(f"the images are not built and building needs root: {exc}")
        raise
    return report.tags()


@pytest.fixture(scope="module")
def registry(
    host: docker.DockerClient, tags: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Container, Path]]:
    storage = tmp_path_factory.mktemp("farm-registry")
    container = host.containers.create(
        tags["registry"],
        name=f"farm-test-registry-{uuid.uuid4().hex[:10]}",
        detach=True,
        ports={"5000/tcp": ("127.0.0.1", PORT)},
        volumes={str(storage): {"bind": "/var/lib/docker-registry", "mode": "rw"}},
        # The image checks itself every 60 s; every second here, so healthy comes quickly.
        healthcheck={"interval": 1_000_000_000},
    )
    try:
        container.start()
        _wait_until_it_answers(container)
        yield container, storage
    finally:
        with suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def _wait_until_it_answers(container: Container, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ping(REGISTRY, timeout=2)
            return
        except RegistryError as exc:
            container.reload()
            if container.status != "running" or time.monotonic() > deadline:
                logs = container.logs(tail=40).decode(errors="replace")
                pytest.fail(f"the registry does not answer ({exc}); logs:\n{logs}")
            time.sleep(0.5)


def test_the_registry_is_healthy_by_its_own_busybox_check(
    registry: tuple[Container, Path],
) -> None:
    container, _ = registry
    deadline = time.monotonic() + 30
    while container.attrs["State"].get("Health", {}).get("Status") != "healthy":
        assert time.monotonic() < deadline, container.attrs["State"].get("Health")
        time.sleep(1)
        container.reload()
    code, output = container.exec_run(["busybox", "wget", "-q", "-O-", "http://127.0.0.1:5000/v2/"])
    assert isinstance(output, bytes)
    assert code == 0 and output.strip() == b"{}", output


def test_a_push_is_pinned_to_the_digest_the_registry_answers(
    host: docker.DockerClient, tags: dict[str, str], registry: tuple[Container, Path]
) -> None:
    _, storage = registry
    local = tags["redis"]
    tag = local.rsplit(":", 1)[1]
    try:
        pinned = push_images(host, {"redis": local}, REGISTRY, progress=print)["redis"]

        match = re.fullmatch(rf"{re.escape(REGISTRY)}/farm/redis@(sha256:[0-9a-f]{{64}})", pinned)
        assert match, pinned
        assert manifest_digest(REGISTRY, "farm/redis", tag) == match.group(1)
        assert manifest_digest(REGISTRY, "farm/redis", match.group(1)) == match.group(1)
        # The engine knows the image by that digest, so pre_pull has nothing to fetch.
        assert host.images.get(pinned).id == host.images.get(local).id
        pre_pull(host, [pinned])
        # The blobs are on the bound host directory, not in the container.
        assert (storage / "docker/registry/v2/repositories/farm/redis").is_dir()
    finally:
        with suppress(docker.errors.NotFound):
            host.images.remove(f"{REGISTRY}/farm/redis:{tag}", noprune=True)
