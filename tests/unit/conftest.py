"""Fixtures several unit test files share."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from k8slab.labs.base import Pod

ROOT = Path(__file__).resolve().parents[2]


def spec_copy(path: Path, prefix: str = "u") -> Path:
    """The project's lab.yaml at path under a random lab name (nothing of another run's lab is touched)."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    path.write_text((ROOT / "lab.yaml").read_text().replace("name: tutorial", f"name: {name}", 1))
    return path


@pytest.fixture
def spec_file(tmp_path) -> Path:
    """A spec file of its own (a random lab name) for tests that run the CLI."""
    return spec_copy(tmp_path / "my-lab.yaml")


@pytest.fixture
def pods(spec):
    """The walkthrough's three pods as the tutorial places them: two on the first worker, one on the second
    (each test module's own `spec` fixture decides the lab)."""
    n1, n2 = spec.workers[0], spec.workers[1]
    return [Pod("w-httpd", n1.name, n1.pod_subnet.network_address + 3),
            Pod("w-busybox", n1.name, n1.pod_subnet.network_address + 4),
            Pod("w-busybox-2", n2.name, n2.pod_subnet.network_address + 3)]
