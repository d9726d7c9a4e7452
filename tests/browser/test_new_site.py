"""An operator clicks New site and ends on the WordPress install screen."""

from __future__ import annotations

import pytest

from farm.models import Tenant, User
from nodes.inventory import sync_nodes
from sites.models import Site
from tests.browser.conftest import log_in, screenshot
from tests.conftest import PASSWORD
from tests.support.farm import ensure_farm
from tests.support.processes import kill_group, start_manage
from tests.support.sites import remove_test_site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.swarm,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

DOMAIN = "shop-e2e.localhost"


def test_new_site_from_the_browser_to_the_install_screen(page, live_server, tmp_path):
    ensure_farm()
    sync_nodes()
    User.objects.create_user("ops@farm.test", PASSWORD, is_staff=True, is_superuser=True)
    Tenant.objects.create(name="Shop Co", slug="shop-co", site_quota=5)
    worker = start_manage(["qcluster"], tmp_path / "qcluster.log", FARM_Q_WORKERS="1")
    site_id = None
    try:
        log_in(page, live_server.url, "ops@farm.test", PASSWORD)
        page.click("nav >> text=Sites")
        page.click("text=New site")
        page.fill("input[name=domain]", DOMAIN)
        page.select_option("select[name=tenant]", label="Shop Co")
        screenshot(page, "new-site-form")
        page.click("button:has-text('Create site')")
        page.wait_for_url(f"{live_server.url}/sites/*/")
        site_id = Site.objects.get(domain=DOMAIN).pk
        page.evaluate("window.__notReloaded = true")

        # The steps tick over on the page while the worker runs them.
        seen: list[str] = []
        for step in (
            "allocate",
            "database",
            "files",
            "swarm",
            "converge",
            "dns",
            "reachable",
            "monitoring",
            "backups",
        ):
            page.wait_for_selector(
                f'[data-step="{step}"][data-status="succeeded"], '
                f'[data-step="{step}"][data-status="skipped"]',
                timeout=180_000,
            )
            seen.append(step)
            if step == "converge":
                screenshot(page, "new-site-steps")
        assert page.evaluate("window.__notReloaded") is True, "the page never reloaded"
        page.wait_for_selector('[data-testid="site-status"] >> text=Active', timeout=30_000)
        assert page.evaluate("window.__notReloaded") is True
        screenshot(page, "new-site-active")

        link = page.locator('[data-testid="site-url"]')
        assert link.get_attribute("href") == f"http://{DOMAIN}/"
        with page.context.expect_page() as new_tab:
            link.click()
        wordpress = new_tab.value
        wordpress.wait_for_load_state()
        assert "/wp-admin/install.php" in wordpress.url
        assert wordpress.locator("h1").first.inner_text() == "Welcome"
        screenshot(wordpress, "new-site-wordpress-install")
        assert seen[-1] == "backups"
    finally:
        kill_group(worker)
        if site_id is not None:
            remove_test_site(site_id)
