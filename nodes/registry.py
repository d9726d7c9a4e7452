"""The one client for the farm's private image registry (Docker Distribution's HTTP API v2).

The multi-node farm pushes its images to ``farm_registry`` and every node pulls them by
digest (docs/plans/multi-node.md, D3). The engine's push stream names a digest; this
module asks the registry itself which manifest digest it holds for a tag, so the image
map never names bits the registry does not have.

Only what the farm needs: ``ping`` (``GET /v2/``) and ``manifest_digest``
(``HEAD /v2/<repo>/manifests/<tag>``). The registry on 127.0.0.1:5000 speaks plain
HTTP and has no auth; a registry given without a scheme is reached over ``http://``.
Proxy variables are ignored: the farm's registry is always reached directly.
Everything that goes wrong is a ``RegistryError``.
"""

from __future__ import annotations

import re

import requests

from farm.errors import FarmError

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "RegistryError",
    "manifest_digest",
    "ping",
    "registry_url",
]

# What a push of a Docker 20.10 image makes (schema 2), and the OCI forms. Without them
# in Accept a registry may convert to the old schema 1 and answer another digest.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
DIGEST_HEADER = "Docker-Content-Digest"
TIMEOUT_S = 10.0

# The Distribution reference grammar for a repository path and a tag, and a sha256 digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class RegistryError(FarmError):
    """The registry could not be reached, or did not hold (or name) what was asked for.

    ``retryable`` is true when trying again can help: the registry is not up yet (its
    task is starting), or it answered 5xx."""


def registry_url(registry: str) -> str:
    """``http://host:port`` for ``host:port`` (the farm's loopback registry), unchanged
    when a scheme is given; no trailing slash."""
    registry = registry.strip().rstrip("/")
    if not registry:
        raise RegistryError("No registry was given (FARM_REGISTRY is empty).")
    return registry if "://" in registry else f"http://{registry}"


def ping(registry: str, *, timeout: float = TIMEOUT_S) -> None:
    """``GET /v2/``: returns when the registry answers 200 (it speaks API v2, no auth
    wanted); RegistryError otherwise."""
    base = registry_url(registry)
    response = _request("GET", base, "/v2/", timeout=timeout, headers={})
    if response.status_code != 200:
        raise _status_error(base, "/v2/", response)


def manifest_digest(registry: str, repo: str, tag: str, *, timeout: float = TIMEOUT_S) -> str:
    """The digest (``sha256:…``) of the manifest the registry holds for ``repo:tag``,
    from ``HEAD /v2/<repo>/manifests/<tag>``'s Docker-Content-Digest header."""
    if not _REPOSITORY.fullmatch(repo):
        raise RegistryError(f"{repo!r} is not a repository name (lower-case path like farm/nginx).")
    if not (_TAG.fullmatch(tag) or DIGEST.fullmatch(tag)):
        raise RegistryError(f"{tag!r} is neither a tag nor a sha256 digest.")
    base = registry_url(registry)
    path = f"/v2/{repo}/manifests/{tag}"
    headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
    response = _request("HEAD", base, path, timeout=timeout, headers=headers)
    if response.status_code == 404:
        raise RegistryError(
            f"The registry at {base} has no manifest for {repo}:{tag} (unknown tag or "
            "repository): push the image first."
        )
    if response.status_code != 200:
        raise _status_error(base, path, response)
    digest = response.headers.get(DIGEST_HEADER, "").strip()
    if not digest:
        raise RegistryError(
            f"The registry at {base} answered HEAD {path} without a {DIGEST_HEADER} "
            "header: it is not a Docker Distribution registry, or a proxy dropped the header."
        )
    if not DIGEST.fullmatch(digest):
        raise RegistryError(
            f"The registry at {base} named {digest!r} as the digest of {repo}:{tag}, "
            "which is not a sha256 digest."
        )
    return digest


def _request(
    method: str, base: str, path: str, *, timeout: float, headers: dict[str, str]
) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # no proxies, no netrc: the registry is reached directly
        try:
            return session.request(
                method, base + path, headers=headers, timeout=timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise RegistryError(
                f"The registry at {base} cannot be reached ({type(exc).__name__}: {exc}); "
                "is the farm_registry service running on this node?",
                retryable=True,
            ) from exc


def _status_error(base: str, path: str, response: requests.Response) -> RegistryError:
    status = response.status_code
    if status in (401, 403):
        return RegistryError(
            f"The registry at {base} wants credentials for {path} (HTTP {status}); "
            "the farm's registry has no auth: is this the right registry?"
        )
    return RegistryError(
        f"The registry at {base} answered HTTP {status} to {response.request.method} {path}.",
        retryable=status >= 500 or status == 429,
    )
