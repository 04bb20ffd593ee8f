"""Walkthroughs: guided runs of a tutorial's examples on the lab that is up, each a list of steps as data
(model.py), run by runner.py. WALKTHROUGHS names them for `k8slab walkthrough [NAME]` and `--list`; a
new one (Calico, pods) is a module with a Walkthrough value, added here."""

from __future__ import annotations

from k8slab.errors import LabStateError
from k8slab.teach.walkthroughs.model import Walkthrough
from k8slab.teach.walkthroughs.pods import PODS
from k8slab.teach.walkthroughs.tutorial import TUTORIAL

WALKTHROUGHS: dict[str, Walkthrough] = {w.name: w for w in (TUTORIAL, PODS)}
DEFAULT = TUTORIAL.name


def walkthrough(name: str) -> Walkthrough:
    try:
        return WALKTHROUGHS[name]
    except KeyError:
        raise LabStateError(f"there is no walkthrough {name!r}; there are: {', '.join(WALKTHROUGHS)} "
                            "(`k8slab walkthrough --list` says what each shows)") from None
