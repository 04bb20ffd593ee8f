"""Spec files for unit tests that run the CLI, importable by name (test modules must not import from
conftest: with the acceptance suite's conftest collected in the same run, `conftest` may name that one)."""

from __future__ import annotations

import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spec_copy(path: Path, prefix: str = "u") -> Path:
    """The project's lab.yaml at path under a random lab name (nothing of another run's lab is touched)."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    path.write_text((ROOT / "lab.yaml").read_text().replace("name: tutorial", f"name: {name}", 1))
    return path
