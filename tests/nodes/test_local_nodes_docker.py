"""One node engine of the local farm, for real: the farm/node image run with the
plan's flags answers on its socket, survives a kill and a pause, and the IPsec probe
says what this kernel can do (plan C3/C4).

Needs the host's Docker Engine and root (the node image is built offline like the
others, ``roles=["node"]``); marked ``swarm`` so it runs with the farm's other
Docker tests, never in the quick suite. The node is ``farm-node-40`` (10.213.0.51
by default), far from the nodes a local farm uses; it and its volumes are removed
afterwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import docker
import docker.errors
import pytest

from nodes import images
from nodes.images import ImageBuildError, build_images
from nodes.local_nodes import LocalNodeError, engines, ipsec
from nodes.local_nodes.plan import NodeSpec, address

pytestmark = [pytest.mark.swarm, pytest.mark.slow]

TEST_INDEX = 40


@pytest.fixture(scope="module")
def host() -> Iterator[docker.DockerClient]:
    try:
        client = engines.host_engine(timeout=600)
        client.ping()
    except (LocalNodeError, docker.errors.DockerException) as exc:
        pytest.skip(f"no host Docker Engine answers: {exc}")
    if os.geteuid() != 0:
        pytest.skip("node engines need root (their sockets live under /run/wpfarm-nodes)")
    yield client
    client.close()


@pytest.fixture(scope="module")
def node_image(host: docker.DockerClient) -> str:
    try:
        report = build_images(host, cache_dir=images.default_cache_dir(), roles=["node"])
    except ImageBuildError as exc:
        pytest.fail(f"the node image does not build: {exc}")
    return report.tags()["node"]


@pytest.fixture(scope="module")
def node(host: docker.DockerClient, node_image: str) -> Iterator[NodeSpec]:
    spec = NodeSpec(TEST_INDEX, True, ("edge", "worker", "db"), address(TEST_INDEX))
    engines.remove_engine(host, spec.name, volumes=True)
    engines.start_engine(host, spec, image=node_image, fresh=True, glusterd=False)
    try:
        yield spec
    finally:
        engines.remove_engine(host, spec.name, volumes=True)


def test_the_node_engine_answers_on_its_socket_within_30_s(
    host: docker.DockerClient, node: NodeSpec
) -> None:
    started = time.monotonic()
    cli = engines.wait_until_ready(node.name, host=host, timeout_s=30)
    print(f"{node.name} answered after {time.monotonic() - started:.1f}s")
    info = cli.info()
    assert info["ServerVersion"].startswith("20.10")
    assert info["Driver"] == "overlay2"
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert info["Name"] == node.name
    cli.close()

    attrs = host.containers.get(node.name).attrs["HostConfig"]
    assert attrs["Privileged"] is False
    assert "SYS_RESOURCE" in (attrs["CapDrop"] or [])
    assert attrs["CgroupnsMode"] == "host"


def test_a_killed_node_starts_again_on_its_volume(
    host: docker.DockerClient, node: NodeSpec, node_image: str
) -> None:
    engines.wait_until_ready(node.name, host=host, timeout_s=30).close()
    engines.kill_engine(host, node.name)
    with pytest.raises(LocalNodeError, match="instead of starting"):
        engines.wait_until_ready(node.name, host=host, timeout_s=10)
    engines.start_engine(host, node, image=node_image)
    cli = engines.wait_until_ready(node.name, host=host, timeout_s=30)
    assert cli.ping()
    cli.close()


def test_a_paused_node_is_reported_at_once_and_answers_after_unpause(
    host: docker.DockerClient, node: NodeSpec
) -> None:
    engines.wait_until_ready(node.name, host=host, timeout_s=30).close()
    engines.pause_engine(host, node.name)
    try:
        started = time.monotonic()
        with pytest.raises(LocalNodeError, match="paused"):
            engines.wait_until_ready(node.name, host=host, timeout_s=10)
        assert time.monotonic() - started < 5
    finally:
        engines.unpause_engine(host, node.name)
    engines.wait_until_ready(node.name, host=host, timeout_s=30).close()


def test_the_ipsec_probe_gives_an_answer_and_a_refusal_comes_with_the_kernels_words(
    host: docker.DockerClient, node: NodeSpec, record_property: Callable[[str, object], None]
) -> None:
    engines.wait_until_ready(node.name, host=host, timeout_s=30).close()
    supported, words = ipsec.ipsec_supported(node.name, host=host)
    record_property("ipsec_supported", supported)
    record_property("kernel_words", words)
    print(f"IPsec in {node.name}: supported={supported} ({words!r})")
    assert isinstance(supported, bool)
    if not supported:
        assert words.strip(), "a refusal must say why"
