"""Getting the farm's own images onto every node, by digest (docs/plans/multi-node.md, D3).

After ``build_images`` the host engine holds ``farm/<role>:<hash>``. ``push_images`` tags
each as ``<registry>/farm/<role>:<hash>``, pushes it to the private registry, takes the
digest the push stream ends with and checks that the registry holds that very manifest
(``nodes.registry.manifest_digest``). ``write_manifest`` keeps the result, role →
``127.0.0.1:5000/farm/<role>@sha256:…``, the file ``FARM_IMAGES=registry`` reads
(``read_manifest``): a service then names bits, not a tag, and every node pulls the same.

The registry's own image cannot come from the registry: ``side_load`` copies an image
from one engine to another (``docker save`` → ``docker load``). ``pre_pull`` pulls
references onto a node before it gets tasks, so failover never waits on a pull.

Every failure is an ``ImageDistributionError`` naming the image and what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.utils import parse_repository_tag

from farm.errors import FarmError
from nodes.images.builder.recipes import REPOSITORY_PREFIX
from nodes.registry import RegistryError, manifest_digest

__all__ = [
    "ImageDistributionError",
    "pre_pull",
    "push_images",
    "read_manifest",
    "side_load",
    "write_manifest",
]

Progress = Callable[[str], None]

_ROLE = r"[a-z][a-z0-9]*"
_LOCAL_TAG = re.compile(rf"{re.escape(REPOSITORY_PREFIX)}(?P<role>{_ROLE}):(?P<tag>[0-9a-z.-]+)")
# <registry host[:port]>/farm/<role>@sha256:<64 hex>
_PINNED = re.compile(
    rf"(?P<registry>[A-Za-z0-9.-]+(?::[0-9]+)?)/{re.escape(REPOSITORY_PREFIX)}(?P<role>{_ROLE})"
    r"@sha256:[0-9a-f]{64}"
)


class ImageDistributionError(FarmError):
    """An image could not be pushed, copied or pulled, or the image manifest is missing
    or wrong. ``retryable`` when the engine or the registry may answer on a second try."""


def _quiet(_line: str) -> None:
    """The default progress: say nothing."""


def push_images(
    cli: docker.DockerClient,
    images: Mapping[str, str],
    registry: str,
    *,
    progress: Progress = _quiet,
) -> dict[str, str]:
    """Push each ``role -> farm/<role>:<hash>`` of ``images`` (in the engine of ``cli``) to
    ``registry`` (``host:port``) and return role -> ``<registry>/farm/<role>@sha256:…``,
    the digest being the one the registry answers for the pushed tag."""
    pinned: dict[str, str] = {}
    for role, local in images.items():
        match = _LOCAL_TAG.fullmatch(local)
        if match is None or match["role"] != role:
            raise ImageDistributionError(
                f"{local!r} is not the image of role {role!r}: push_images takes the "
                f"{REPOSITORY_PREFIX}<role>:<hash> tags that build_images made."
            )
        repo, tag = f"{REPOSITORY_PREFIX}{role}", match["tag"]
        target = f"{registry}/{repo}"
        with _engine(f"Tagging {local} as {target}:{tag}"):
            try:
                cli.api.tag(local, target, tag)
            except docker.errors.ImageNotFound:
                raise ImageDistributionError(
                    f"{local} is not in the Docker Engine: build it first "
                    f"(manage.py build_images {role})."
                ) from None
        progress(f"pushing {target}:{tag}")
        with _engine(f"Pushing {target}:{tag}"):
            lines = cli.api.push(target, tag=tag, stream=True, decode=True)
            pushed = _pushed_digest(lines, f"{target}:{tag}")
        try:
            held = manifest_digest(registry, repo, tag)
        except RegistryError as exc:
            raise ImageDistributionError(
                f"{target}:{tag} was pushed, but the registry cannot confirm it: {exc.message}",
                retryable=exc.retryable,
            ) from exc
        if held != pushed:
            raise ImageDistributionError(
                f"The push of {target}:{tag} reported {pushed}, but the registry at "
                f"{registry} holds {held} for that tag (another push in between?): "
                "push again."
            )
        pinned[role] = f"{target}@{pushed}"
        progress(f"{role}: {pinned[role]}")
    return pinned


def _pushed_digest(lines: Iterable[dict[str, Any]], name: str) -> str:
    """The digest of the push stream's ``aux`` line; an ``error`` line is the failure."""
    digest = ""
    for line in lines:
        if "error" in line or "errorDetail" in line:
            detail = line.get("errorDetail") or {}
            message = detail.get("message") or line.get("error") or "no message"
            raise ImageDistributionError(
                f"Pushing {name} failed: {message}. Is farm_registry running and "
                "published on this engine's host?",
                retryable=True,
            )
        aux = line.get("aux") or {}
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = str(aux["Digest"])
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ImageDistributionError(
            f"The push of {name} ended without naming a sha256 digest ({digest or 'none'}); "
            "the Docker Engine's push stream was cut short.",
            retryable=True,
        )
    return digest


def write_manifest(path: Path, mapping: Mapping[str, str]) -> None:
    """Write role -> ``<registry>/farm/<role>@sha256:…`` as JSON at ``path``, atomically
    (a reader sees the old file or the new one, never half of one)."""
    for role, ref in mapping.items():
        match = _PINNED.fullmatch(ref)
        if match is None or match["role"] != role:
            raise ImageDistributionError(
                f"{ref!r} is no pinned image of role {role!r} "
                f"(<registry>/{REPOSITORY_PREFIX}{role}@sha256:<64 hex>); not written to {path}."
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(sorted(mapping.items())), indent=2) + "\n"
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_manifest(path: Path) -> dict[str, str]:
    """The role -> pinned image map ``write_manifest`` wrote at ``path``."""
    hint = "push the images first (farm_up --nodes writes it) or set FARM_IMAGE_MANIFEST_FILE"
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ImageDistributionError(
            f"FARM_IMAGES=registry reads the image map from {path}, which does not exist: {hint}."
        ) from None
    except (OSError, ValueError) as exc:
        raise ImageDistributionError(f"The image manifest {path} cannot be read: {exc}.") from exc
    if not isinstance(data, dict):
        raise ImageDistributionError(f"The image manifest {path} is not a JSON object: {hint}.")
    for role, ref in data.items():
        match = _PINNED.fullmatch(ref) if isinstance(ref, str) else None
        if match is None or match["role"] != role:
            raise ImageDistributionError(
                f"The image manifest {path} names {ref!r} for role {role!r}, which is no "
                f"<registry>/{REPOSITORY_PREFIX}{role}@sha256:<digest>: {hint}."
            )
    return dict(data)


def side_load(src_cli: docker.DockerClient, dst_cli: docker.DockerClient, image: str) -> str:
    """Copy ``image`` (a ``name:tag`` in the engine of ``src_cli``) into the engine of
    ``dst_cli`` under the same tag, through a temporary file; returns the image id."""
    with _engine(f"Reading {image} from the source engine"):
        try:
            source = src_cli.images.get(image)
        except docker.errors.ImageNotFound:
            raise ImageDistributionError(
                f"{image} is not in the source Docker Engine: build it first."
            ) from None
        if image not in source.tags:
            raise ImageDistributionError(
                f"{image} is not a tag of that image ({', '.join(source.tags) or 'untagged'}): "
                "side_load copies an image by one of its name:tag."
            )
        with tempfile.TemporaryFile(prefix="farm-side-load-") as tar:
            # named=: a save by id would lose the tag the destination must know it by.
            for chunk in source.save(named=image):
                tar.write(chunk)
            tar.seek(0)
            with _engine(f"Loading {image} into the destination engine"):
                loaded = dst_cli.images.load(tar)
    if not any(image in copy.tags for copy in loaded):
        raise ImageDistributionError(
            f"The destination engine loaded {[c.tags for c in loaded]}, not {image}."
        )
    return str(source.id)


def pre_pull(cli: docker.DockerClient, refs: Iterable[str], *, progress: Progress = _quiet) -> None:
    """Pull each of ``refs`` (``repo@sha256:…`` or ``repo:tag``) into the engine of
    ``cli``; a digest already there is not asked for again (its bits cannot change)."""
    for ref in refs:
        repository, tag = parse_repository_tag(ref)
        if not tag:
            raise ImageDistributionError(f"{ref!r} names no tag or digest: pre_pull pins images.")
        pinned = tag.startswith("sha256:")
        if pinned and _present(cli, ref):
            progress(f"{ref} already on the node")
            continue
        progress(f"pulling {ref}")
        with _engine(f"Pulling {ref}"):
            for line in cli.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in line or "errorDetail" in line:
                    detail = line.get("errorDetail") or {}
                    message = detail.get("message") or line.get("error") or "no message"
                    raise ImageDistributionError(
                        f"Pulling {ref} failed: {message}.", retryable=True
                    )
        if not _present(cli, ref):
            raise ImageDistributionError(
                f"The pull of {ref} ended, but the engine does not have it.", retryable=True
            )


def _present(cli: docker.DockerClient, ref: str) -> bool:
    with _engine(f"Looking up {ref}"):
        try:
            cli.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
    return True


@contextlib.contextmanager
def _engine(what: str) -> Iterator[None]:
    """Engine failures as ImageDistributionError: a 404 is the engine's word on a missing
    image or registry manifest (not retryable), the rest may pass."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise ImageDistributionError(f"{what}: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        raise ImageDistributionError(
            f"{what}: the Docker Engine answered {exc.explanation or exc}", retryable=True
        ) from exc
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise ImageDistributionError(
            f"{what}: the Docker Engine cannot be reached ({exc})", retryable=True
        ) from exc
