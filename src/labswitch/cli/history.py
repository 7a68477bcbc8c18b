"""labswitch history"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from labswitch import render
from labswitch.cli import Json, State, app
from labswitch.errors import UnknownName, shown
from labswitch.journal import Journal
from labswitch.render import serialise


@app.command("history")
def history_command(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="One run's id: show its steps.", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first.")] = 20,
    json_out: Json = False,
) -> None:
    """List past runs (down, up, and the rolling reboots of fix l1tf) with their outcome (from the journal).

    Outcomes: ok, failed (some steps failed), interrupted (re-run the same command to
    complete it), refused (a safety check stopped it before any change), running. WHY: who or what
    started it when not the CLI (serve, page, mqtt, ups, a schedule, idle auto-down) and why.

    Examples:

      labswitch history

      labswitch history 20261124-190002-3f9a1c --json     # one run's steps
    """
    state: State = ctx.obj
    with Journal.of(state.config()) as journal:
        if run_id is not None:
            _one_run(journal, run_id, json_out)
            return
        rows = [serialise.run_summary(r, journal.steps(r.id)) for r in journal.runs(limit)]
    if json_out:
        render.emit_json(rows)
        return
    render.table(
        f"Runs ({journal.path})",
        ["RUN", "INTENT", "GROUPS", "STARTED", "SECONDS", "OUTCOME", "STEPS", "FAILED", "WHY"],
        (
            [
                r["run_id"],
                r["intent"],
                ",".join(r["groups"]),
                r["started"],
                r["seconds"],
                r["outcome"],
                r["steps"],
                r["failed_steps"],
                "; ".join(x for x in (r["reason"], r["stopped_in"] and f"stopped in {r['stopped_in']}") if x),
            ]
            for r in rows
        ),
    )


def _one_run(journal: Journal, run_id: str, json_out: bool) -> None:
    record = journal.run(run_id)
    if record is None:
        raise UnknownName(f"history {shown(run_id)}: no such run in the journal {journal.path}; `labswitch history` lists the runs")
    outcomes = journal.steps(run_id)
    if json_out:
        render.emit_json(serialise.run(record, outcomes))
        return
    steps = serialise.steps(outcomes)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started))
    title = f"Run {record.id}: {record.intent} of {', '.join(record.groups) or 'no group'}, started {started}, {record.outcome}"
    if steps:
        render.table(
            title,
            ["PHASE", "ACTION", "TARGET", "STATUS", "SECONDS", "DETAIL"],
            ([s["phase"], s["action"], s["target"], s["status"], s["seconds"], s["detail"]] for s in steps),
        )
    else:
        render.stdout.print(title, markup=False, highlight=False)
    if record.reason:
        render.stdout.print(f"why: {record.reason}", markup=False, highlight=False)
    if (where := serialise.stopped_in(record, outcomes)) is not None:
        render.stdout.print(f"stopped in {where}; the same command finishes it", markup=False, highlight=False)
