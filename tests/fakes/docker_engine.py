"""A stand-in for a Docker Engine's API on a unix socket, as dockerd serves it: the real
docker SDK client talks to it over real HTTP. It answers what the SDK asks when a client
is made and probed (``GET /version``, ``/_ping``, ``/info``), the network calls
(``GET /networks``, ``GET /networks/<id>``, ``POST /networks/create``) and the image calls
of tests/fakes/docker_images.py (inspect, tag, push, save, load, pull), with the JSON
shapes of Engine API 1.41 (Docker 20.10). A manager also answers for its swarm's nodes,
services and tasks (``engine.swarm``, tests/fakes/docker_swarm.py). Anything else is the
Engine's 404.

    with running_fake_engines(["one", "two"]) as (one, two):
        two.manager = False          # a Swarm worker: ControlAvailable false
        settings.FARM_DOCKER_HOSTS = [one.url, two.url]
        ...
        one.stop()                   # the engine dies: its socket refuses connections
        assert ("GET", "/v1.41/info") in one.requests
"""

from __future__ import annotations

import json
import secrets
import socketserver
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.docker_images import ImageStore
from tests.fakes.docker_images import route as route_images
from tests.fakes.docker_swarm import FakeSwarm

API_VERSION = "1.41"
ENGINE_VERSION = "20.10.24+dfsg1"


@dataclass
class FakeEngine:
    name: str
    socket_path: Path
    manager: bool = True
    swarm_state: str = "active"
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    created: list[dict[str, Any]] = field(default_factory=list)  # POST /networks/create bodies
    images: ImageStore = field(default_factory=ImageStore)
    swarm: FakeSwarm = field(default_factory=FakeSwarm)  # shared by the engines of one swarm
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def add_network(self, name: str, *, options: dict[str, str] | None = None) -> dict[str, Any]:
        """A network the engine already has (an earlier farm_up's)."""
        net_id = secrets.token_hex(32)
        self.networks[net_id] = _network_json(net_id, name, "overlay", options or {}, {})
        return self.networks[net_id]

    def info(self) -> dict[str, Any]:
        swarm: dict[str, Any] = {
            "NodeID": f"{self.name}-node-id" if self.swarm_state == "active" else "",
            "NodeAddr": "10.213.0.11" if self.swarm_state == "active" else "",
            "LocalNodeState": self.swarm_state,
            "ControlAvailable": self.manager and self.swarm_state == "active",
            "Error": "",
            "RemoteManagers": None,
        }
        if swarm["ControlAvailable"]:
            swarm.update({"Nodes": 3, "Managers": 3, "Cluster": {"ID": "cluster-id"}})
        return {
            "ID": f"{self.name}-engine-id",
            "Name": self.name,
            "ServerVersion": ENGINE_VERSION,
            "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
            "NCPU": 2,
            "MemTotal": 24 * 1024**3,
            "Swarm": swarm,
        }

    def start(self) -> None:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-engine-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """The engine dies: the socket file stays and refuses every connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _network_json(
    net_id: str, name: str, driver: str, options: dict[str, str], labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "Name": name,
        "Id": net_id,
        "Created": "2026-01-01T00:00:00.000000000Z",
        "Scope": "swarm",
        "Driver": driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        # What a manager lists for an overlay: the VXLAN id it allocated, and the
        # options it was created with (an encrypted one keeps "encrypted").
        "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4097", **options},
        "Labels": labels,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so a stopped engine answers nothing more.
    protocol_version = "HTTP/1.0"

    @property
    def engine(self) -> FakeEngine:
        return self.server.engine

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        self.engine.requests.append((method, unquote(url.path)))
        path = unquote(url.path).removeprefix(f"/v{API_VERSION}")
        query = parse_qs(url.query)
        if method == "GET" and path == "/_ping":
            self._answer(200, b"OK", "text/plain; charset=utf-8")
        elif method == "GET" and path == "/version":
            self._json(200, _version())
        elif method == "GET" and path == "/info":
            self._json(200, self.engine.info())
        elif method == "GET" and path == "/networks":
            self._json(200, self._list_networks(query))
        elif method == "GET" and path.startswith("/networks/"):
            net = self.engine.networks.get(path.removeprefix("/networks/"))
            if net is None:
                self._json(404, {"message": f"network {path.rsplit('/', 1)[-1]} not found"})
            else:
                self._json(200, net)
        elif method == "POST" and path == "/networks/create":
            self._create_network()
        elif path.startswith("/images/"):
            route_images(self, method, path, query)
        else:
            self._swarm(method, path, query)

    def _swarm(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.engine.swarm.answer(method, path, query, body)
        if answer is None:
            self._json(404, {"message": "page not found"})
        elif not self.engine.manager:
            self._json(503, {"message": "This node is not a swarm manager."})
        else:
            self._json(*answer)

    def _list_networks(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        filters = json.loads(query.get("filters", ["{}"])[0])
        names = filters.get("name") or []
        # The Engine's name filter matches a part of the name, as here.
        return [
            n
            for n in self.engine.networks.values()
            if not names or any(want in n["Name"] for want in names)
        ]

    def _create_network(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.engine.created.append(body)
        if any(n["Name"] == body["Name"] for n in self.engine.networks.values()):
            self._json(409, {"message": f"network with name {body['Name']} already exists"})
            return
        net_id = secrets.token_hex(32)
        net = _network_json(
            net_id,
            body["Name"],
            body.get("Driver") or "bridge",
            body.get("Options") or {},
            body.get("Labels") or {},
        )
        net["Attachable"] = bool(body.get("Attachable"))
        net["IPAM"]["Config"] = (body.get("IPAM") or {}).get("Config") or []
        self.engine.networks[net_id] = net
        self._json(201, {"Id": net_id, "Warning": ""})

    def _json(self, status: int, payload: Any) -> None:
        self._answer(status, json.dumps(payload).encode(), "application/json")

    def _answer(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        self.send_header("Server", f"Docker/{ENGINE_VERSION} (linux)")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def address_string(self) -> str:
        return self.engine.name  # a unix socket's peer has no address

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``engine.requests`` instead of stderr."""


def _version() -> dict[str, Any]:
    return {
        "Platform": {"Name": ""},
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": "1.12",
        "GitCommit": "5d6db84",
        "GoVersion": "go1.19.8",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": "6.18.44",
    }


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, engine: FakeEngine) -> None:
        engine.socket_path.unlink(missing_ok=True)
        super().__init__(str(engine.socket_path), _Handler)
        self.engine = engine

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up is no error of the fake's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def running_fake_engines(names: list[str]) -> Iterator[list[FakeEngine]]:
    """One fake engine per name, each on its own socket in a new short temporary
    directory (a unix socket path must stay under 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="farm-engines-") as tmp:
        engines = [FakeEngine(name, Path(tmp) / f"{name}.sock") for name in names]
        for engine in engines:
            engine.start()
        try:
            yield engines
        finally:
            for engine in engines:
                engine.stop()
