"""One helper removes what the engine may still hold a moment (a network until its last
task detached): the bootstrap's teardown, the swarm reset and a site's stack removal all
use ``nodes.swarm.remove_when_released``. No Docker Engine here: fakes raise its errors."""

from __future__ import annotations

from unittest import mock

import docker.errors
import pytest

from nodes.swarm import SwarmError, remove_when_released


def busy() -> docker.errors.APIError:
    return docker.errors.APIError("409", explanation="network has active endpoints")


def test_it_tries_again_until_the_engine_lets_go():
    remove = mock.Mock(side_effect=[busy(), busy(), None])
    with mock.patch("nodes.swarm_client.time.sleep") as sleep:
        remove_when_released(remove, "network wp-1", pause_s=0.5)
    assert remove.call_count == 3
    assert sleep.call_args_list == [mock.call(0.5), mock.call(0.5)]


def test_an_object_already_gone_counts_as_removed():
    remove = mock.Mock(side_effect=docker.errors.NotFound("gone"))
    remove_when_released(remove, "network wp-1")
    assert remove.call_count == 1


def test_it_gives_up_with_a_retryable_swarm_error_in_the_engines_words():
    remove = mock.Mock(side_effect=busy())
    with mock.patch("nodes.swarm_client.time.sleep"), pytest.raises(SwarmError) as failed:
        remove_when_released(remove, "network wp-1", attempts=3)
    assert remove.call_count == 3
    assert failed.value.retryable
    assert failed.value.message == "Removing network wp-1: network has active endpoints"
