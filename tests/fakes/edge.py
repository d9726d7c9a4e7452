"""A stand-in for Traefik's web entry point: it routes by the Host header, as Traefik
does, and answers a host it has no route to with Traefik's own 404.

    with running_fake_edge() as fake:
        fake.route("a.example", "/", 200, "hello")
        settings.FARM_EDGE_URL = fake.url
        ...
        assert fake.requests == [("a.example", "/")]
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TRAEFIK_404 = "404 page not found\n"


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class FakeEdge:
    url: str = ""
    routes: dict[tuple[str, str], Answer] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def route(
        self,
        host: str,
        path: str,
        status: int,
        body: str = "",
        *,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.routes[(host, path)] = Answer(status, body, headers or {}, delay_s)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        host = self.headers.get("Host", "")
        self.server.edge.requests.append((host, self.path))
        answer = self.server.edge.routes.get((host, self.path), Answer(404, TRAEFIK_404))
        time.sleep(answer.delay_s)
        payload = answer.body.encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``edge.requests`` instead of stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, edge: FakeEdge) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.edge = edge

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout under test) is no error of the fake's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def running_fake_edge() -> Iterator[FakeEdge]:
    """Serve a fake edge on a free local port; ``edge.url`` is what FARM_EDGE_URL takes."""
    edge = FakeEdge()
    server = _Server(edge)
    host, port = server.server_address[:2]
    edge.url = f"http://{host!s}:{port}"
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="fake-edge",
        daemon=True,
    )
    thread.start()
    try:
        yield edge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
