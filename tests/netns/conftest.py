"""Root integration tests of the emulated lab itself (the kernel, the real CNI plugins).

They need root and the lab's tools; without them they skip with the reason (run `sudo make test`),
and in CI (CI=true) the root conftest turns that skip into a failure: CI runs as root and must prove
this every time. Every lab gets a unique h3-<random> name and is destroyed
after its test, also when the test fails.
"""

from __future__ import annotations

import pytest

from k8slab.labs.netns import NetnsLab
from k8slab.spec.model import LabSpec

from .labtools import leftovers


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/netns/" in str(item.fspath):
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _netns_usable():
    problem = NetnsLab.unavailable_reason()
    if problem:
        pytest.skip(f"the emulated lab's tests need root and its tools here: {problem}")


@pytest.fixture
def labs():
    """Make NetnsLabs; every one is destroyed at the end whatever happened."""
    made: list[NetnsLab] = []

    def make(spec: LabSpec) -> NetnsLab:
        lab = NetnsLab(spec)
        made.append(lab)
        return lab

    yield make
    for lab in made:
        lab.destroy()
    left = {lab.spec.name: leftovers(lab.spec.name) for lab in made}
    assert not any(left.values()), f"destroy left these behind: {left}"


@pytest.fixture
def cli_labs():
    """Specs of labs driven through the CLI; destroyed through the library at the end whatever happened."""
    used: list[LabSpec] = []
    yield used.append
    for spec in used:
        NetnsLab(spec).destroy()
