"""Queue entry points for the engine: ids in, nothing clever."""

from __future__ import annotations

from farm import runner


def run_operation(operation_id: int) -> str:
    return runner.run_operation(operation_id)


def requeue_stale_operations() -> int:
    return len(runner.requeue_stale_operations())
