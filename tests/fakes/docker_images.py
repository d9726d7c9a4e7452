"""The image calls of the fake Docker Engine (tests/fakes/docker_engine.py), with the JSON
shapes and streams of Engine API 1.41:

- ``GET /images/{name}/json``: by tag, id or ``repo@digest`` (RepoDigests);
- ``POST /images/{name}/tag?repo=&tag=``;
- ``POST /images/{name}/push?tag=``: a chunked stream of JSON lines ending with
  ``aux.Digest``, or an ``error``/``errorDetail`` line. The push is real: the manifest
  is PUT to the registry the name points at (a fake registry, tests/fakes/registry.py);
- ``GET /images/{name}/get``: a ``docker save`` tarball (manifest.json, the config);
- ``POST /images/load``: reads such a tarball, streams ``Loaded image: …``;
- ``POST /images/create?fromImage=&tag=``: a pull from that registry by tag or digest.

There are no layers: an image is its id, tags, digests and labels.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import tarfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from tests.fakes.docker_engine import _Handler

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
_IMAGE_ID = re.compile(r"(?:sha256:)?([0-9a-f]{12,64})")


@dataclass
class FakeImage:
    id: str
    tags: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # repo@sha256:…
    labels: dict[str, str] = field(default_factory=dict)

    def inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "RepoTags": list(self.tags),
            "RepoDigests": list(self.digests),
            "Created": "2026-01-01T00:00:00.000000000Z",
            "Config": {"Labels": dict(self.labels)},
            "Architecture": "amd64",
            "Os": "linux",
            "Size": 1000,
        }

    def config_bytes(self) -> bytes:
        return json.dumps({"config": {"Labels": self.labels}, "os": "linux"}).encode()


@dataclass
class ImageStore:
    images: list[FakeImage] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)  # name:tag of each push
    pulled: list[str] = field(default_factory=list)  # fromImage, tag of each pull
    push_error: str | None = None  # the next pushes end with this error line
    push_reports_digest: str | None = None  # aux.Digest says this instead of the truth

    def add(self, tag: str, labels: dict[str, str] | None = None) -> FakeImage:
        """An image the engine has (built or loaded earlier)."""
        image = FakeImage("sha256:" + secrets.token_hex(32), [tag], [], labels or {})
        self.images.append(image)
        return image

    def find(self, name: str) -> FakeImage | None:
        wanted = name if (":" in name.rsplit("/", 1)[-1] or "@" in name) else f"{name}:latest"
        by_id = _IMAGE_ID.fullmatch(name)
        for image in self.images:
            if wanted in image.tags or name in image.digests:
                return image
            if by_id and image.id.removeprefix("sha256:").startswith(by_id.group(1)):
                return image
        return None


def route(handler: _Handler, method: str, path: str, query: dict[str, list[str]]) -> None:
    """Answer one ``/images/…`` request (``path`` unquoted, without the API version)."""
    store = handler.engine.images
    one = {k: v[0] for k, v in query.items()}
    if method == "POST" and path == "/images/load":
        _load(handler, store)
    elif method == "POST" and path == "/images/create":
        _pull(handler, store, one["fromImage"], one.get("tag", "latest"))
    elif path.startswith("/images/") and "/" in path.removeprefix("/images/"):
        name, _, action = path.removeprefix("/images/").rpartition("/")
        image = store.find(name)
        if method == "POST" and action == "push":
            _push(handler, store, name, one.get("tag", "latest"))
        elif image is None:
            handler._json(404, {"message": f"No such image: {name}"})
        elif method == "GET" and action == "json":
            handler._json(200, image.inspect())
        elif method == "POST" and action == "tag":
            tag = f"{one['repo']}:{one.get('tag') or 'latest'}"
            if tag not in image.tags:
                for other in store.images:
                    other.tags = [t for t in other.tags if t != tag]
                image.tags.append(tag)
            handler._answer(201, b"", "text/plain")
        elif method == "GET" and action == "get":
            handler._answer(200, _save(image, name), "application/x-tar")
        else:
            handler._json(404, {"message": "page not found"})
    else:
        handler._json(404, {"message": "page not found"})


def _stream(handler: _Handler, lines: list[dict[str, Any]]) -> None:
    """A chunked stream of JSON lines, as dockerd sends progress; then the connection ends."""
    handler.protocol_version = "HTTP/1.1"  # chunked needs 1.1; Connection: close ends it
    handler.send_response(200)
    handler.send_header("Api-Version", "1.41")
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.send_header("Connection", "close")
    handler.end_headers()
    for line in lines:
        data = json.dumps(line).encode() + b"\r\n"
        handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.write(b"0\r\n\r\n")


def _push(handler: _Handler, store: ImageStore, name: str, tag: str) -> None:
    store.pushed.append(f"{name}:{tag}")
    registry, _, repo = name.partition("/")
    lines: list[dict[str, Any]] = [{"status": f"The push refers to repository [{name}]"}]
    image = store.find(f"{name}:{tag}")
    if image is None:
        message = f"An image does not exist locally with the tag: {name}"
        _stream(handler, [*lines, {"errorDetail": {"message": message}, "error": message}])
        return
    if store.push_error is not None:
        error = {"errorDetail": {"message": store.push_error}, "error": store.push_error}
        _stream(handler, [*lines, {"status": "Preparing", "id": "5f70bf18a086"}, error])
        return
    config_digest = image.id
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": SCHEMA2,
            "config": {"mediaType": CONFIG_TYPE, "size": 1000, "digest": config_digest},
            "layers": [],
        },
        indent=3,
    ).encode()
    try:
        answer = requests.put(
            f"http://{registry}/v2/{repo}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": SCHEMA2},
            timeout=5,
        )
        answer.raise_for_status()
        digest = answer.headers["Docker-Content-Digest"]
    except requests.RequestException as exc:
        message = f'Get "http://{registry}/v2/": dial tcp {registry}: connect: {exc}'
        _stream(handler, [*lines, {"errorDetail": {"message": message}, "error": message}])
        return
    image.digests.append(f"{name}@{digest}")
    reported = store.push_reports_digest or digest
    _stream(
        handler,
        [
            *lines,
            {"status": "Pushed", "progressDetail": {}, "id": "5f70bf18a086"},
            {"status": f"{tag}: digest: {reported} size: {len(manifest)}"},
            {"progressDetail": {}, "aux": {"Tag": tag, "Digest": reported, "Size": len(manifest)}},
        ],
    )


def _pull(handler: _Handler, store: ImageStore, name: str, tag: str) -> None:
    store.pulled.append(f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}")
    registry, _, repo = name.partition("/")
    try:
        answer = requests.get(
            f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": SCHEMA2}, timeout=5
        )
    except requests.RequestException as exc:
        message = f'Get "http://{registry}/v2/": dial tcp {registry}: connect: {exc}'
        handler._json(500, {"message": message})
        return
    if answer.status_code != 200:
        reason = "manifest unknown" if answer.status_code == 404 else f"HTTP {answer.status_code}"
        handler._json(404, {"message": f"manifest for {name}:{tag} not found: {reason}"})
        return
    digest = answer.headers["Docker-Content-Digest"]
    manifest = answer.json()
    image_id = manifest["config"]["digest"]
    image = next((i for i in store.images if i.id == image_id), None)
    if image is None:
        image = FakeImage(image_id)
        store.images.append(image)
    if f"{name}@{digest}" not in image.digests:
        image.digests.append(f"{name}@{digest}")
    if not tag.startswith("sha256:") and f"{name}:{tag}" not in image.tags:
        image.tags.append(f"{name}:{tag}")
    _stream(
        handler,
        [
            {"status": f"Pulling from {repo}", "id": tag},
            {"status": f"Digest: {digest}"},
            {"status": f"Status: Downloaded newer image for {name}"},
        ],
    )


def _save(image: FakeImage, name: str) -> bytes:
    """``docker save``: named by a tag it keeps that tag; by id, none (as dockerd does)."""
    hex_id = image.id.removeprefix("sha256:")
    repo_tags = [name] if name in image.tags else []
    entries = {
        "manifest.json": json.dumps(
            [{"Config": f"{hex_id}.json", "RepoTags": repo_tags, "Layers": []}]
        ).encode(),
        f"{hex_id}.json": image.config_bytes(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry, data in entries.items():
            info = tarfile.TarInfo(entry)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_body(handler: _Handler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length", 0)))


def _load(handler: _Handler, store: ImageStore) -> None:
    body = _read_body(handler)
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        (entry,) = json.loads(member.read())
        config_file = tar.extractfile(entry["Config"])
        assert config_file is not None
        config = json.loads(config_file.read())
    image_id = "sha256:" + entry["Config"].removesuffix(".json")
    image = next((i for i in store.images if i.id == image_id), None)
    if image is None:
        image = FakeImage(image_id, labels=config["config"].get("Labels") or {})
        store.images.append(image)
    for tag in entry["RepoTags"]:
        if tag not in image.tags:
            image.tags.append(tag)
    loaded = (
        [{"stream": f"Loaded image: {tag}\n"} for tag in entry["RepoTags"]]
        if entry["RepoTags"]
        else [{"stream": f"Loaded image ID: {image_id}\n"}]
    )
    _stream(handler, loaded)
