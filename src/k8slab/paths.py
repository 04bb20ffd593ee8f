"""Where the project's own files are: the repository root holds lab.yaml, the Vagrantfile, ansible/ and build/."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
