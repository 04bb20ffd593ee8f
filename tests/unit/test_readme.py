"""The README's assignment file is the one the plugin's test runs (docs/examples/my_checks.py), word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readmes_assignment_is_the_tested_file():
    readme = (ROOT / "README.md").read_text()
    shown = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "def test_" in b)
    source = (ROOT / "docs" / "examples" / "my_checks.py").read_text()
    body = source[source.index('"""', 3) + 3:].lstrip("\n")  # without its docstring
    assert shown == body
