"""House style (CONVENTIONS 10, issue 10): no module of the apps passes 400 lines; a
module that grows past it is split along the seam it already has."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("farm", "sites", "nodes", "backups", "monitoring")
LIMIT = 400


def test_no_module_of_the_apps_is_over_400_lines():
    too_long = {
        str(path.relative_to(ROOT)): lines
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts and (lines := len(path.read_text().splitlines())) > LIMIT
    }
    assert not too_long, f"split these along their seams: {too_long}"
