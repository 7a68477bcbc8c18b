"""labswitch history"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from labswitch import render
from labswitch.cli import Json, State, app
from labswitch.journal import Journal, default_path


@app.command("history")
def history_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first.")] = 20,
    json_out: Json = False,
) -> None:
    """List past runs (down, up, and the rolling reboots of fix l1tf) with their outcome (from the journal).

    Outcomes: ok, failed (some steps failed), interrupted (re-run the same command to
    complete it), refused (a safety check stopped it before any change), running.
    """
    state: State = ctx.obj
    journal = Journal(default_path(state.config().state_dir))
    try:
        runs = journal.runs(limit)
        rows: list[dict[str, Any]] = []
        for r in runs:
            steps = journal.steps(r.id)
            rows.append(
                {
                    "run_id": r.id,
                    "intent": r.intent,
                    "groups": list(r.groups),
                    "outcome": r.outcome,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(r.started)),
                    "seconds": round((r.finished or r.started) - r.started, 1) if r.finished else None,
                    "steps": len(steps),
                    "failed_steps": sum(1 for s in steps if s[3] != "ok"),
                }
            )
    finally:
        journal.close()
    if json_out:
        render.emit_json(rows)
        return
    render.table(
        f"Runs ({journal.path})",
        ["RUN", "INTENT", "GROUPS", "STARTED", "SECONDS", "OUTCOME", "STEPS", "FAILED"],
        (
            [r["run_id"], r["intent"], ",".join(r["groups"]), r["started"], r["seconds"], r["outcome"], r["steps"], r["failed_steps"]]
            for r in rows
        ),
    )
