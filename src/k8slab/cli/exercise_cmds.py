"""`k8slab exercise start|check|give-up`: a teacher breaks the lab with one fault of the catalogue (the
one the acceptance suite injects), a student finds and repairs it, `check` says whether it is solved."""

from __future__ import annotations

import argparse
import secrets

from k8slab.errors import LabStateError, UsageError
from k8slab.labs import notes
from k8slab.labs.base import Lab
from k8slab.labs.registry import running_lab
from k8slab.render import console
from k8slab.spec.load import load_spec
from k8slab.teach.exercise import NOTE, Exercise, choose, from_record
from k8slab.verify.checks import CheckResult
from k8slab.verify.faults import EASY, LEVELS, run_commands
from k8slab.verify.run import run_checks

EXAMPLES = """\
examples (a class):
  k8slab exercise start --seed 7          the teacher breaks the lab (the same seed, the same exercise)
  k8slab exercise check                   a student: solved, or not yet
  k8slab exercise check --hint            ... and one more hint each time
  k8slab exercise give-up                 the answer, and the lab repaired
"""


def register(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser("exercise", help="break the lab with one classic fault for a student to find and repair",
                        description="An exercise for a class: the lab is broken with one fault from the catalogue "
                                    "the acceptance suite uses, without saying which; `check` says whether it is "
                                    "solved, with graded hints on request; `give-up` shows the answer and repairs.",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ex_sub = ex.add_subparsers(dest="exercise_command", metavar="ACTION")
    ex_sub.required = True

    p = ex_sub.add_parser("start", help="break the lab with one fault (the lab must pass every check first)",
                          epilog="example:\n  k8slab exercise start --seed 12 --level hard",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, metavar="N",
                   help="pick the fault and the nodes from N: the same N gives the same exercise (default: random)")
    p.add_argument("--level", choices=LEVELS, default=EASY,
                   help="easy: a route is missing; hard: a route leads the wrong way (default: easy)")
    p.set_defaults(func=cmd_start)

    p = ex_sub.add_parser("check", help="is the exercise solved? (runs verify's checks)",
                          epilog="example:\n  k8slab exercise check --hint",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hint", action="store_true", help="also show one more hint (from vague to precise)")
    p.set_defaults(func=cmd_check)

    p = ex_sub.add_parser("give-up", help="show the answer and repair the lab",
                          epilog="example:\n  k8slab exercise give-up",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=cmd_give_up)


def _current(lab: Lab) -> Exercise | None:
    return notes.read(lab, NOTE, from_record(lab.spec))


def _checks(lab: Lab) -> list[CheckResult]:
    with console.activity("checking the lab") as progress:
        return run_checks(lab, progress=progress)


def cmd_start(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    lab = running_lab(spec, args.backend, args.inventory)
    if _current(lab) is not None:
        raise LabStateError(f"an exercise is already running on lab {spec.name!r}; `{lab.command('exercise check')}` "
                            f"to see if it is solved, or `{lab.command('exercise give-up')}` to end it")
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    try:
        exercise = choose(spec, seed, args.level)
    except ValueError as exc:
        raise UsageError(f"{exc}; try --level {'hard' if args.level == EASY else EASY}") from None
    failed = [r for r in _checks(lab) if not r.ok]
    if failed:
        raise LabStateError(f"lab {spec.name!r} already fails {len(failed)} check(s), so an exercise could not be "
                            f"told from it; see `{lab.command('verify --failed')}`, repair or recreate the lab first")
    notes.write(lab, NOTE, exercise.record())  # first: a crash while breaking still leaves the way back
    try:
        run_commands(lab, exercise.fault.breaks(exercise.pair))
    except BaseException:
        run_commands(lab, exercise.fault.repairs(exercise.pair))
        notes.remove(lab, NOTE)
        raise
    console.say(f"exercise started on lab {spec.name!r} (level {args.level}, seed {seed}): one thing in the pod "
                "network is now broken. Find it and repair it "
                f"(`{lab.command('node exec NODE -- CMD')}`).")
    console.say(f"`{lab.command('exercise check')}` says whether it is solved, `--hint` adds a hint, "
                f"`{lab.command('exercise give-up')}` shows the answer and repairs")
    return 0


def _running(args: argparse.Namespace) -> tuple[Lab, Exercise]:
    spec = load_spec(args.spec)
    lab = running_lab(spec, args.backend, args.inventory)
    exercise = _current(lab)
    if exercise is None:
        raise LabStateError(f"no exercise is running on lab {spec.name!r}; a teacher starts one with "
                            f"`{lab.command('exercise start')}`")
    return lab, exercise


def cmd_check(args: argparse.Namespace) -> int:
    lab, exercise = _running(args)
    results = _checks(lab)
    failed = [r for r in results if not r.ok]
    if not failed:
        notes.remove(lab, NOTE)
        console.say(f"{console.mark(True)} solved: all {len(results)} checks pass. "
                    f"What was broken: {exercise.answer()}")
        return 0
    console.say(f"{console.mark(False)} not yet: {len(failed)} of {len(results)} checks fail")
    if args.hint:
        exercise = Exercise(exercise.fault, exercise.pair, exercise.seed, exercise.level,
                            min(exercise.hints_shown + 1, len(exercise.hints)))
        notes.write(lab, NOTE, exercise.record())
        for i, hint in enumerate(exercise.hints[:exercise.hints_shown], start=1):
            print(f"  hint {i} of {len(exercise.hints)}: {hint}")
    return 1


def cmd_give_up(args: argparse.Namespace) -> int:
    lab, exercise = _running(args)
    repairs = exercise.fault.repairs(exercise.pair)
    console.say(f"the answer: {exercise.answer()} ({exercise.fault.title})")
    print("the repair:\n" + "\n".join(f"  $ {c.text(lab)}" for c in repairs))
    run_commands(lab, repairs)
    notes.remove(lab, NOTE)
    failed = [r for r in _checks(lab) if not r.ok]
    if failed:
        console.say(f"{console.mark(False)} repaired the exercise's fault, yet {len(failed)} check(s) still fail: "
                    f"see `{lab.command('verify --failed')}`")
        return 1
    console.say(f"{console.mark(True)} repaired: the lab passes every check again")
    return 0
