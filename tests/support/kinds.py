"""Operation kinds that exist only for tests of the engine.

Each step writes what it does to a journal file (one line per event), so a
test can see exactly which steps ran and how often, even across a worker
process that was killed. ``test.gated`` steps wait for a gate file to appear,
so a test decides when each step may finish.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from farm.errors import FarmError
from farm.operations import OperationKind, Step, StepContext, register_kind


def journal(ctx: StepContext, event: str) -> None:
    with Path(ctx.params["journal"]).open("a") as fh:
        fh.write(f"{event}\n")


def read_journal(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


class RecordedStep(Step):
    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]
        self.label = f"Step {name}"  # type: ignore[misc]

    def run(self, ctx: StepContext) -> None:
        journal(ctx, f"run:{self.name}")
        fail_flag = ctx.params.get("fail_while_exists", {}).get(self.name)
        if fail_flag and Path(fail_flag).exists():
            raise FarmError(f"{self.name} failed on purpose", retryable=True)
        ctx.state[self.name] = "done"
        ctx.log(f"{self.name} did its work")

    def undo(self, ctx: StepContext) -> None:
        journal(ctx, f"undo:{self.name}")


class GatedStep(RecordedStep):
    def run(self, ctx: StepContext) -> None:
        journal(ctx, f"start:{self.name}")
        ctx.log(f"waiting for the gate of {self.name}")
        gate = Path(ctx.params["gates"]) / self.name
        while not gate.exists():
            ctx.check_cancelled()
            time.sleep(0.1)
        journal(ctx, f"done:{self.name}")
        ctx.log(f"{self.name} passed its gate")


@register_kind
class Recorded(OperationKind):
    name = "test.recorded"
    label = "Recorded test operation"
    target_type = "test"
    steps = (
        RecordedStep("alpha"),
        RecordedStep("beta"),
        RecordedStep("gamma"),
        RecordedStep("delta"),
    )


@register_kind
class Gated(OperationKind):
    name = "test.gated"
    label = "Gated test operation"
    target_type = "test"
    steps = (GatedStep("one"), GatedStep("two"), GatedStep("three"), GatedStep("four"))


class ChildStep(RecordedStep):
    """Starts a long child process the way restic is started (farm.processes), journals
    its pid, and waits for its gate."""

    def run(self, ctx: StepContext) -> None:
        from farm import processes

        child = processes.popen([sys.executable, "-c", "import time; time.sleep(300)"])
        journal(ctx, f"child:{child.pid}")
        gate = Path(ctx.params["gates"]) / self.name
        try:
            while not gate.exists():
                ctx.check_cancelled()
                time.sleep(0.1)
        finally:
            child.kill()
            child.wait()
        journal(ctx, f"done:{self.name}")


@register_kind
class WithChild(OperationKind):
    name = "test.child"
    label = "Test operation whose step runs a child process"
    target_type = "test"
    steps = (ChildStep("spawn"),)
