"""Issue 9, item 5: a worker whose heartbeat cannot be written stops; its late writes never land.

Failures are injected into the heartbeat's own UPDATE (only in the heartbeat
thread), as one "database is locked" or a dropped connection would raise them.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.db.models.query import QuerySet
from django.utils import timezone

from farm.models import Operation, OperationStatus, StepStatus
from farm.operations import (
    OperationKind,
    Step,
    StepContext,
    append_step_log,
    get_kind,
    register_kind,
    start_operation,
)
from farm.runner import LostClaim, Runner, claim, run_operation
from tests.support.kinds import journal, read_journal

pytestmark = pytest.mark.django_db(transaction=True)


class ChildStep(Step):
    """Starts a long child process through farm.processes and waits for it."""

    name = "child"
    label = "Run a long child process"

    def run(self, ctx: StepContext) -> None:
        from farm import processes

        child = processes.popen([sys.executable, "-c", "import time; time.sleep(120)"])
        journal(ctx, f"child:{child.pid}")
        child.wait()  # a restic restore waits like this, without polling anything
        journal(ctx, f"child exited:{child.returncode}")
        ctx.log("the child is done")


@register_kind
class WithChild(OperationKind):
    name = "test.heartbeat_child"
    label = "Heartbeat test with a child process"
    target_type = "test"
    steps = (ChildStep(),)


@pytest.fixture
def short_lease(settings):
    settings.FARM_OPERATION_LEASE_SECONDS = 3
    settings.FARM_OPERATION_HEARTBEAT_SECONDS = 1


@pytest.fixture
def failing_heartbeat(monkeypatch):
    """The heartbeat thread's UPDATEs raise; every other thread's work normally.

    ``fail`` says how many to fail (None: all of them)."""
    state: dict[str, int | None] = {"fail": None, "failed": 0}
    real_update = QuerySet.update

    def update(self, **kwargs):
        in_heartbeat = threading.current_thread().name.startswith("heartbeat-")
        failed = state["failed"] or 0
        if in_heartbeat and (state["fail"] is None or failed < state["fail"]):
            state["failed"] = failed + 1
            raise OperationalError("database is locked")
        return real_update(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", update)
    return state


def run_in_thread(operation_id: int) -> tuple[threading.Thread, list[str]]:
    result: list[str] = []

    def work() -> None:
        try:
            result.append(run_operation(operation_id))
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, result


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_item_5_a_heartbeat_that_keeps_failing_loses_the_claim_and_the_step_stops(
    short_lease, failing_heartbeat, tmp_path
):
    gates = tmp_path / "gates"
    gates.mkdir()
    operation = start_operation(
        "test.gated",
        target_type="test",
        target_id="hb",
        params={"journal": str(tmp_path / "journal"), "gates": str(gates)},
    )
    thread, result = run_in_thread(operation.pk)
    thread.join(timeout=15)
    try:
        assert not thread.is_alive(), "the step never noticed that its claim was lost"
    finally:
        (gates / "one").touch()  # lets a worker that did not stop finish
        thread.join(timeout=15)
    assert result == ["lost claim"]
    assert failing_heartbeat["failed"] >= 2, "the heartbeat retried before giving up"
    assert read_journal(tmp_path / "journal") == ["start:one"]
    operation.refresh_from_db()
    # Left as it was, to be taken over once the lease has passed.
    assert operation.status == OperationStatus.RUNNING
    assert operation.steps.get(name="one").status == StepStatus.RUNNING


def test_item_5_a_lost_claim_kills_the_steps_child_processes(
    short_lease, failing_heartbeat, tmp_path
):
    operation = start_operation(
        "test.heartbeat_child",
        target_type="test",
        target_id="child",
        params={"journal": str(tmp_path / "journal")},
    )
    thread, result = run_in_thread(operation.pk)
    deadline = time.monotonic() + 10
    while not read_journal(tmp_path / "journal") and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(read_journal(tmp_path / "journal")[0].split(":")[1])
    thread.join(timeout=15)
    try:
        assert not thread.is_alive()
        assert result == ["lost claim"]
        assert not pid_alive(pid), "the child of a lost step is killed"
        events = read_journal(tmp_path / "journal")
        assert events[1] == "child exited:-9"
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)
    step = Operation.objects.get(pk=operation.pk).steps.get()
    assert "the child is done" not in step.log, "the lost worker wrote nothing more"


def test_item_5_one_failed_beat_is_retried_and_the_claim_is_kept(
    short_lease, failing_heartbeat, tmp_path
):
    failing_heartbeat["fail"] = 1
    gates = tmp_path / "gates"
    gates.mkdir()
    operation = start_operation(
        "test.gated",
        target_type="test",
        target_id="hb1",
        params={"journal": str(tmp_path / "journal"), "gates": str(gates)},
    )
    thread, result = run_in_thread(operation.pk)
    time.sleep(4)  # longer than the lease: only retried beats keep the claim
    beat = Operation.objects.get(pk=operation.pk).heartbeat_at
    assert beat is not None and timezone.now() - beat < timedelta(seconds=2), "still beating"
    for name in ("one", "two", "three", "four"):
        (gates / name).touch()
    thread.join(timeout=20)
    assert result == ["succeeded"]
    assert failing_heartbeat["failed"] == 1


def test_item_5_late_writes_of_a_worker_that_lost_its_claim_do_not_overwrite_the_new_owner(
    tmp_path, settings
):
    settings.FARM_OPERATION_LEASE_SECONDS = 30
    operation = start_operation(
        "test.recorded",
        target_type="test",
        target_id="late",
        params={"journal": str(tmp_path / "journal")},
    )
    kind = get_kind("test.recorded")
    assert claim(operation.pk, "worker-a")
    first = Runner(Operation.objects.get(pk=operation.pk), kind, "worker-a")
    step = first.operation.steps.get(name="alpha")
    first._set_step(step, status=StepStatus.RUNNING, attempts=1)
    ctx_a = StepContext(first.operation, step, kind, worker="worker-a")
    ctx_a.log("worker-a is inside the step")

    # worker-a stalls past its lease; worker-b claims the operation and does the step.
    Operation.objects.filter(pk=operation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    assert claim(operation.pk, "worker-b")
    second = Runner(Operation.objects.get(pk=operation.pk), kind, "worker-b")
    step_b = second.operation.steps.get(name="alpha")
    StepContext(second.operation, step_b, kind, worker="worker-b").log("worker-b did it")
    second._set_step(step_b, status=StepStatus.SUCCEEDED, error="")

    # worker-a wakes up and reports its step as failed: nothing of that lands.
    with pytest.raises(LostClaim):
        first._set_step(step, status=StepStatus.FAILED, error="worker-a: late failure")
    with pytest.raises(LostClaim):
        ctx_a.log("worker-a: late line")
    with pytest.raises(LostClaim):
        ctx_a.save_state()
    assert not append_step_log(step.pk, "late", owner=(operation.pk, "worker-a"))

    row = Operation.objects.get(pk=operation.pk).steps.get(name="alpha")
    assert row.status == StepStatus.SUCCEEDED and row.error == ""
    assert "worker-b did it" in row.log and "late" not in row.log
    assert Operation.objects.get(pk=operation.pk).worker == "worker-b"
