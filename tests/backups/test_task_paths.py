"""The queue finds every scheduled task by its dotted path, and the old paths of the
tasks that moved to sites (issue 10) hand the work on by name."""

from __future__ import annotations

import pytest
from django.utils.module_loading import import_string

from backups import tasks
from farm.schedules import PERIODIC_TASKS


@pytest.mark.parametrize("task", PERIODIC_TASKS, ids=lambda t: t.func)
def test_every_scheduled_task_is_found_by_its_dotted_path(task):
    assert callable(import_string(task.func))


MOVED = ["backup_tick", "start_claimed_backups", "check_rpo", "run_drills"]


@pytest.mark.parametrize("name", MOVED)
def test_a_task_queued_under_its_old_backups_path_is_handed_on_to_sites(name, monkeypatch):
    queued: list[tuple] = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **kw: queued.append((a, kw)))

    getattr(tasks, name)()

    assert queued == [((f"sites.tasks.{name}",), {"group": "backups"})]
    assert callable(import_string(f"sites.tasks.{name}"))
