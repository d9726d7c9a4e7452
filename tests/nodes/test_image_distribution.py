"""Issue 12, C7: the farm's images reach the private registry by digest, and engines that
cannot pull from it get an image copied in.

The docker SDK talks over real HTTP to a fake Engine API (tests/fakes/docker_engine.py,
tests/fakes/docker_images.py) whose push really PUTs the manifest to a fake registry
(tests/fakes/registry.py), which nodes.registry then asks for the digest."""

from __future__ import annotations

import docker
import pytest

from nodes.images import ImageDistributionError, pre_pull, push_images, side_load
from tests.fakes.docker_engine import running_fake_engines
from tests.fakes.registry import running_fake_registry

NGINX = "farm/nginx:0123456789ab"
REDIS = "farm/redis:ba9876543210"


def sdk(url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=url, version="1.41", timeout=5)


@pytest.fixture
def farm():
    with running_fake_registry() as registry, running_fake_engines(["host", "node-2"]) as fakes:
        yield registry, fakes


def test_each_image_is_pushed_and_pinned_to_the_digest_the_registry_holds(farm):
    registry, (host, _) = farm
    host.images.add(NGINX)
    host.images.add(REDIS)
    cli = sdk(host.url)
    said: list[str] = []

    pinned = push_images(
        cli, {"nginx": NGINX, "redis": REDIS}, registry.address, progress=said.append
    )

    held = {
        repo: manifest.digest
        for (repo, ref), manifest in registry.manifests.items()
        if not ref.startswith("sha256:")
    }
    assert pinned == {
        "nginx": f"{registry.address}/farm/nginx@{held['farm/nginx']}",
        "redis": f"{registry.address}/farm/redis@{held['farm/redis']}",
    }
    assert host.images.pushed == [
        f"{registry.address}/farm/nginx:0123456789ab",
        f"{registry.address}/farm/redis:ba9876543210",
    ]
    # tagged first, pushed, then the registry asked for the tag's digest
    assert ("POST", f"/v1.41/images/{NGINX}/tag") in host.requests
    assert ("HEAD", "/v2/farm/nginx/manifests/0123456789ab") in registry.requests
    assert f"{registry.address}/farm/nginx:0123456789ab" in cli.images.get(NGINX).tags
    assert any(line.startswith("pushing ") for line in said)


def test_an_error_line_in_the_push_stream_fails_with_the_engines_words(farm):
    registry, (host, _) = farm
    host.images.add(NGINX)
    host.images.push_error = "received unexpected HTTP status: 500 Internal Server Error"

    with pytest.raises(ImageDistributionError, match="unexpected HTTP status: 500") as caught:
        push_images(sdk(host.url), {"nginx": NGINX}, registry.address)
    assert caught.value.retryable
    assert registry.manifests == {}


def test_a_registry_that_is_not_up_fails_the_push(farm):
    _, (host, _) = farm
    host.images.add(NGINX)

    with pytest.raises(ImageDistributionError, match=r"Pushing 127\.0\.0\.1:1/farm/nginx"):
        push_images(sdk(host.url), {"nginx": NGINX}, "127.0.0.1:1")


def test_a_push_whose_digest_the_registry_does_not_hold_is_refused(farm):
    registry, (host, _) = farm
    host.images.add(NGINX)
    host.images.push_reports_digest = "sha256:" + "e" * 64

    with pytest.raises(ImageDistributionError, match=r"reported sha256:e{64}, but the registry"):
        push_images(sdk(host.url), {"nginx": NGINX}, registry.address)


def test_an_image_that_was_never_built_says_build_it(farm):
    registry, (host, _) = farm

    with pytest.raises(ImageDistributionError, match="build_images nginx"):
        push_images(sdk(host.url), {"nginx": NGINX}, registry.address)
    assert host.images.pushed == []


@pytest.mark.parametrize(
    "images", [{"nginx": "nginx:1.27"}, {"redis": NGINX}, {"nginx": "farm/nginx"}]
)
def test_only_the_roles_own_farm_tags_are_pushed(farm, images):
    registry, (host, _) = farm
    with pytest.raises(ImageDistributionError, match="is not the image of role"):
        push_images(sdk(host.url), images, registry.address)
    assert host.requests == []


def test_side_load_copies_an_image_to_another_engine_under_its_tag(farm):
    _, (host, node) = farm
    original = host.images.add("farm/registry:aaaabbbbcccc", {"farm.image.role": "registry"})

    image_id = side_load(sdk(host.url), sdk(node.url), "farm/registry:aaaabbbbcccc")

    copy = sdk(node.url).images.get("farm/registry:aaaabbbbcccc")
    assert image_id == original.id == copy.id
    assert copy.labels == {"farm.image.role": "registry"}
    assert ("GET", "/v1.41/images/farm/registry:aaaabbbbcccc/get") in host.requests
    assert ("POST", "/v1.41/images/load") in node.requests


def test_side_load_of_a_missing_image_says_so(farm):
    _, (host, node) = farm
    with pytest.raises(ImageDistributionError, match="not in the source Docker Engine"):
        side_load(sdk(host.url), sdk(node.url), "farm/registry:aaaabbbbcccc")


def test_pre_pull_pulls_pinned_images_once(farm):
    registry, (host, node) = farm
    host.images.add(NGINX)
    pinned = push_images(sdk(host.url), {"nginx": NGINX}, registry.address)
    said: list[str] = []

    pre_pull(sdk(node.url), [pinned["nginx"]], progress=said.append)
    pre_pull(sdk(node.url), [pinned["nginx"]], progress=said.append)

    assert node.images.pulled == [pinned["nginx"]]
    assert sdk(node.url).images.get(pinned["nginx"]).id == sdk(host.url).images.get(NGINX).id
    assert said[-1] == f"{pinned['nginx']} already on the node"


def test_pre_pull_of_a_digest_the_registry_lacks_fails(farm):
    registry, (_, node) = farm
    ref = f"{registry.address}/farm/nginx@sha256:{'a' * 64}"
    with pytest.raises(ImageDistributionError, match=r"Pulling .*manifest unknown"):
        pre_pull(sdk(node.url), [ref])
