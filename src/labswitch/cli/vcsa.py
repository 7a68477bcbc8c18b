"""labswitch vcsa check | repair"""

from __future__ import annotations

from typing import Annotated

import typer

from labswitch import render
from labswitch.cli import Json, State, app
from labswitch.errors import EXIT_FAILED
from labswitch.usecases import vcsa as usecase
from labswitch.vcsa import CORE, Health

vcsa_app = typer.Typer(
    help='Check and repair the vCenter appliance over SSH ("This appliance cannot be used or repaired").', no_args_is_help=True
)
app.add_typer(vcsa_app, name="vcsa")


def _as_json(h: Health) -> dict[str, object]:
    return {
        "login_shell": h.login_shell,
        "healthy": h.healthy,
        "core_stopped": list(h.core_stopped),
        "running": list(h.running),
        "stopped": list(h.stopped),
        "backup_history_present": h.backup_history,
    }


def _show(h: Health, title: str) -> None:
    render.stdout.print(f"{title}: {'healthy' if h.healthy else 'NOT healthy'} (login shell: {h.login_shell})", markup=False)
    listed = [s for s in CORE if s in h.running or s in h.stopped]
    render.table("Core services", ["SERVICE", "STATE"], ((s, "running" if s in h.running else "STOPPED") for s in listed))
    if h.backup_history:
        render.note(
            "the backup history file is present; if the appliance says it cannot be used or repaired: vcsa repair --clear-backup-history"
        )


@vcsa_app.command("check")
def check_command(ctx: typer.Context, json_out: Json = False) -> None:
    """Read the appliance's health: every service's state (service-control --status --all) and the backup history file.

    Exit 1 when a core service is stopped. Needs [vcsa] in the config (root SSH login).
    """
    state: State = ctx.obj
    h = usecase.check(state.config())
    if json_out:
        render.emit_json(_as_json(h))
    else:
        _show(h, "vCenter appliance")
    if not h.healthy:
        raise typer.Exit(EXIT_FAILED)


@vcsa_app.command("repair")
def repair_command(
    ctx: typer.Context,
    clear_backup_history: Annotated[
        bool,
        typer.Option("--clear-backup-history", help="First move backupRestore-history.json to /var/tmp/ with a timestamp (kept)."),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check, print the commands, change nothing.")] = False,
    json_out: Json = False,
) -> None:
    """Restart every appliance service (service-control --stop --all, then --start --all) and check again.

    With --clear-backup-history the stuck /var/vmware/applmgmt/backupRestore-history.json is first
    moved to /var/tmp/backupRestore-history.json.<UTC timestamp>; it is never deleted.

    Example:

      labswitch vcsa repair --clear-backup-history --dry-run
    """
    state: State = ctx.obj
    outcome = usecase.repair(state.config(), clear_backup_history, dry_run)
    if json_out:
        render.emit_json(
            {
                "applied": not dry_run,
                "ok": outcome.ok,
                "before": _as_json(outcome.before),
                "after": _as_json(outcome.after) if outcome.after else None,
                "steps": [{"command": c, "result": r} for c, r in outcome.steps],
                "backup_history_moved_to": outcome.moved_to,
            }
        )
    else:
        _show(outcome.before, "before")
        for command, result in outcome.steps:
            render.stdout.print(f"  {result}: {command}", markup=False)
        if outcome.moved_to:
            render.stdout.print(f"  backup history kept at {outcome.moved_to}", markup=False)
        if outcome.after:
            _show(outcome.after, "after")
    if not dry_run and not outcome.ok:
        raise typer.Exit(EXIT_FAILED)
