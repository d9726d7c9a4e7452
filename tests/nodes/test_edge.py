"""nodes/edge.py, the one client for Traefik's web entry point: a site is asked by its
Host header, a redirect is an answer (never followed), and no answer is an EdgeError;
wait_for polls until a deadline and says what it saw last."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from farm.errors import FarmError
from nodes import edge
from tests.fakes.edge import TRAEFIK_404, FakeEdge, running_fake_edge


@pytest.fixture
def fake_edge(settings) -> Iterator[FakeEdge]:
    with running_fake_edge() as fake:
        settings.FARM_EDGE_URL = fake.url
        yield fake


def refused_url() -> str:
    """A local port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- get ------------------------------------------------------------------------------


def test_get_asks_the_site_by_its_host_header(fake_edge):
    fake_edge.route("a.example", "/wp-admin/install.php", 200, "install here")

    answer = edge.get("a.example", "/wp-admin/install.php")

    assert answer == edge.EdgeAnswer(status=200, text="install here")
    assert fake_edge.requests == [("a.example", "/wp-admin/install.php")]


def test_a_host_with_no_route_gets_traefiks_404_as_an_answer_not_an_error(fake_edge):
    answer = edge.get("nobody.example")

    assert answer.status == 404 and answer.text == TRAEFIK_404
    assert fake_edge.requests == [("nobody.example", "/")]


def test_a_redirect_is_an_answer_and_is_not_followed(fake_edge):
    fake_edge.route("a.example", "/", 302, headers={"Location": "/wp-admin/install.php"})
    fake_edge.route("a.example", "/wp-admin/install.php", 200, "install here")

    assert edge.get("a.example").status == 302
    assert fake_edge.requests == [("a.example", "/")]


def test_a_refused_connection_is_a_retryable_edge_error(settings):
    settings.FARM_EDGE_URL = refused_url()

    with pytest.raises(edge.EdgeError) as caught:
        edge.get("a.example", timeout=5)

    assert isinstance(caught.value, FarmError) and caught.value.retryable
    assert "refused" in str(caught.value).lower()


def test_an_answer_slower_than_the_timeout_is_an_edge_error(fake_edge):
    fake_edge.route("slow.example", "/", 200, "late", delay_s=2)

    with pytest.raises(edge.EdgeError, match="timed out"):
        edge.get("slow.example", timeout=0.3)


@pytest.mark.parametrize(
    ("status", "ok"),
    [(200, True), (302, True), (401, True), (404, False), (502, False), (0, False)],
)
def test_a_restored_site_must_answer_as_a_site_not_with_traefiks_404(status, ok):
    """404 is what Traefik answers for a host it has no route to (yet): a restore
    verified on it would be verified without the site."""
    assert edge.answers_as_site(status) is ok


# -- wait_for -------------------------------------------------------------------------


def test_wait_for_tries_until_the_probe_is_done_and_returns_its_note():
    answers = iter([(False, "HTTP 404"), (False, "HTTP 502"), (True, "HTTP 200")])

    note = edge.wait_for(lambda: next(answers), timeout_s=10, every_s=0.01, what="never")

    assert note == "HTTP 200"
    assert next(answers, None) is None, "it stops at the first done"


def test_wait_for_times_out_with_what_did_not_happen_and_the_last_note():
    tries = iter(range(1, 1000))

    with pytest.raises(edge.EdgeError) as caught:
        edge.wait_for(
            lambda: (False, f"HTTP 404, try {next(tries)}"),
            timeout_s=0.2,
            every_s=0.05,
            what="a.example did not answer within 0.2 s",
        )

    last = next(tries) - 1
    assert last >= 2, "it kept trying until the deadline"
    assert str(caught.value) == f"a.example did not answer within 0.2 s (HTTP 404, try {last})"
    assert caught.value.retryable


def test_wait_for_counts_an_edge_error_as_not_yet_with_its_words_as_the_note(settings):
    settings.FARM_EDGE_URL = refused_url()

    def probe() -> tuple[bool, str]:
        return True, f"HTTP {edge.get('a.example', timeout=5).status}"

    with pytest.raises(edge.EdgeError) as caught:
        edge.wait_for(probe, timeout_s=0.1, every_s=0.05, what="a.example did not answer")

    assert str(caught.value).startswith("a.example did not answer (")
    assert "refused" in str(caught.value).lower()


def test_wait_for_checks_for_cancel_between_tries():
    class Cancelled(Exception):
        pass

    tries: list[int] = []
    checks: list[int] = []

    def probe() -> tuple[bool, str]:
        tries.append(1)
        return False, "not yet"

    def check_cancelled() -> None:
        checks.append(1)
        if len(checks) == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        edge.wait_for(
            probe, timeout_s=10, every_s=0.01, what="never", check_cancelled=check_cancelled
        )

    assert len(tries) == 2, "cancel is checked after each try, before the next"
