"""Swarm join tokens and unlock keys never reach a step log, nor anyone's page:
they let their reader join (or unlock) the swarm, so operators do not see them either."""

from __future__ import annotations

import logging

import pytest

from farm.models import Operation, OperationStep
from farm.operations.kinds import StepContext
from farm.operations.writes import append_step_log
from farm.redaction import SWARM_SECRET_MASK, mask_swarm_secrets, redact_for

WORKER_TOKEN = (
    "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
)
MANAGER_TOKEN = (
    "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-7p73s1dx5in4tatdymyhg9hu2"
)
UNLOCK_KEY = "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8"


def test_tokens_and_unlock_keys_are_masked_and_the_rest_kept() -> None:
    text = (
        f"docker swarm join --token {WORKER_TOKEN} 10.213.0.11:2377\n"
        f"manager: {MANAGER_TOKEN}; key={UNLOCK_KEY}.\n"
        "SWMTKN-1- (a cut-off one)\n"
    )
    masked = mask_swarm_secrets(text)
    assert "SWMTKN" not in masked and "SWMKEY" not in masked
    assert "1awxwuwd" not in masked and "7c37Cc86" not in masked
    assert (
        masked.splitlines()[0] == f"docker swarm join --token {SWARM_SECRET_MASK} 10.213.0.11:2377"
    )
    assert masked.splitlines()[1] == f"manager: {SWARM_SECRET_MASK}; key={SWARM_SECRET_MASK}."
    assert mask_swarm_secrets("nothing secret here") == "nothing secret here"


@pytest.fixture
def step(db, operator) -> OperationStep:
    operation = Operation.objects.create(
        kind="site.provision", target_type="site", target_id="1", target_repr="x", actor=operator
    )
    return OperationStep.objects.create(operation=operation, position=1, name="swarm", label="S")


def test_a_step_log_never_stores_a_token_and_no_page_shows_one(
    step: OperationStep, operator, owner
) -> None:
    assert append_step_log(step.pk, f"joining with {WORKER_TOKEN}\nsecond line")

    step.refresh_from_db()
    assert "SWMTKN" not in step.log
    first, second = step.log.splitlines()
    assert first.endswith(f" joining with {SWARM_SECRET_MASK}")
    assert second.endswith(" second line")
    # Text that reached a page some other way (an error field, an older log).
    for viewer in (operator, owner, None):
        assert "SWMTKN" not in redact_for(viewer, f"Error: {MANAGER_TOKEN} refused")


def test_the_engine_words_a_token_may_hide_in_are_masked_for_operators_too(operator) -> None:
    shown = redact_for(operator, f"rpc error: invalid join token {WORKER_TOKEN}")
    assert shown == f"rpc error: invalid join token {SWARM_SECRET_MASK}"


def test_a_steps_log_call_masks_the_worker_log_and_the_stored_log(
    step: OperationStep, caplog: pytest.LogCaptureFixture
) -> None:
    context = StepContext(step.operation, step, kind=None)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="farm.operations.kinds"):
        context.log(f"token {MANAGER_TOKEN} used")
    assert "token [swarm secret] used" in caplog.text
    assert "SWMTKN" not in caplog.text
    step.refresh_from_db()
    assert "SWMTKN" not in step.log and SWARM_SECRET_MASK in step.log
