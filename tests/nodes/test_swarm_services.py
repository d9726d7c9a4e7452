"""Which service changes Swarm can make in place: the mode's kind, compared the way
the Engine answers it ("Replicated") against the way the SDK writes it ("replicated")."""

from __future__ import annotations

from docker import types as dt

from nodes.swarm_services import _mode_kind


def test_a_replicated_service_stays_replicated_whatever_the_case_of_its_key() -> None:
    engine_says = {"Replicated": {"Replicas": 1}}
    assert _mode_kind(engine_says) == _mode_kind(dt.ServiceMode("replicated", replicas=2))


def test_replicated_and_global_are_different_kinds() -> None:
    assert _mode_kind({"Replicated": {"Replicas": 1}}) != _mode_kind(dt.ServiceMode("global"))
    assert _mode_kind({"Global": {}}) == _mode_kind(dt.ServiceMode("global"))
