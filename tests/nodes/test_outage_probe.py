"""Issue 12, C11: nodes.edge.OutageProbe follows a site through a move. It GETs the
site through the edge (here a fake Traefik that routes by Host) and measures how long
the site did not answer, from the first failed GET to the answer that ended it."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

import pytest

from nodes import edge
from tests.fakes.edge import FakeEdge, running_fake_edge


@pytest.fixture
def fake_edge(settings) -> Iterator[FakeEdge]:
    with running_fake_edge() as fake:
        settings.FARM_EDGE_URL = fake.url
        yield fake


def clock(start: float = 1000.0, step: float = 0.5):
    """A clock that moves ``step`` seconds each time it is read."""
    ticks = count()
    return lambda: start + step * next(ticks)


def test_a_site_that_always_answers_was_never_unreachable(fake_edge):
    fake_edge.route("a.example", "/", 200, "hello")
    probe = edge.OutageProbe("a.example")

    assert probe.look() and probe.look()

    assert probe.answering and probe.first_failed_at is None
    assert probe.unreachable_s == 0.0 and probe.answered_at is not None
    assert fake_edge.requests == [("a.example", "/"), ("a.example", "/")]


def test_the_time_between_the_first_failed_get_and_the_answer_is_unreachable(fake_edge):
    now = clock()
    probe = edge.OutageProbe("a.example")
    fake_edge.route("a.example", "/", 502, "Bad Gateway")

    assert not probe.look(now)  # sent at 1000.0
    assert not probe.look(now)  # still failing: the outage began at the first
    assert not probe.answering and probe.first_failed_at == 1000.0

    fake_edge.route("a.example", "/", 302, "")  # a redirect (to install.php) is an answer
    assert probe.look(now)  # sent at 1001.0, answered at 1001.5

    assert probe.answering
    assert probe.unreachable_s == pytest.approx(1.5)
    assert probe.answered_at == 1001.5 and probe.note == "HTTP 302"


def test_traefiks_own_404_is_no_answer(fake_edge):
    probe = edge.OutageProbe("no-route.example")

    assert not probe.look()
    assert not probe.answering and probe.note == "HTTP 404"


def test_a_probe_resumes_from_its_state(fake_edge):
    now = clock()
    fake_edge.route("a.example", "/", 503, "")
    probe = edge.OutageProbe("a.example")
    probe.look(now)

    resumed = edge.OutageProbe.from_state(probe.as_state())
    fake_edge.route("a.example", "/", 200, "")
    resumed.look(now)

    assert resumed.answering and resumed.unreachable_s == pytest.approx(1.0)
    assert resumed.looks == 2


def test_look_all_is_true_only_when_every_site_answers(fake_edge):
    fake_edge.route("a.example", "/", 200, "")
    probes = [edge.OutageProbe("a.example"), edge.OutageProbe("b.example")]

    assert not edge.look_all(probes)
    assert probes[0].looks == probes[1].looks == 1, "every site is asked in each round"
    fake_edge.route("b.example", "/", 200, "")
    assert edge.look_all(probes)
