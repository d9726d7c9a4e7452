"""A worker's claim on an operation: taken with one conditional UPDATE (``claim``),
kept fresh from a thread while a step runs (``Heartbeat``), and lost when another
worker took it over or no beat could be written within the lease."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from types import TracebackType

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from farm import processes
from farm.models import Operation, OperationStatus

logger = logging.getLogger(__name__)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(operation_id: int, worker: str) -> bool:
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.FARM_OPERATION_LEASE_SECONDS)
    claimable = Q(status=OperationStatus.QUEUED) | Q(
        status=OperationStatus.RUNNING, heartbeat_at__lt=stale_before
    )
    return bool(
        Operation.objects.filter(claimable, pk=operation_id).update(
            status=OperationStatus.RUNNING,
            worker=worker,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
        )
    )


class Heartbeat:
    """Keeps ``heartbeat_at`` fresh from a thread while a step runs.

    A failed write (one "database is locked", a dropped connection) is retried
    on a fresh connection with a growing pause. The claim counts as lost (and
    the step's children are killed) when another worker owns the operation, or
    when no beat has succeeded for so long that the lease would run out before
    the next try: from then on another worker may claim the operation.
    """

    def __init__(self, operation_id: int, worker: str) -> None:
        self.operation_id = operation_id
        self.worker = worker
        self.lost = threading.Event()
        self.lease = float(settings.FARM_OPERATION_LEASE_SECONDS)
        self.interval = float(settings.FARM_OPERATION_HEARTBEAT_SECONDS)
        self._last_beat = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{operation_id}")
        self._thread.daemon = True

    def _write_beat(self) -> bool:
        """The heartbeat's UPDATE: True while this worker still owns the operation."""
        return bool(
            Operation.objects.filter(
                pk=self.operation_id, worker=self.worker, status=OperationStatus.RUNNING
            ).update(heartbeat_at=timezone.now())
        )

    def beat_seen(self) -> None:
        """Another guarded write of this worker refreshed the heartbeat."""
        self._last_beat = time.monotonic()

    def is_lost(self) -> bool:
        """Lost for good, or no beat within the lease (the thread may be stuck)."""
        if self.lost.is_set():
            return True
        if time.monotonic() - self._last_beat > self.lease:
            self.give_up("no heartbeat could be written within the lease")
        return self.lost.is_set()

    def give_up(self, why: str) -> None:
        if self.lost.is_set():
            return
        logger.error(
            "operation %s: claim of %s lost (%s); stopping its step",
            self.operation_id,
            self.worker,
            why,
        )
        self.lost.set()
        processes.kill_owned(self.worker)

    def _beat(self) -> None:
        wait = self.interval
        failures = 0
        try:
            while not self._stop.wait(wait):
                try:
                    owned = self._write_beat()
                except Exception as exc:
                    failures += 1
                    # A broken connection is not reused: the next try opens a new one.
                    connection.close()
                    wait = min(self.interval, 0.25 * 2 ** (failures - 1))
                    silent = time.monotonic() - self._last_beat
                    logger.warning(
                        "heartbeat for operation %s failed (%s in a row, %.1f s without "
                        "a beat): %s",
                        self.operation_id,
                        failures,
                        silent,
                        exc,
                    )
                    # Stop while the lease still holds: past it, another worker may
                    # claim the operation while this one is still inside the step.
                    if silent + wait >= self.lease - self.interval:
                        self.give_up(f"heartbeat failed {failures} times: {exc}")
                        return
                    continue
                if not owned:
                    self.give_up("another worker owns the operation")
                    return
                failures = 0
                wait = self.interval
                self.beat_seen()
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
