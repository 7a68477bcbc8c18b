"""labswitch fix l1tf | cbt-reset"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from labswitch import render
from labswitch.cancel import Cancel
from labswitch.cli import DryRun, Json, State, Yes, app, interrupts, require_confirmable
from labswitch.cli.power import show_plan
from labswitch.config import Config
from labswitch.errors import EXIT_FAILED, EXIT_INTERRUPTED, ConfigError
from labswitch.plan import Action, Plan, slow_after
from labswitch.render import serialise
from labswitch.render.live import LiveProgress, RunView
from labswitch.run import EventSink
from labswitch.usecases import fix as usecase
from labswitch.usecases.lifecycle import Outcome
from labswitch.words import count

fix_app = typer.Typer(
    help="Apply the fix for an audit finding: planned, confirmed, read back. Every fix has --dry-run.", no_args_is_help=True
)
app.add_typer(fix_app, name="fix")


@fix_app.command("l1tf")
def l1tf_command(
    ctx: typer.Context,
    hosts: Annotated[list[str] | None, typer.Argument(help="Hosts (default: every host the l1tf audit flags).", show_default=False)] = None,
    mitigate: Annotated[bool, typer.Option("--mitigate", help="Set VMkernel.Boot.hyperthreadingMitigation = true.")] = False,
    suppress_warning: Annotated[
        bool, typer.Option("--suppress-warning", help="Set UserVars.SuppressHyperthreadWarning = 1 (accepts the risk).")
    ] = False,
    reboot: Annotated[
        bool, typer.Option("--reboot", help="With --mitigate: rolling reboot, one host at a time through maintenance mode.")
    ] = False,
    yes: Yes = False,
    dry_run: DryRun = False,
    json_out: Json = False,
) -> None:
    """Mitigate L1TF (CVE-2018-3646) on ESXi hosts, or hide the client warning.

    The mitigation takes effect after a reboot; --reboot does a rolling reboot: on each host in
    turn its running VMs shut down, maintenance mode, reboot, back, the same VMs started again.
    Refused (exit 3) when a host runs the vCenter VM or labswitch's own machine.

    Examples:

      labswitch fix l1tf --mitigate --dry-run

      labswitch fix l1tf --mitigate esx11.lab.local esx12.lab.local --reboot --yes
    """
    if mitigate == suppress_warning:
        raise ConfigError("fix l1tf: choose one of --mitigate or --suppress-warning")
    if reboot and not mitigate:
        raise ConfigError("fix l1tf: --reboot goes with --mitigate (hiding the warning needs no reboot)")
    _run(
        ctx,
        lambda config, confirm, on_event, cancel: usecase.l1tf_fix(
            config, hosts or [], mitigate, reboot, dry_run, confirm, on_event, cancel
        ),
        "fix l1tf",
        yes,
        dry_run,
        json_out,
    )


@fix_app.command("cbt-reset")
def cbt_reset_command(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VMs whose changed block tracking to reset.")],
    with_snapshots: Annotated[bool, typer.Option("--with-snapshots", help="Reset VMs that already have snapshots too.")] = False,
    yes: Yes = False,
    dry_run: DryRun = False,
    json_out: Json = False,
) -> None:
    """Reset changed block tracking (KB 2139574): CBT off, create and remove a snapshot, CBT on.

    Refuses (exit 3) VMs that have snapshots unless --with-snapshots. The next backup of a reset
    VM is a full one.

    Example:

      labswitch fix cbt-reset sql01 sql02 --dry-run
    """
    _run(
        ctx,
        lambda config, confirm, on_event, cancel: usecase.cbt_reset(config, vms, with_snapshots, dry_run, confirm, on_event, cancel),
        "fix cbt-reset",
        yes,
        dry_run,
        json_out,
    )


Fix = Callable[[Config, usecase.Confirm, EventSink, Cancel], Outcome]


def _run(ctx: typer.Context, fix: Fix, what: str, yes: bool, dry_run: bool, json_out: bool) -> None:
    """As down and up run: the plan (or its summary and a question), the live view, Ctrl-C, the outcome."""
    state: State = ctx.obj
    config = state.config()
    if dry_run:  # the plan only: nothing starts, nothing is asked
        _finish(fix(config, lambda plan: False, lambda kind, data: None, Cancel()), what, True, json_out)
        return
    require_confirmable("fix", yes)
    groups = {s.esxi: s.group for s in config.servers}
    progress = LiveProgress(render.stderr, RunView(groups, slow_after(config.policy)))
    cancel = Cancel()

    def confirm(plan: Plan) -> bool:
        if not yes:
            show_plan(plan, json_out=False, to_stderr=True)  # its notes too
            if not render.ask(f"{what}: {len(plan.steps)} steps. Proceed?"):
                return False
        interrupts.install(cancel, progress)
        return True

    try:
        outcome = fix(config, confirm, progress, cancel)
    finally:
        progress.stop()
        interrupts.restore()
    _finish(outcome, what, False, json_out, lines_shown=not progress.live_mode)


def _finish(outcome: Outcome, what: str, dry_run: bool, json_out: bool, lines_shown: bool = False) -> None:
    """lines_shown: the run's progress already printed a line per step (off a terminal); they are not repeated."""
    plan = outcome.plan
    if dry_run:
        show_plan(plan, json_out)
        if not json_out and plan.steps:
            render.stdout.print(f"would do {len(plan.steps)} steps (nothing changed)", markup=False)
        return
    if not outcome.confirmed:
        render.stderr.print("Aborted, nothing changed.")
        raise typer.Exit(EXIT_FAILED)
    for note in plan.notes:
        render.note(note)
    if json_out:
        render.emit_json(
            {"ok": outcome.ok, "run_id": outcome.run_id, "interrupted": outcome.interrupted, "steps": serialise.steps(outcome.results)}
        )
    elif not plan.steps:
        render.stdout.print("nothing to change", markup=False)
    for r in outcome.results if not (json_out or lines_shown) else ():
        if r.status != "ok" or r.action in FIX_ACTIONS or r.action == Action.REBOOT_HOST:
            render.stdout.print(f"{'ok' if r.ok else str(r.status).upper():7} {r.action} {r.target}: {r.detail}", markup=False)
    if outcome.results and not json_out:
        done = sum(1 for r in outcome.results if r.ok)
        render.stdout.print(
            f"{what}: {done} of {count(len(outcome.results), 'step')} ok; steps: labswitch history {outcome.run_id}", markup=False
        )
    if outcome.interrupted:
        render.stderr.print(f"{what}: interrupted; the run is journaled as interrupted (run {outcome.run_id})", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    if not outcome.ok:
        raise typer.Exit(EXIT_FAILED)


FIX_ACTIONS = frozenset({Action.L1TF_MITIGATE, Action.L1TF_SUPPRESS_WARNING, Action.CBT_RESET})
