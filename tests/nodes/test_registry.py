"""Issue 12, C7: asking the farm's registry which manifest digest it holds for a tag.

The registry is a fake that speaks Distribution's HTTP API v2 on 127.0.0.1
(tests/fakes/registry.py); nodes.registry talks to it over real HTTP."""

from __future__ import annotations

import socket

import pytest

from nodes.registry import MANIFEST_MEDIA_TYPES, RegistryError, manifest_digest, ping, registry_url
from tests.fakes.registry import SCHEMA2, digest_of, running_fake_registry

MANIFEST = b'{"schemaVersion": 2, "mediaType": "%s", "layers": []}' % SCHEMA2.encode()


@pytest.fixture
def registry():
    with running_fake_registry() as fake:
        yield fake


def test_the_digest_is_the_one_the_registry_holds_for_the_tag(registry):
    registry.put_manifest("farm/nginx", "0123456789ab", MANIFEST)

    digest = manifest_digest(registry.address, "farm/nginx", "0123456789ab")

    assert digest == digest_of(MANIFEST)
    assert registry.requests == [("HEAD", "/v2/farm/nginx/manifests/0123456789ab")]
    # Without the schema 2 / OCI types a registry answers a schema 1 conversion's digest.
    assert all(media_type in registry.accepts[0] for media_type in MANIFEST_MEDIA_TYPES)


def test_a_digest_reference_answers_its_own_digest(registry):
    digest = registry.put_manifest("farm/redis", "abc", MANIFEST)

    assert manifest_digest(f"http://{registry.address}/", "farm/redis", digest) == digest


@pytest.mark.parametrize(("repo", "tag"), [("farm/nginx", "missing"), ("farm/unknown", "abc")])
def test_an_unknown_tag_or_repository_says_push_first(registry, repo, tag):
    registry.put_manifest("farm/nginx", "abc", MANIFEST)

    with pytest.raises(RegistryError, match=f"has no manifest for {repo}:{tag}") as caught:
        manifest_digest(registry.address, repo, tag)
    assert "push the image first" in caught.value.message
    assert not caught.value.retryable


def test_an_answer_without_the_digest_header_is_an_error(registry):
    registry.put_manifest("farm/nginx", "abc", MANIFEST)
    registry.omit_digest_header = True

    with pytest.raises(RegistryError, match="without a Docker-Content-Digest header"):
        manifest_digest(registry.address, "farm/nginx", "abc")


def test_an_unreachable_registry_is_a_retryable_error():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(RegistryError, match=f"127.0.0.1:{port} cannot be reached") as caught:
        manifest_digest(f"127.0.0.1:{port}", "farm/nginx", "abc", timeout=2)
    assert caught.value.retryable
    with pytest.raises(RegistryError, match="cannot be reached"):
        ping(f"127.0.0.1:{port}", timeout=2)


@pytest.mark.parametrize(
    ("repo", "tag"), [("Farm/nginx", "abc"), ("farm/../x", "abc"), ("farm/nginx", "a b"), ("", "x")]
)
def test_names_that_are_no_references_never_reach_the_registry(registry, repo, tag):
    with pytest.raises(RegistryError, match=r"is not a repository name|neither a tag"):
        manifest_digest(registry.address, repo, tag)
    assert registry.requests == []


def test_ping_answers_when_the_registry_speaks_v2(registry):
    ping(registry.address)
    assert registry.requests == [("GET", "/v2/")]


def test_registry_url_adds_plain_http_for_the_loopback_registry():
    assert registry_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_url("https://registry.example/") == "https://registry.example"
    with pytest.raises(RegistryError, match="No registry"):
        registry_url(" ")
