"""Walkthroughs: guided runs of a tutorial's examples on the lab that is up, each a list of steps as data
(model.py), run by runner.py. WALKTHROUGHS names them for `k8slab walkthrough [NAME]` and `--list`; a
new one is a module with a Walkthrough value, added here. Without a NAME the lab's CNI plugin picks the
one written for it (flannel: the tutorial, calico: the Calico article); one written for another plugin is
refused before any pod starts, since its texts and checks (cni0, or cali veths) would not hold."""

from __future__ import annotations

from collections.abc import Callable

from k8slab.errors import LabStateError, UsageError
from k8slab.spec.model import LabSpec
from k8slab.teach.walkthroughs.calico import CALICO
from k8slab.teach.walkthroughs.model import Walkthrough
from k8slab.teach.walkthroughs.pods import PODS
from k8slab.teach.walkthroughs.tutorial import TUTORIAL

WALKTHROUGHS: dict[str, Walkthrough] = {w.name: w for w in (TUTORIAL, CALICO, PODS)}
DEFAULT = TUTORIAL.name


def walkthrough(name: str) -> Walkthrough:
    try:
        return WALKTHROUGHS[name]
    except KeyError:
        raise UsageError(f"there is no walkthrough {name!r}; there are: {', '.join(WALKTHROUGHS)} "
                         "(`k8slab walkthrough --list` says what each shows)") from None


def fits_text(walk: Walkthrough) -> str:
    """Which labs a walkthrough follows, for --list and the refusal."""
    return f"{' or '.join(walk.plugins)} labs" if walk.plugins else "any lab"


def for_lab(spec: LabSpec) -> Walkthrough:
    """The walkthrough written for the lab's CNI plugin (the first that names it)."""
    return next((w for w in WALKTHROUGHS.values() if spec.cni_plugin in w.plugins), WALKTHROUGHS[DEFAULT])


def choose(spec: LabSpec, name: str | None, command: Callable[[str], str]) -> tuple[Walkthrough, str | None]:
    """(the walkthrough to run, a line saying why when the lab chose it). command makes a k8slab command
    line for this lab (Lab.command). Refuses one that follows another CNI plugin, naming the one to run."""
    if name is None:
        walk = for_lab(spec)
        return walk, (f"lab {spec.name!r} runs {spec.dataplane}: the {walk.name} walkthrough follows it "
                      f"(`{command('walkthrough --list')}` names the others)")
    walk = walkthrough(name)
    if not walk.fits(spec):
        match = for_lab(spec)
        instead = (f"`{command(f'walkthrough {match.name}')}` follows this lab" if match.fits(spec) else
                   f"no walkthrough here follows {spec.cni_plugin} yet")
        raise LabStateError(f"the {walk.name} walkthrough follows {fits_text(walk)} and lab {spec.name!r} runs "
                            f"{spec.dataplane}: its steps would not hold here; {instead}, or set cni.plugin in "
                            f"{spec.source} and recreate the lab")
    return walk, None
