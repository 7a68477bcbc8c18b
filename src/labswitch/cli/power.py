"""labswitch plan | down | up"""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from labswitch import render
from labswitch.cancel import Cancel
from labswitch.cli import DryRun, Json, State, Yes, app, interrupts, require_confirmable
from labswitch.config import DEFAULT_PATH
from labswitch.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_REFUSED, ConfigError
from labswitch.plan import Intent, Plan, slow_after
from labswitch.render import runs, serialise
from labswitch.render.live import LiveProgress, RunView, power_by
from labswitch.usecases import power

Groups = Annotated[
    list[str] | None,
    typer.Option("--group", "-g", metavar="GROUP", help="A group to act on (repeatable). Default: every group that is not always_on."),
]
Skip = Annotated[bool, typer.Option("--skip-unreachable", help="Leave out servers whose BMC cannot be reached, and say so.")]
Wait = Annotated[
    bool, typer.Option("--wait", help="If another run is in progress, wait for it (up to --wait-timeout) instead of exiting 1.")
]
NoPipeline = Annotated[bool, typer.Option("--no-pipeline", hidden=True, help="Lab-wide phase barriers (benchmark comparison).")]
ClusterBarrier = Annotated[
    bool,
    typer.Option("--cluster-barrier", hidden=True, help="Every cluster going down as one unit, as before 2026-12 (benchmark comparison)."),
]
VsanNoAction = Annotated[
    bool,
    typer.Option(
        "--vsan-no-action",
        help="A vSAN cluster going down in part with fewer than 3 hosts left up: enter maintenance mode without moving "
        "data (objectAction noAction) instead of refusing. At your own risk: objects with a copy only there are unavailable.",
    ),
]
WholeLab = Annotated[
    bool,
    typer.Option(
        "--whole-lab",
        help="vCenter runs on a target host: take it down too, last, through that host's own API (\\[esxi] login); "
        "`up` then starts it there first.",
    ),
]
Reason = Annotated[
    str | None,
    typer.Option("--reason", help="Why, journaled with the run (history shows it): e.g. ups, from NUT's SHUTDOWNCMD."),
]
WaitTimeout = Annotated[float, typer.Option("--wait-timeout", min=0, metavar="SECONDS", help="How long --wait waits.")]


@app.command("plan")
def plan_command(
    ctx: typer.Context,
    intent: Annotated[Intent, typer.Argument(help="down or up")],
    group: Groups = None,
    restore: Annotated[bool, typer.Option("--restore", help="up: plan to start what ran before the last down.")] = False,
    vsan_no_action: VsanNoAction = False,
    whole_lab: WholeLab = False,
    brief: Annotated[
        bool, typer.Option("--brief", help="Only the summary a down or up shows before its question: per host, the VMs and host steps.")
    ] = False,
    json_out: Json = False,
) -> None:
    """Show the exact ordered steps of a down or up, computed from live state; changes nothing.

    Exits 3 when a safety check would refuse it. Each step says what it goes through: vCenter, a
    BMC, or a host's own API (a whole-lab cycle).

    Examples:

      labswitch plan down

      labswitch plan down --brief

      labswitch plan down --whole-lab

      labswitch plan up --group payload --json
    """
    state: State = ctx.obj
    config = state.config()
    request = power.Request(intent, tuple(group or ()), restore=restore, vsan_no_action=vsan_no_action, whole_lab=whole_lab)
    plan = power.make(config, request)
    if brief and not json_out:
        runs.plan_summary(render.stdout, plan, {s.name: s.group for s in config.servers}, power_by(config.servers))
        _notes_and_refusals(plan)
    else:
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
    wait: Wait = False,
    wait_timeout: WaitTimeout = 3600,
    vsan_no_action: VsanNoAction = False,
    whole_lab: WholeLab = False,
    reason: Reason = None,
    no_pipeline: NoPipeline = False,
    cluster_barrier: ClusterBarrier = False,
    json_out: Json = False,
) -> None:
    """Switch the lab off: guests shut down, hosts in maintenance mode and shut down, confirmed off by their BMCs.

    A cluster going down entirely has HA turned off and, where vCLS agents of the ESX Agent Manager
    could keep its last host on, vCLS put in retreat mode as its down begins; each host then goes
    down as soon as its own VMs are off. A vSAN cluster goes down as one unit: once all its VMs are
    off, vSAN's cluster power action. `up` restores what a down changed.
    With --whole-lab (or a group with holds_vcenter) the host that runs vCenter goes down last:
    vCenter's VM and policy.vcenter_dependencies are shut down through that host's own API, which
    then enters maintenance mode and shuts down; `up` starts vCenter there first.
    Refused (exit 3, nothing changed) when the vCenter VM (without --whole-lab), the machine running
    labswitch, or a protected VM is on a target host, a target BMC cannot be reached, or a vSAN
    cluster would keep fewer than 3 hosts up (see --vsan-no-action). At a terminal it shows
    the plan in brief and asks; then live progress per host. Ctrl-C stops it cleanly (exit 130,
    journaled): run the same command again to finish. Another run in progress: exit 1, or --wait.

    Examples:

      labswitch down                    # asks for confirmation

      labswitch down --group payload --yes --json

      labswitch down --whole-lab        # vCenter's own host too, last
    """
    request = power.Request(
        Intent.DOWN,
        tuple(group or ()),
        skip_unreachable=skip_unreachable,
        lock_wait=wait_timeout if wait else 0,
        pipeline=not no_pipeline,
        cluster_barrier=cluster_barrier,
        vsan_no_action=vsan_no_action,
        whole_lab=whole_lab,
        reason=reason,
    )
    _run(ctx, request, yes, dry_run, json_out)


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
    wait: Wait = False,
    wait_timeout: WaitTimeout = 3600,
    reason: Reason = None,
    no_pipeline: NoPipeline = False,
    cluster_barrier: ClusterBarrier = False,
    json_out: Json = False,
) -> None:
    """Switch the lab on: BMC power-on, hosts reconnected and out of maintenance mode, tagged VMs started in waves.

    A vSAN cluster is powered on (vSAN's action) once all its hosts are connected, and every cluster
    setting a down changed (HA, vCLS retreat mode) is set back once the cluster's hosts are back
    (a vSAN cluster's VMs start after that; any other cluster's as soon as their own host is back).
    After a whole-lab down, vCenter is started first on its host (its dependencies before it), and
    the up goes on through vCenter once its APIs answer (policy.vcenter_boot_timeout).

    At a terminal it shows the plan in brief and asks; then live progress per host. Ctrl-C stops
    it cleanly (exit 130, journaled): run the same command again to finish. Another run in
    progress: exit 1, or --wait.

    Examples:

      labswitch up --yes

      labswitch up --restore --yes      # what ran before the last down
    """
    if restore and tag:
        raise ConfigError("--restore and --tag: choose one (restore starts what ran before; --tag starts tagged VMs)")
    _run(
        ctx,
        power.Request(
            Intent.UP,
            tuple(group or ()),
            restore=restore,
            tag=tag,
            skip_unreachable=skip_unreachable,
            lock_wait=wait_timeout if wait else 0,
            pipeline=not no_pipeline,
            cluster_barrier=cluster_barrier,
            reason=reason,
        ),
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
    groups = {s.name: s.group for s in config.servers}
    progress = LiveProgress(render.stderr, RunView(groups, slow_after(config.policy), power_by=power_by(config.servers)))
    cancel = Cancel()

    def confirm(plan: Plan) -> bool:
        if not yes:
            if state.verbose:
                show_plan(plan, json_out=False, to_stderr=True)
            else:
                runs.plan_summary(render.stderr, plan, groups, progress.view.power_by)
                for note in plan.notes:
                    render.note(note)
            if not render.ask(runs.question(plan)):
                return False
        interrupts.install(cancel, progress)
        return True

    try:
        outcome = power.execute(config, request, confirm, progress, cancel, on_wait=render.note)
    finally:
        progress.stop()
        interrupts.restore()
    if not outcome.confirmed:
        render.stderr.print("Aborted, nothing changed.")
        raise typer.Exit(EXIT_FAILED)
    for note in outcome.plan.notes:
        render.note(note)
    if json_out:
        render.emit_json(
            {"ok": outcome.ok, "run_id": outcome.run_id, "interrupted": outcome.interrupted, "steps": serialise.steps(outcome.results)}
        )
    elif not outcome.results and not outcome.interrupted:
        render.stdout.print(f"{request.intent}: nothing to do; the lab is already {request.intent}")
    else:
        retry = retry_command(state, request)
        runs.final_summary(
            render.stdout, outcome.plan, outcome.results, outcome.run_id, progress.view.elapsed(), outcome.interrupted, retry
        )
    if outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not outcome.ok:
        raise typer.Exit(EXIT_FAILED)


def retry_command(state: State, request: power.Request) -> str:
    """The command that finishes or retries this run, as the user would type it."""
    words = ["labswitch"]
    if state.config_path != DEFAULT_PATH:
        words += ["--config", shlex.quote(str(state.config_path))]
    words.append(str(request.intent))
    for group in request.groups:
        words += ["--group", shlex.quote(group)]
    if request.restore:
        words.append("--restore")
    if request.whole_lab:
        words.append("--whole-lab")
    if request.tag:
        words += ["--tag", shlex.quote(request.tag)]
    return " ".join(words)


def show_plan(plan: Plan, json_out: bool, to_stderr: bool = False) -> None:
    if json_out:
        render.emit_json(serialise.plan(plan))
        return
    console = render.stderr if to_stderr else render.stdout
    console.print(f"{plan.intent} of {', '.join(plan.groups) or 'no group'}: {len(plan.servers)} servers, {len(plan.steps)} steps")
    current = None
    for step in plan.steps:
        if step.phase != current:
            current = step.phase
            console.print(f"  {current}", markup=False)
        how = "  (only if the step before does not work)" if step.fallback_of else ""
        console.print(f"    {step.action} {step.target}  [{endpoint_label(step.endpoint)}]{how}", markup=False)
    _notes_and_refusals(plan)


def _notes_and_refusals(plan: Plan) -> None:
    for note in plan.notes:
        render.note(note)
    for refusal in plan.refusals:
        render.stderr.print(f"refused: {refusal}", markup=False)


def endpoint_label(endpoint: str) -> str:
    """What a step goes through, in words: vCenter, a server's BMC, a host's own API, or Proxmox VE's API."""
    kind, _, server = endpoint.partition(":")
    return {"bmc": f"BMC {server}", "esxi": f"host {server} directly", "proxmox": "Proxmox VE API"}.get(kind, "vCenter")
