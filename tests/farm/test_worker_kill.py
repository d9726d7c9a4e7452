"""A real qcluster, SIGKILLed in the middle of a step: the operation resumes and finishes,
and the step's child processes die with the worker."""

from __future__ import annotations

import os
import signal

import pytest

from farm.models import Operation, OperationStatus
from farm.operations import start_operation
from tests.support.kinds import read_journal
from tests.support.processes import kill_group, start_manage, wait_for


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A short lease and a short queue retry make the test take seconds, not minutes;
# the mechanism is the same as with the production defaults.
QCLUSTER_ENV = {
    "FARM_OPERATION_LEASE_SECONDS": "4",
    "FARM_RESTIC_TIMEOUT": "10",  # FARM_Q_TIMEOUT must be larger
    "FARM_Q_TIMEOUT": "12",
    "FARM_Q_RETRY": "14",
    "FARM_Q_WORKERS": "1",
}


def test_killed_worker_resumes_at_the_unfinished_step(tmp_path, django_capture_on_commit_callbacks):
    gates = tmp_path / "gates"
    gates.mkdir()
    journal = tmp_path / "journal"
    log = tmp_path / "qcluster.log"
    with django_capture_on_commit_callbacks(execute=True):
        operation = start_operation(
            "test.gated",
            target_type="test",
            target_id="kill",
            params={"journal": str(journal), "gates": str(gates)},
        )
    (gates / "one").touch()

    first = start_manage(["qcluster"], log, **QCLUSTER_ENV)
    try:
        wait_for(
            lambda: "start:two" in read_journal(journal),
            timeout=60,
            what="step two to start in the first worker",
        )
    finally:
        kill_group(first)  # SIGKILL to the whole cluster: no cleanup, no ack

    operation.refresh_from_db()
    assert operation.status == OperationStatus.RUNNING, "a killed worker finishes nothing"
    assert dict(operation.steps.values_list("name", "status")) == {
        "one": "succeeded",
        "two": "running",
        "three": "pending",
        "four": "pending",
    }

    for name in ("two", "three", "four"):
        (gates / name).touch()
    second = start_manage(["qcluster"], log, **QCLUSTER_ENV)
    try:
        wait_for(
            lambda: Operation.objects.get(pk=operation.pk).status == OperationStatus.SUCCEEDED,
            timeout=90,
            what="the second worker to finish the operation",
            interval=0.5,
        )
    finally:
        kill_group(second)

    events = read_journal(journal)
    # Step one finished before the kill and is not run again; step two was
    # interrupted and runs again; three and four run once.
    assert events == [
        "start:one",
        "done:one",
        "start:two",
        "start:two",
        "done:two",
        "start:three",
        "done:three",
        "start:four",
        "done:four",
    ], (events, log.read_text()[-3000:])
    operation.refresh_from_db()
    assert operation.attempts == 2
    assert operation.lock_key is None
    steps = {s.name: s for s in operation.steps.all()}
    assert [steps[n].attempts for n in ("one", "two", "three", "four")] == [1, 2, 1, 1]


def test_item_6_a_killed_workers_child_processes_die_with_it(
    tmp_path, django_capture_on_commit_callbacks
):
    """As restic restore and mariadb did not: they went on while the step ran again."""
    gates = tmp_path / "gates"
    gates.mkdir()
    journal = tmp_path / "journal"
    log = tmp_path / "qcluster.log"
    with django_capture_on_commit_callbacks(execute=True):
        start_operation(
            "test.child",
            target_type="test",
            target_id="child",
            params={"journal": str(journal), "gates": str(gates)},
        )
    cluster = start_manage(["qcluster"], log, **QCLUSTER_ENV)
    try:
        wait_for(
            lambda: any(e.startswith("child:") for e in read_journal(journal)),
            timeout=60,
            what="the step to start its child",
        )
    finally:
        kill_group(cluster)  # the cluster's process group; the child has its own
    pid = int(next(e for e in read_journal(journal) if e.startswith("child:")).split(":")[1])
    try:
        wait_for(lambda: not pid_alive(pid), timeout=10, what=f"child {pid} to die")
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
