"""The README documents every setting the code reads from the environment."""

from __future__ import annotations

import re

from tests.support.processes import ROOT

READERS = re.compile(r'env_(?:str|int|bool|float|list|choice|json_dict)\(\s*"([A-Z][A-Z0-9_]+)"')


def test_every_environment_variable_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    names: set[str] = set()
    for path in [*ROOT.glob("*/*settings*.py"), ROOT / "farm" / "settings.py"]:
        names.update(READERS.findall(path.read_text()))
    assert len(names) > 40
    missing = sorted(n for n in names if n not in readme and n.replace("_FILE", "") not in readme)
    assert missing == []


def test_the_readme_starts_with_the_two_commands():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    block = lines[lines.index("```sh") + 1 : lines.index("```")]
    assert [line.split()[0] for line in block] == ["scripts/run", "scripts/test"]
