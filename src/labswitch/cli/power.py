"""labswitch plan | down | up"""

from __future__ import annotations

from typing import Annotated

import typer

from labswitch import render
from labswitch.cli import DryRun, Json, State, Yes, app, require_confirmable
from labswitch.errors import EXIT_FAILED, EXIT_REFUSED, ConfigError
from labswitch.plan import Intent, Plan
from labswitch.usecases import power

Groups = Annotated[
    list[str] | None, typer.Option("--group", "-g", help="A group to act on (repeatable). Default: every group that is not always_on.")
]
Skip = Annotated[bool, typer.Option("--skip-unreachable", help="Leave out servers whose BMC cannot be reached, and say so.")]


@app.command("plan")
def plan_command(
    ctx: typer.Context,
    intent: Annotated[Intent, typer.Argument(help="down or up")],
    group: Groups = None,
    restore: Annotated[bool, typer.Option("--restore", help="up: plan to start what ran before the last down.")] = False,
    json_out: Json = False,
) -> None:
    """Show the exact ordered steps of a down or up, computed from live state; changes nothing.

    Exits 3 when a safety check would refuse it.

    Examples:

      labswitch plan down

      labswitch plan up --group payload --json
    """
    state: State = ctx.obj
    plan = power.make(state.config(), power.Request(intent, tuple(group or ()), restore=restore))
    show_plan(plan, json_out)
    if plan.refusals:
        raise typer.Exit(EXIT_REFUSED)


@app.command("down")
def down_command(
    ctx: typer.Context,
    group: Groups = None,
    yes: Yes = False,
    dry_run: DryRun = False,
    skip_unreachable: Skip = False,
    json_out: Json = False,
) -> None:
    """Switch the lab off: guests shut down, hosts in maintenance mode and shut down, confirmed off by their BMCs.

    Refused (exit 3, nothing changed) when the vCenter VM, the machine running labswitch, or a
    protected VM is on a target host, or a target BMC cannot be reached. Interrupted? Run it again.

    Examples:

      labswitch down                    # asks for confirmation

      labswitch down --group payload --yes --json
    """
    _run(ctx, power.Request(Intent.DOWN, tuple(group or ()), skip_unreachable=skip_unreachable), yes, dry_run, json_out)


@app.command("up")
def up_command(
    ctx: typer.Context,
    group: Groups = None,
    restore: Annotated[bool, typer.Option("--restore", help="Start exactly the VMs that were on when the last down began.")] = False,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Start VMs with this tag instead of policy.startup_tag (Tag or Category/Tag).")
    ] = None,
    yes: Yes = False,
    dry_run: DryRun = False,
    skip_unreachable: Skip = False,
    json_out: Json = False,
) -> None:
    """Switch the lab on: BMC power-on, hosts reconnected and out of maintenance mode, tagged VMs started in waves.

    Examples:

      labswitch up --yes

      labswitch up --restore --yes      # what ran before the last down
    """
    if restore and tag:
        raise ConfigError("--restore and --tag: choose one (restore starts what ran before; --tag starts tagged VMs)")
    _run(
        ctx,
        power.Request(Intent.UP, tuple(group or ()), restore=restore, tag=tag, skip_unreachable=skip_unreachable),
        yes,
        dry_run,
        json_out,
    )


def _run(ctx: typer.Context, request: power.Request, yes: bool, dry_run: bool, json_out: bool) -> None:
    state: State = ctx.obj
    config = state.config()
    if dry_run:
        plan = power.make(config, request)
        show_plan(plan, json_out)
        raise typer.Exit(EXIT_REFUSED if plan.refusals else 0)
    require_confirmable(str(request.intent), yes)

    def confirm(plan: Plan) -> bool:
        if yes:
            return True
        show_plan(plan, json_out=False, to_stderr=True)
        return typer.confirm(f"{request.intent} {', '.join(plan.groups)}: {len(plan.steps)} steps on {len(plan.servers)} servers. Proceed?")

    progress = render.Progress()
    try:
        outcome = power.execute(config, request, confirm, progress)
    finally:
        progress.stop()
    for note in outcome.plan.notes:
        render.note(note)
    if json_out:
        render.emit_json({"ok": outcome.ok, "run_id": outcome.run_id, "steps": power.as_json_steps(outcome.results)})
    else:
        failed = [r for r in outcome.results if r.status != "ok"]
        if not outcome.results:
            render.stdout.print(f"{request.intent}: nothing to do; the lab is already {request.intent}")
        else:
            render.stdout.print(
                f"{request.intent}: {len(outcome.results) - len(failed)} of {len(outcome.results)} steps ok (run {outcome.run_id})"
            )
        for r in failed:
            render.stdout.print(f"  {r.status}: {r.action} {r.target}: {r.detail}", markup=False)
    if not outcome.ok:
        raise typer.Exit(EXIT_FAILED)


def show_plan(plan: Plan, json_out: bool, to_stderr: bool = False) -> None:
    if json_out:
        render.emit_json(
            {
                "steps": [{"phase": s.phase, "action": s.action, "target": s.target} for s in plan.steps],
                "refusals": list(plan.refusals),
                "notes": list(plan.notes),
            }
        )
        return
    console = render.stderr if to_stderr else render.stdout
    console.print(f"{plan.intent} of {', '.join(plan.groups) or 'no group'}: {len(plan.servers)} servers, {len(plan.steps)} steps")
    current = None
    for step in plan.steps:
        if step.phase != current:
            current = step.phase
            console.print(f"  {current}", markup=False)
        console.print(f"    {step.action} {step.target}", markup=False)
    for note in plan.notes:
        render.note(note)
    for refusal in plan.refusals:
        render.stderr.print(f"refused: {refusal}", markup=False)
