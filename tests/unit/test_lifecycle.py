"""The one journaled-run lifecycle (usecases.lifecycle), read back from a real journal file.

``StubRunner`` is a hand-written fake of the Runner (the executor itself is tested in test_executor.py
and end to end against labsim): it returns or raises what a test gives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from labswitch.errors import Interrupted, SafetyRefusal
from labswitch.journal import Journal
from labswitch.plan import Action, Intent, Plan, Status, Step
from labswitch.run import Runner, StepResult
from labswitch.usecases import lifecycle

STEP = Step("power-on", Action.BMC_POWER_ON, "esx11", server="esx11")
DONE = StepResult("power-on", Action.BMC_POWER_ON, "esx11", Status.OK, "powered on", 1.0, "esx11")


class StubRunner:
    """A hand-written fake: ``run`` returns ``results``, or raises ``raises`` with ``results`` as done so far."""

    def __init__(self, results: list[StepResult], raises: BaseException | None = None) -> None:
        self.results = results
        self.raises = raises

    def run(self, plan: Plan) -> list[StepResult]:
        if self.raises is not None:
            raise self.raises
        return self.results


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


def runner(results: list[StepResult], raises: BaseException | None = None) -> Any:
    return lambda run_id: cast(Runner, StubRunner(results, raises))


def plan(*steps: Step, refusals: tuple[str, ...] = ()) -> Plan:
    return Plan(Intent.UP, ("payload",), ("esx11",), steps, refusals)


def test_a_later_part_with_nothing_left_ends_the_run_and_closes_the_whole_lab_record(journal: Journal) -> None:
    """A whole-lab up's vCenter side with nothing to do: the run (left open by the host side) ends ok, and the
    whole-lab down is undone — it was left running, then interrupted, and the record pending."""
    first = lifecycle.run_plan(journal, plan(STEP), lambda p: True, runner([DONE]), lambda k, d: None, leave_open=True)
    assert first.run_id is not None
    journal.record_whole_lab(first.run_id, "esx11", ("vcsa", "uuid-1"), ())
    record = journal.run(first.run_id)
    assert record is not None and record.outcome == "running" and record.finished is None, "left open for the next part"
    rest = lifecycle.run_plan(
        journal, plan(), lambda p: pytest.fail("nothing to confirm"), runner([]), lambda k, d: None, run_id=first.run_id,
        after_ok=journal.whole_lab_done,
    )  # fmt: skip
    record = journal.run(first.run_id)
    assert rest.ok and record is not None and record.outcome == "ok" and record.finished is not None
    assert journal.pending_whole_lab() is None


def test_a_refusal_is_journaled_and_raised(journal: Journal) -> None:
    with pytest.raises(SafetyRefusal, match="vCenter runs on esx11"):
        lifecycle.run_plan(journal, plan(STEP, refusals=("vCenter runs on esx11",)), lambda p: True, runner([]), lambda k, d: None)
    assert [(r.outcome, r.reason) for r in journal.runs()] == [("refused", "refused: vCenter runs on esx11")], "history says why"


def test_declined_leaves_nothing_in_the_journal(journal: Journal) -> None:
    outcome = lifecycle.run_plan(journal, plan(STEP), lambda p: False, runner([DONE]), lambda k, d: None)
    assert not outcome.confirmed and outcome.run_id is None and journal.runs() == []


def test_an_interrupted_run_is_journaled_as_such_and_a_failed_one_as_failed(journal: Journal) -> None:
    events: list[tuple[str, object]] = []
    cut = lifecycle.run_plan(journal, plan(STEP), lambda p: True, runner([DONE], Interrupted("Ctrl-C")), lambda k, d: events.append((k, d)))
    failed = StepResult("power-on", Action.BMC_POWER_ON, "esx11", Status.FAILED, "BMC not answering", 1.0, "esx11")
    bad = lifecycle.run_plan(journal, plan(STEP), lambda p: True, runner([failed]), lambda k, d: None)
    outcomes = {r.id: r.outcome for r in journal.runs()}
    assert cut.interrupted and cut.results == (DONE,) and outcomes[cut.run_id or ""] == "interrupted"
    assert not bad.ok and outcomes[bad.run_id or ""] == "failed"
    assert events == [("run", cut.run_id)]


def test_an_error_in_the_run_still_finishes_it(journal: Journal) -> None:
    with pytest.raises(RuntimeError):
        lifecycle.run_plan(journal, plan(STEP), lambda p: True, runner([], RuntimeError("a bug")), lambda k, d: None)
    (record,) = journal.runs()
    assert record.outcome == "interrupted" and record.finished is not None
