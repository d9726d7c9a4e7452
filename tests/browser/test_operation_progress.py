"""The operation page updates itself while steps run, and stops polling at the end."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from farm.models import User
from farm.operations import start_operation
from farm.runner import run_operation
from tests.browser.conftest import log_in, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_step_list_updates_live_and_polling_stops(page, live_server, tmp_path):
    User.objects.create_user("ops@farm.test", PASSWORD, is_staff=True, is_superuser=True)
    gates = tmp_path / "gates"
    gates.mkdir()
    operation = start_operation(
        "test.gated",
        target_type="test",
        target_id="browser",
        target_repr="browser test",
        params={"journal": str(tmp_path / "journal"), "gates": str(gates)},
    )

    def work() -> None:
        try:
            run_operation(operation.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()

    log_in(page, live_server.url, "ops@farm.test", PASSWORD)
    url = f"{live_server.url}/operations/{operation.pk}/"
    page.goto(url)
    page.wait_for_selector('[data-step="one"][data-status="running"]')
    page.evaluate("window.__notReloaded = true")

    (gates / "one").touch()
    page.wait_for_selector('[data-step="one"][data-status="succeeded"]')
    page.wait_for_selector('[data-step="two"][data-status="running"]')
    assert page.evaluate("window.__notReloaded") is True, "the page was reloaded"
    screenshot(page, "operation-progress-running")

    for name in ("two", "three", "four"):
        (gates / name).touch()
    page.wait_for_selector('section.operation[data-status="succeeded"]')
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator('li.step[data-status="succeeded"]').count() == 4
    worker.join(timeout=20)

    # After the 286 answer, htmx stops asking.
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if request.url == url else None)
    time.sleep(3.5)
    assert polls == []
    assert page.locator("section.operation[hx-trigger]").count() == 0
    screenshot(page, "operation-progress-finished")
