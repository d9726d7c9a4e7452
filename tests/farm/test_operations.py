"""The Operation engine, run in-process: ordering, failure, retry, roll back, cancel, leases."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from farm.errors import OperationConflict, OperationStateError
from farm.models import Operation, OperationStatus, StepStatus
from farm.operations import cancel_operation, retry_operation, roll_back_operation, start_operation
from farm.runner import claim, requeue_stale_operations, run_operation
from tests.support.kinds import read_journal

pytestmark = pytest.mark.django_db


def start_recorded(tmp_path: Path, target: str = "t1", **params) -> Operation:
    return start_operation(
        "test.recorded",
        target_type="test",
        target_id=target,
        target_repr=f"test target {target}",
        params={"journal": str(tmp_path / "journal"), **params},
    )


def step_statuses(operation: Operation) -> dict[str, str]:
    return dict(operation.steps.order_by("position").values_list("name", "status"))


def test_steps_run_in_declared_order_and_are_recorded(tmp_path):
    operation = start_recorded(tmp_path)
    assert run_operation(operation.pk) == "succeeded"

    operation.refresh_from_db()
    assert operation.status == OperationStatus.SUCCEEDED
    assert operation.lock_key is None
    assert operation.started_at and operation.finished_at
    assert read_journal(tmp_path / "journal") == ["run:alpha", "run:beta", "run:gamma", "run:delta"]
    assert set(step_statuses(operation).values()) == {StepStatus.SUCCEEDED}
    assert operation.state == {"alpha": "done", "beta": "done", "gamma": "done", "delta": "done"}
    beta = operation.steps.get(name="beta")
    assert "beta did its work" in beta.log
    assert beta.duration_ms is not None and beta.attempts == 1


def test_a_failed_step_fails_the_operation_and_retry_resumes_there(tmp_path):
    flag = tmp_path / "gamma-fails"
    flag.touch()
    operation = start_recorded(tmp_path, fail_while_exists={"gamma": str(flag)})
    assert run_operation(operation.pk) == "failed"

    operation.refresh_from_db()
    assert operation.status == OperationStatus.FAILED
    assert operation.error == "Step gamma: gamma failed on purpose"
    assert operation.retryable
    assert operation.lock_key is None, "a finished operation releases its target"
    assert step_statuses(operation) == {
        "alpha": "succeeded",
        "beta": "succeeded",
        "gamma": "failed",
        "delta": "pending",
    }

    flag.unlink()
    retry_operation(operation)
    operation.refresh_from_db()
    assert operation.status == OperationStatus.QUEUED and operation.lock_key == "test:t1"
    assert run_operation(operation.pk) == "succeeded"
    assert read_journal(tmp_path / "journal") == [
        "run:alpha",
        "run:beta",
        "run:gamma",
        "run:gamma",
        "run:delta",
    ]
    assert operation.steps.get(name="gamma").attempts == 2


def test_roll_back_undoes_completed_steps_in_reverse_order(tmp_path):
    flag = tmp_path / "delta-fails"
    flag.touch()
    operation = start_recorded(tmp_path, fail_while_exists={"delta": str(flag)})
    run_operation(operation.pk)

    roll_back_operation(operation)
    assert run_operation(operation.pk) == "rolled_back"

    operation.refresh_from_db()
    assert operation.status == OperationStatus.ROLLED_BACK
    assert operation.lock_key is None
    events = read_journal(tmp_path / "journal")
    # The failed step may have done part of its work, so it is undone first;
    # then the completed steps, last first.
    assert events[events.index("run:delta") + 1 :] == [
        "undo:delta",
        "undo:gamma",
        "undo:beta",
        "undo:alpha",
    ]
    assert set(step_statuses(operation).values()) == {StepStatus.UNDONE}


def test_only_finished_failures_can_be_retried_or_rolled_back(tmp_path):
    operation = start_recorded(tmp_path)
    with pytest.raises(OperationStateError):
        retry_operation(operation)
    with pytest.raises(OperationStateError):
        roll_back_operation(operation)
    run_operation(operation.pk)
    operation.refresh_from_db()
    with pytest.raises(OperationStateError):
        roll_back_operation(operation)


def test_a_second_operation_on_the_same_target_is_refused_with_a_clear_error(tmp_path):
    first = start_recorded(tmp_path)
    with pytest.raises(OperationConflict) as excinfo:
        start_recorded(tmp_path)
    assert f"test.recorded #{first.pk}" in excinfo.value.message
    assert "already has an unfinished operation" in excinfo.value.message
    # Another target is unaffected, and the first target is free once finished.
    start_recorded(tmp_path, target="t2")
    run_operation(first.pk)
    start_recorded(tmp_path)


def test_retry_is_refused_while_another_operation_holds_the_target(tmp_path):
    flag = tmp_path / "alpha-fails"
    flag.touch()
    failed = start_recorded(tmp_path, fail_while_exists={"alpha": str(flag)})
    run_operation(failed.pk)
    later = start_recorded(tmp_path)  # a new operation takes the target
    failed.refresh_from_db()
    # Refused for good, not only while the new one runs: the failed one is no
    # longer the latest on its target (item 4 below).
    with pytest.raises(OperationStateError, match=f"#{later.pk} was started"):
        retry_operation(failed)
    failed.refresh_from_db()
    assert failed.status == OperationStatus.FAILED, "a refused retry changes nothing"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_starts_for_one_target_give_one_operation(tmp_path):
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def start() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(start_recorded(tmp_path, target="race"))
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    created = [o for o in outcomes if isinstance(o, Operation)]
    refused = [o for o in outcomes if isinstance(o, OperationConflict)]
    assert len(created) == 1 and len(refused) == 1, outcomes
    assert Operation.objects.for_target("test", "race").count() == 1
    assert "unfinished operation" in refused[0].message or "same moment" in refused[0].message


def test_cancel_a_queued_operation_stops_it_at_once(tmp_path):
    operation = start_recorded(tmp_path)
    cancel_operation(operation)
    operation.refresh_from_db()
    assert operation.status == OperationStatus.CANCELLED and operation.lock_key is None
    assert run_operation(operation.pk) == "not claimed"
    assert read_journal(tmp_path / "journal") == []


@pytest.mark.django_db(transaction=True)
def test_cancel_a_running_operation_stops_at_the_next_step_and_can_resume(tmp_path):
    gates = tmp_path / "gates"
    gates.mkdir()
    operation = start_operation(
        "test.gated",
        target_type="test",
        target_id="g",
        params={"journal": str(tmp_path / "journal"), "gates": str(gates)},
    )
    (gates / "one").touch()

    def work() -> None:
        run_operation(operation.pk)
        connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = timezone.now() + timedelta(seconds=20)
    while "start:two" not in read_journal(tmp_path / "journal"):
        assert timezone.now() < deadline, "step two never started"
        threading.Event().wait(0.05)
    cancel_operation(operation)
    worker.join(timeout=20)

    operation.refresh_from_db()
    assert operation.status == OperationStatus.CANCELLED
    assert step_statuses(operation)["one"] == "succeeded"
    assert step_statuses(operation)["two"] == "pending"

    for name in ("two", "three", "four"):
        (gates / name).touch()
    retry_operation(operation)
    assert run_operation(operation.pk) == "succeeded"
    events = read_journal(tmp_path / "journal")
    assert events.count("done:one") == 1 and events.count("done:two") == 1


def test_a_running_operation_is_claimed_only_once_its_lease_has_expired(tmp_path, settings):
    settings.FARM_OPERATION_LEASE_SECONDS = 30
    operation = start_recorded(tmp_path)
    assert claim(operation.pk, "worker-a")
    assert not claim(operation.pk, "worker-b"), "a live claim is not taken over"

    Operation.objects.filter(pk=operation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    assert requeue_stale_operations() == [operation.pk]
    assert claim(operation.pk, "worker-b")
    operation.refresh_from_db()
    assert operation.worker == "worker-b" and operation.attempts == 2


def test_a_worker_that_lost_its_claim_stops_without_touching_the_operation(tmp_path):
    operation = start_recorded(tmp_path)
    assert claim(operation.pk, "worker-a")
    # worker-a is presumed dead and worker-b owns it now; a late delivery to
    # a third worker finds nothing to claim.
    assert run_operation(operation.pk) == "not claimed"
    operation.refresh_from_db()
    assert operation.worker == "worker-a"
    assert read_journal(tmp_path / "journal") == []


def test_starting_an_operation_enqueues_it_after_commit(
    tmp_path, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        operation = start_recorded(tmp_path)
    assert len(callbacks) == 1
    assert OrmQ.objects.count() == 1
    operation.refresh_from_db()
    assert operation.enqueued_at is not None
