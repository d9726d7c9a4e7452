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
from typing import Any

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


# A probe's GET gives up this fast: it asks twice a second, and a hung answer is downtime.
PROBE_GET_TIMEOUT_S = 2.0


@dataclass
class OutageProbe:
    """Follows one site through a move (a drained or failed node): each ``look`` GETs
    ``/`` through the edge and keeps, in epoch seconds, when the site first failed to
    answer, when it last answered again, and how long it was unreachable in all.

    Its fields are plain numbers so that a step can keep them in its operation's state
    (``as_state``/``from_state``) and a resumed step goes on where the last one was.
    """

    domain: str
    first_failed_at: float | None = None
    down_since: float | None = None  # the start of the failure now running
    answered_at: float | None = None  # the first answer, or the one that ended a failure
    unreachable_s: float = 0.0
    looks: int = 0
    note: str = ""

    @property
    def answering(self) -> bool:
        return self.looks > 0 and self.down_since is None

    def look(self, now: Callable[[], float] = time.time) -> bool:
        """One GET; True when the site answers as a site."""
        began = now()
        try:
            status = get(self.domain, "/", timeout=PROBE_GET_TIMEOUT_S).status
            self.note = f"HTTP {status}"
        except EdgeError as exc:
            status, self.note = 0, str(exc)
        ok = answers_as_site(status)
        self.looks += 1
        if ok:
            at = now()
            if self.down_since is not None:
                self.unreachable_s += at - self.down_since
                self.down_since = None
                self.answered_at = at
            elif self.answered_at is None:
                self.answered_at = at
        elif self.down_since is None:
            # A GET that failed: the site was not answering from when it was sent.
            self.down_since = began
            if self.first_failed_at is None:
                self.first_failed_at = began
        return ok

    def as_state(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "first_failed_at": self.first_failed_at,
            "down_since": self.down_since,
            "answered_at": self.answered_at,
            "unreachable_s": self.unreachable_s,
            "looks": self.looks,
            "note": self.note,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OutageProbe:
        return cls(
            domain=str(state["domain"]),
            first_failed_at=state.get("first_failed_at"),
            down_since=state.get("down_since"),
            answered_at=state.get("answered_at"),
            unreachable_s=float(state.get("unreachable_s") or 0.0),
            looks=int(state.get("looks") or 0),
            note=str(state.get("note") or ""),
        )


def look_all(probes: list[OutageProbe]) -> bool:
    """One round: every probe looks once; True when every site answers."""
    return all([probe.look() for probe in probes])
