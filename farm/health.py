"""``/healthz``: the panel process answers, and nothing more.

Docker's health check and Traefik ask it every few seconds, from inside the container
(``127.0.0.1:8000``) or over the overlay network, by plain HTTP and under any host name.
So the answer comes from the first middleware, before Django checks the host against
ALLOWED_HOSTS, before the HTTPS redirect, the session and the operator MFA check: a
probe is never refused, redirected or sent to a login page. It touches neither the
database nor Docker (a web replica has no Docker socket, and a database that is slow
for a moment must not make Swarm kill every web replica at once); those are watched
elsewhere (the Nodes page, the MariaDB health check). It has no URL pattern: the
middleware is the only way in (and the isolation matrix lists only pages).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

PATH = "/healthz"


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("ok\n", content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


class HealthzMiddleware:
    """Answers ``GET /healthz`` itself; every other request goes on down the chain."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == PATH:
            return healthz(request)
        return self.get_response(request)
