"""Several pods started (all or nothing) or removed at once on a backend that does it one by one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from k8slab.errors import CommandFailedError
from k8slab.interrupts import no_interrupts
from k8slab.labs.values import Container, Pod

if TYPE_CHECKING:
    from k8slab.labs.base import Lab


def start_all(lab: Lab, wanted: Sequence[tuple[str, str]], containers: Mapping[str, Sequence[Container]]) -> list[Pod]:
    """Start every (name, node) pod concurrently (kubectl run waits seconds per pod); if one fails, remove
    the ones that started and raise its error."""
    if not wanted:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(wanted))) as pool:
        futures = [pool.submit(lab.pod_start, name, node, tuple(containers.get(name, ()))) for name, node in wanted]
        outcome = [f.exception() or f.result() for f in futures]
    started = [p for p in outcome if isinstance(p, Pod)]
    failures = [e for e in outcome if not isinstance(e, Pod)]
    if not failures:
        return started
    leftovers = []
    with no_interrupts():
        for pod in started:
            try:
                lab.pod_delete(pod.name)
            except Exception as exc:  # noqa: BLE001 - keep removing the others; report them together
                leftovers.append(f"{pod.name}: {exc}")
    if leftovers:
        raise CommandFailedError(f"{failures[0]}; and the pods started with it could not all be removed: "
                                 + "; ".join(leftovers)) from failures[0]
    raise failures[0]


def delete_all(lab: Lab, names: Sequence[str]) -> None:
    """Remove every named pod concurrently; the ones that could not be removed are named together."""
    if not names:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
        failures = [(name, exc) for name, exc in zip(names, pool.map(_delete_one(lab), names)) if exc is not None]
    if failures:
        raise CommandFailedError("could not remove " + "; ".join(f"{name}: {exc}" for name, exc in failures))


def _delete_one(lab: Lab):
    def delete(name: str) -> Exception | None:
        try:
            lab.pod_delete(name)
        except Exception as exc:  # noqa: BLE001 - the others are still removed; reported together
            return exc
        return None
    return delete
