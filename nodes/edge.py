"""The one client for Traefik's web entry point (FARM_EDGE_URL), the farm's edge.

A site is asked for a path the way a visitor's browser would reach it: by its Host
header, through Traefik. Redirects are never followed (WordPress answers a site not
yet installed with a redirect to install.php, and a redirect is an answer), and
every call has a short timeout. What goes wrong on the way is an EdgeError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from django.conf import settings

from farm.errors import FarmError


class EdgeError(FarmError):
    """Traefik did not answer (refused, reset, timed out), or a site did not answer
    as expected before a deadline. Retryable: a route may still appear."""


@dataclass(frozen=True)
class EdgeAnswer:
    status: int
    text: str


def get(domain: str, path: str = "/", *, timeout: float = 15) -> EdgeAnswer:
    """GET ``path`` of the site ``domain`` through Traefik, without following a redirect."""
    try:
        response = requests.get(
            f"{settings.FARM_EDGE_URL}{path}",
            headers={"Host": domain},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise EdgeError(str(exc), retryable=True) from exc
    return EdgeAnswer(status=response.status_code, text=response.text)


def answers_as_site(status: int) -> bool:
    """The site answers as a site: 2xx or a redirect (WordPress sends visitors of a
    site not yet installed to install.php), or asks for credentials. Traefik's own
    404 (no route to the host yet) and any 5xx are not a working site. 0 stands for
    no answer at all."""
    return 200 <= status < 400 or status in (401, 403)


def wait_for(
    probe: Callable[[], tuple[bool, str]],
    *,
    timeout_s: float,
    what: str,
    every_s: float = 1.0,
    check_cancelled: Callable[[], None] | None = None,
) -> str:
    """Call ``probe`` until it says it is done, and return its note.

    ``probe`` returns ``(done, note)``; an EdgeError it raises counts as not done, with
    the error as the note. It runs at least once. Once ``timeout_s`` has passed, this
    raises a retryable ``EdgeError(f"{what} ({last note})")``, so ``what`` says what
    did not happen ("x did not answer within 60 s"). Between tries it calls
    ``check_cancelled`` (a step's ``ctx.check_cancelled``), then sleeps ``every_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            done, note = probe()
        except EdgeError as exc:
            done, note = False, str(exc)
        if done:
            return note
        if time.monotonic() > deadline:
            raise EdgeError(f"{what} ({note})", retryable=True)
        if check_cancelled is not None:
            check_cancelled()
        time.sleep(every_s)
