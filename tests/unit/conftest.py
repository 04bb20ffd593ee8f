"""Fixtures several unit test files share."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_files import spec_copy

from k8slab.labs.base import Pod


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
