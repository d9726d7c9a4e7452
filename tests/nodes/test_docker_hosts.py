"""Issue 12, C1: with several Docker Engines (FARM_DOCKER_HOSTS) the panel uses the first
that answers and is a Swarm manager, and fails over when it stops answering.

The engines are fakes serving the Engine API on unix sockets (tests/fakes/docker_engine.py);
the docker SDK's own client talks to them over HTTP, as it talks to dockerd."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nodes.swarm import SwarmError, client, reset_client_cache, translate_errors
from tests.fakes.docker_engine import running_fake_engines
from tests.support.processes import ROOT

PROBE = [("GET", "/version"), ("GET", "/v1.41/_ping"), ("GET", "/v1.41/info")]


@pytest.fixture
def engines(settings):
    settings.DOCKER_HOST = ""
    settings.FARM_PROCESS_ROLE = "all"
    settings.FARM_DOCKER_TIMEOUT = 5
    reset_client_cache()
    with running_fake_engines(["node-1", "node-2", "node-3"]) as fakes:
        settings.FARM_DOCKER_HOSTS = [fake.url for fake in fakes]
        yield fakes
    reset_client_cache()


def engine_name() -> str:
    """Which engine the panel's client talks to (each fake answers /info with its name)."""
    with translate_errors("Asking the Docker Engine"):
        return str(client().info()["Name"])


def test_the_first_manager_that_answers_is_used_and_kept(engines):
    one, two, three = engines

    assert engine_name() == "node-1"
    assert client() is client(), "one client, cached"
    assert one.requests[:3] == PROBE, "probed by the SDK's own calls"
    assert two.requests == [] and three.requests == [], "the others are not asked"


def test_a_dead_first_host_fails_over_to_the_second(engines):
    one, _, three = engines
    one.stop()

    assert engine_name() == "node-2"
    assert three.requests == []


def test_a_worker_only_host_is_skipped(engines):
    one, two, _ = engines
    one.manager = False  # in the swarm, but a worker: it cannot create services
    two.swarm_state = "inactive"  # in no swarm at all

    assert engine_name() == "node-3"
    assert ("GET", "/v1.41/info") in one.requests and ("GET", "/v1.41/info") in two.requests


def test_no_manager_answers_a_clear_error_names_each_host_and_why(engines):
    one, two, three = engines
    one.stop()
    two.manager = False
    three.stop()

    with pytest.raises(SwarmError) as raised:
        client()

    message = raised.value.message
    assert "No Docker Engine of FARM_DOCKER_HOSTS is a Swarm manager that answers" in message
    assert f"{one.url} does not answer" in message
    assert f"{two.url} is not a Swarm manager" in message
    assert f"{three.url} does not answer" in message
    assert raised.value.retryable, "an engine may come back"


def test_a_connection_error_mid_use_clears_the_cache_and_the_next_client_fails_over(engines):
    one, _, three = engines
    first = client()
    assert engine_name() == "node-1"

    one.stop()  # the manager dies while the panel holds its client
    with pytest.raises(SwarmError) as raised, translate_errors("Listing nodes"):
        first.info()
    assert "does not answer" in raised.value.message and raised.value.retryable

    assert client() is not first
    assert engine_name() == "node-2"
    assert three.requests == []


def test_an_error_from_an_engine_that_answers_keeps_the_client(engines):
    first = client()
    with pytest.raises(SwarmError), translate_errors("Inspecting a network"):
        first.networks.get("no-such-network")  # the engine's 404: it is alive

    assert client() is first


@pytest.mark.parametrize("named_by", ["DOCKER_HOST", "FARM_DOCKER_HOSTS"])
def test_one_host_is_used_as_before_manager_or_not(engines, settings, named_by):
    """One engine (DOCKER_HOST, or FARM_DOCKER_HOSTS with one) is used as it is: farm_up
    still has to make a fresh engine a manager, and engine_status says when it is not one."""
    one = engines[0]
    one.swarm_state = "inactive"
    settings.FARM_DOCKER_HOSTS = [one.url] if named_by == "FARM_DOCKER_HOSTS" else []
    settings.DOCKER_HOST = one.url if named_by == "DOCKER_HOST" else ""

    assert engine_name() == "node-1"
    assert ("GET", "/v1.41/_ping") not in one.requests, "no probe: the client as before"


def test_a_web_process_has_no_docker_client(engines, settings, monkeypatch):
    settings.FARM_PROCESS_ROLE = "web"

    def no_engine(*args, **kwargs):
        raise AssertionError("a web process asked for a Docker client")

    monkeypatch.setattr("nodes.swarm_client._client", no_engine)
    with pytest.raises(SwarmError, match="FARM_PROCESS_ROLE=web") as raised:
        client()
    assert not raised.value.retryable
    assert all(engine.requests == [] for engine in engines)

    settings.FARM_PROCESS_ROLE = "worker"
    monkeypatch.undo()
    assert engine_name() == "node-1"


def _settings_of(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; {code}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "farm.settings", **env},
    )


def test_the_settings_read_a_list_of_hosts_and_refuse_what_is_no_engine_address():
    hosts = "unix:///run/wpfarm-nodes/farm-node-1/docker.sock, tcp://10.213.0.12:2375"
    ok = _settings_of(
        {"FARM_DOCKER_HOSTS": hosts, "FARM_PROCESS_ROLE": "Worker"},
        "print(settings.FARM_DOCKER_HOSTS, settings.FARM_PROCESS_ROLE)",
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == (
        "['unix:///run/wpfarm-nodes/farm-node-1/docker.sock', 'tcp://10.213.0.12:2375'] worker"
    )
    default = _settings_of({}, "print(settings.FARM_DOCKER_HOSTS, settings.FARM_PROCESS_ROLE)")
    assert default.stdout.strip() == "[] all", default.stderr

    for bad in ("10.213.0.12:2375", "tcp://10.213.0.12", "http://x:2375", "unix://"):
        refused = _settings_of({"FARM_DOCKER_HOSTS": f"unix:///ok.sock,{bad}"}, "")
        assert refused.returncode != 0, bad
        assert f"FARM_DOCKER_HOSTS: {bad!r} is not a Docker Engine address" in refused.stderr
    role = _settings_of({"FARM_PROCESS_ROLE": "frontend"}, "")
    assert role.returncode != 0 and "FARM_PROCESS_ROLE='frontend' must be one of" in role.stderr
