"""The README documents every setting the code reads from the environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.support.processes import ROOT

READERS = re.compile(r'env_(?:str|int|bool|float|list|choice|json_dict)\(\s*"([A-Z][A-Z0-9_]+)"')


def test_every_environment_variable_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    names: set[str] = set()
    for app in ("farm", "nodes", "monitoring", "backups", "sites"):
        for path in (ROOT / app).rglob("*settings*.py"):  # settings.py, restic/settings.py …
            names.update(READERS.findall(path.read_text()))
    assert len(names) > 40
    missing = sorted(n for n in names if n not in readme and n.replace("_FILE", "") not in readme)
    assert missing == []


def test_the_readme_starts_with_the_two_commands():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    block = lines[lines.index("```sh") + 1 : lines.index("```")]
    assert [line.split()[0] for line in block] == ["scripts/run", "scripts/test"]


def test_the_readmes_benchmarks_import_and_show_their_usage():
    """The benchmarks are not run by the tests (they take minutes), but each must
    at least start: this is the README's command with --help."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    readme = (ROOT / "README.md").read_text()
    named = re.findall(r"-m benchmarks\.(\w+)", readme)
    assert set(named) >= {"provision", "backup", "density", "pages"}
    for name in sorted(set(named)):
        done = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}", "--help"],
            cwd=ROOT,
            env=env,  # scripts/test's own FARM_VAR_DIR: nothing lands in var/bench
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "usage:" in done.stdout
