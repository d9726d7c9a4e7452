"""Loaded into a qcluster by FARM_OPERATION_MODULES in one test: the swarm step pauses
after each service it creates, so the test can SIGKILL the worker in the middle of it.
The real code runs; it is only slowed down."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sites import swarm_site

_real_apply_service = swarm_site.apply_service


def _slow_apply_service(cli: Any, sdef: Any) -> Any:
    outcome = _real_apply_service(cli, sdef)
    marker = os.environ.get("FARM_TEST_SLOW_MARKER")
    if marker:
        with Path(marker).open("a") as fh:
            fh.write(f"{sdef.name} {outcome}\n")
    time.sleep(3)
    return outcome


swarm_site.apply_service = _slow_apply_service
