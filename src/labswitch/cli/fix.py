"""labswitch fix l1tf | cbt-reset"""

from __future__ import annotations

from typing import Annotated

import typer

from labswitch import render
from labswitch.audits import FixPlan
from labswitch.cli import DryRun, Json, State, Yes, app, require_confirmable
from labswitch.errors import EXIT_FAILED, ConfigError
from labswitch.render import serialise
from labswitch.usecases import fix as usecase

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
    state: State = ctx.obj
    config = state.config()
    if not dry_run:
        require_confirmable("fix", yes)
    progress = render.Progress()
    try:
        outcome = usecase.l1tf_fix(config, hosts or [], mitigate, reboot, dry_run, _confirm(yes, "fix l1tf"), progress)
    finally:
        progress.stop()
    _finish(outcome, json_out)


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
    state: State = ctx.obj
    config = state.config()
    if not dry_run:
        require_confirmable("fix", yes)
    outcome = usecase.cbt_reset(config, vms, with_snapshots, dry_run, _confirm(yes, "fix cbt-reset"))
    _finish(outcome, json_out)


def _confirm(yes: bool, what: str) -> usecase.Confirm:
    def confirm(plan: FixPlan) -> bool:
        if yes:
            return True
        _show_plan(plan, to_stderr=True)
        return typer.confirm(f"{what}: {len(plan.steps)} steps. Proceed?")

    return confirm


def _show_plan(plan: FixPlan, to_stderr: bool = False) -> None:
    console = render.stderr if to_stderr else render.stdout
    for step in plan.steps:
        console.print(f"  {step.action} {step.target}: {step.detail}", markup=False)


def _finish(outcome: usecase.FixOutcome, json_out: bool) -> None:
    plan = outcome.plan
    for note in plan.notes:
        render.note(note)
    if json_out:
        render.emit_json(
            {
                "applied": outcome.applied,
                "ok": outcome.ok,
                "steps": [{"target": s.target, "action": s.action, "detail": s.detail} for s in plan.steps],
                "results": [{"target": r.target, "ok": r.ok, "detail": r.detail} for r in outcome.results],
                "reboot_steps": serialise.steps(outcome.reboots),
            }
        )
    elif not plan.steps:
        render.stdout.print("nothing to change", markup=False)
    elif not outcome.applied:
        render.stdout.print(f"would do {len(plan.steps)} steps (nothing changed):", markup=False)
        _show_plan(plan)
    else:
        for r in outcome.results:
            render.stdout.print(f"{'ok' if r.ok else 'FAILED'}  {r.target}: {r.detail}", markup=False)
        for s in outcome.reboots:
            if s.status != "ok" or s.action == "reboot-host":
                render.stdout.print(f"{s.status:7} {s.action} {s.target}: {s.detail}", markup=False)
    if not outcome.ok:
        raise typer.Exit(EXIT_FAILED)
