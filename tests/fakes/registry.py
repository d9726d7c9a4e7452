"""A stand-in for Docker Distribution's registry (HTTP API v2) on 127.0.0.1: the calls the
farm makes, with the registry's own status codes, headers and error bodies.

``GET /v2/``; ``PUT /v2/<repo>/manifests/<tag>`` (what an engine's push ends with: the
digest is the sha256 of the manifest's bytes); ``HEAD`` and ``GET`` of
``/v2/<repo>/manifests/<tag or digest>``. Like the real registry, a client whose Accept
names no schema 2 or OCI type gets a schema 1 conversion, with another digest.

    with running_fake_registry() as registry:
        registry.put_manifest("farm/nginx", "abc", b"{...}")
        manifest_digest(registry.address, "farm/nginx", "abc")
        assert registry.requests[-1] == ("HEAD", "/v2/farm/nginx/manifests/abc")
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MODERN_TYPES = (
    SCHEMA2,
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Manifest:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.data)


@dataclass
class FakeRegistry:
    address: str = ""  # host:port, as an image name carries it
    # (repo, tag or digest) -> manifest; a tag and its digest name the same one
    manifests: dict[tuple[str, str], Manifest] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    accepts: list[str] = field(default_factory=list)  # the Accept header of each HEAD/GET
    omit_digest_header: bool = False  # a registry (or proxy) that drops Docker-Content-Digest

    def put_manifest(self, repo: str, tag: str, data: bytes, media_type: str = SCHEMA2) -> str:
        manifest = Manifest(media_type, data)
        self.manifests[(repo, tag)] = manifest
        self.manifests[(repo, manifest.digest)] = manifest
        return manifest.digest

    def has_repository(self, repo: str) -> bool:
        return any(name == repo for name, _ in self.manifests)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    @property
    def registry(self) -> FakeRegistry:
        return self.server.registry

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        self.registry.requests.append((method, path))
        if path == "/v2/" and method in ("GET", "HEAD"):
            self._answer(200, b"{}", "application/json; charset=utf-8", method=method)
            return
        repo, sep, reference = path.removeprefix("/v2/").rpartition("/manifests/")
        if not path.startswith("/v2/") or not sep or not repo or not reference:
            self._error(404, "NOT_FOUND", "page not found", method=method)
        elif method == "PUT":
            self._put(repo, reference)
        else:
            self._get(repo, reference, method)

    def _put(self, repo: str, reference: str) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        media_type = self.headers.get("Content-Type", SCHEMA2)
        digest = self.registry.put_manifest(repo, reference, data, media_type)
        self._answer(
            201,
            b"",
            "text/plain",
            extra={"Location": f"/v2/{repo}/manifests/{digest}", "Docker-Content-Digest": digest},
        )

    def _get(self, repo: str, reference: str, method: str) -> None:
        accept = self.headers.get("Accept", "")
        self.registry.accepts.append(accept)
        manifest = self.registry.manifests.get((repo, reference))
        if manifest is None:
            code = "MANIFEST_UNKNOWN" if self.registry.has_repository(repo) else "NAME_UNKNOWN"
            self._error(404, code, f"manifest unknown: {repo}:{reference}", method=method)
            return
        if not any(media_type in accept for media_type in MODERN_TYPES):
            # The registry converts a schema 2 manifest for an old client: other bytes.
            manifest = Manifest(
                SCHEMA1, b'{"schemaVersion": 1, "converted": ' + manifest.data + b"}"
            )
        extra = (
            {} if self.registry.omit_digest_header else {"Docker-Content-Digest": manifest.digest}
        )
        self._answer(200, manifest.data, manifest.media_type, method=method, extra=extra)

    def _error(self, status: int, code: str, message: str, *, method: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
        self._answer(status, body.encode(), "application/json; charset=utf-8", method=method)

    def _answer(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        *,
        method: str = "GET",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``registry.requests`` instead of stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, registry: FakeRegistry) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.registry = registry

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def running_fake_registry() -> Iterator[FakeRegistry]:
    registry = FakeRegistry()
    server = _Server(registry)
    registry.address = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
