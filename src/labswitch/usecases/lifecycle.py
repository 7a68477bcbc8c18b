"""One journaled run, the same for a down, an up, both parts of a whole-lab or host-by-host up, and a fix's
rolling reboot: refuse -> confirm -> start -> run -> finish.

``run_plan`` is the whole of it; ``journaled`` is its middle (start -> finish) as a context manager: the run
is in the journal and the lock says which it is for the block, and it is finished however the block ends
(ok or failed as the block says, interrupted otherwise) unless an ok part leaves it open for the next part.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from labswitch.errors import Interrupted, SafetyRefusal
from labswitch.journal import Journal
from labswitch.lock import RunLock
from labswitch.plan import Action, Plan, Step
from labswitch.run import EventSink, Runner, StepResult


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    run_id: str | None
    results: tuple[StepResult, ...]
    interrupted: bool = False  # stopped by the cancel switch; journaled as interrupted
    confirmed: bool = True

    @property
    def ok(self) -> bool:
        return self.confirmed and not self.interrupted and all(r.ok for r in self.results)


@dataclass
class Journaled:
    """A run in the journal, for the block: set ``outcome`` to how it ended ("interrupted" until then)."""

    run_id: str
    outcome: str = "interrupted"


@contextlib.contextmanager
def journaled(
    journal: Journal,
    plan: Plan,
    on_event: EventSink,
    held: RunLock | None = None,
    reason: str | None = None,
    run_id: str | None = None,
    leave_open: bool = False,
) -> Iterator[Journaled]:
    """A new run (told as the "run" event), or the part of ``run_id`` that follows; finished on leaving, except
    when ``leave_open`` and it ended ok (a part after which another follows in the same run)."""
    if run_id is None:
        run_id = journal.start_run(str(plan.intent), plan.groups, reason=reason)
        on_event("run", run_id)
    if held is not None:
        held.update(run_id)
    run = Journaled(run_id)
    try:
        yield run
    finally:
        if not (leave_open and run.outcome == "ok"):
            journal.finish(run_id, run.outcome)


def run_plan(
    journal: Journal,
    plan: Plan,
    confirm: Callable[[Plan], bool],
    runner_for: Callable[[str], Runner],
    on_event: EventSink,
    held: RunLock | None = None,
    reason: str | None = None,
    *,
    run_id: str | None = None,
    leave_open: bool = False,
    before: Callable[[str], None] | None = None,
    after_ok: Callable[[str], None] | None = None,
) -> Outcome:
    """Refuse (journaled as refused), or confirm, journal and run a plan. ``run_id``: the next part of that run
    (with nothing left to do, that run ends ok here). ``before(run_id)``: what is journaled with the run before
    its first step; ``after_ok(run_id)``: what an ok run closes (a whole-lab down undone)."""
    if run_id is not None and not plan.steps:  # a later part with nothing left to do: the run is done
        with journaled(journal, plan, on_event, held, reason, run_id) as run:
            if after_ok is not None:
                after_ok(run.run_id)
            run.outcome = "ok"
        return Outcome(plan, run_id, ())
    if plan.refusals:
        refused = "refused: " + "; ".join(plan.refusals)  # history says why, not only that
        journal.start_run(str(plan.intent), plan.groups, outcome="refused", reason=f"{reason}; {refused}" if reason else refused)
        raise SafetyRefusal("; ".join(plan.refusals))
    if not plan.steps and run_id is None:
        return Outcome(plan, journal.start_run(str(plan.intent), plan.groups, outcome="ok", reason=reason), ())
    if not confirm(plan):
        return Outcome(plan, None, (), confirmed=False)
    with journaled(journal, plan, on_event, held, reason, run_id, leave_open) as run:
        journal.record_plan(run.run_id, json.dumps([_step(s) for s in plan.steps]))
        runner = runner_for(run.run_id)
        try:
            if before is not None:
                before(run.run_id)
            results = runner.run(plan)
        except Interrupted:
            return Outcome(plan, run.run_id, tuple(runner.results), interrupted=True)
        ok = all(r.ok for r in results)
        if ok and after_ok is not None:
            after_ok(run.run_id)
        run.outcome = "ok" if ok else "failed"
    return Outcome(plan, run.run_id, tuple(results))


def _step(step: Step) -> dict[str, Any]:
    return {k: v for k, v in asdict(step).items() if v not in (None, (), [])}


def planned_steps(journal: Journal, run_id: str) -> list[Step]:
    """The steps a run was planned to take (every part), as recorded when it started."""
    out = []
    for part in journal.planned(run_id):
        for d in json.loads(part):
            d["action"] = Action(d["action"])
            d["after"], d["settled"] = tuple(d.get("after", ())), tuple(d.get("settled", ()))
            out.append(Step(**d))
    return out


def continued(first: Outcome, rest: Outcome) -> Outcome:
    """One run in two parts: the outcome of both."""
    return replace(rest, plan=replace(rest.plan, steps=first.plan.steps + rest.plan.steps), results=first.results + rest.results)
