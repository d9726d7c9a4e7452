"""Run real panel processes (qcluster, runserver) against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """The URL of the database this test run uses (pytest-django's test_* database)."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    scheme = "mysql" if s["ENGINE"].endswith("mysql") else "postgres"
    auth = quote(s["USER"] or "", safe="")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"], safe="")
    port = f":{s['PORT']}" if s["PORT"] else ""
    return f"{scheme}://{auth}@{s['HOST'] or '127.0.0.1'}{port}/{s['NAME']}"


def panel_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=test_database_url(),
        FARM_OPERATION_MODULES="tests.support.kinds",
        PYTHONPATH=str(ROOT),
        FARM_ENV="test",
    )
    env.update(extra)
    return env


def start_manage(args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start ``manage.py <args>`` in its own process group (so it can be killed whole)."""
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=panel_env(**env),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    proc.wait(timeout=30)


def wait_for(
    predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
