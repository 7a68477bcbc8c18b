"""labswitch schedule add | list | remove"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from labswitch import render, schedule
from labswitch.cli import State, app

schedule_app = typer.Typer(help="Bring the lab up and down by the clock: systemd user timers, or cron lines.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")

Dir = Annotated[Path | None, typer.Option("--unit-dir", help="Where the units go (default: ~/.config/systemd/user).", hidden=True)]


@schedule_app.command("add")
def add_command(
    ctx: typer.Context,
    action: Annotated[str, typer.Argument(help="up or down")],
    at: Annotated[str, typer.Option("--at", help="DAYS HH:MM: 'Mon..Fri 18:00', 'Sat,Sun 09:30', '07:00' (every day).")],
    group: Annotated[list[str] | None, typer.Option("--group", "-g", metavar="GROUP", help="Only these groups (repeatable).")] = None,
    restore: Annotated[bool, typer.Option("--restore", help="up: start what ran before the last down.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="Schedule name (default from the action and time).")] = None,
    env_file: Annotated[
        Path | None, typer.Option("--env-file", help="EnvironmentFile= for the service: the variables your secret references name.")
    ] = None,
    cron: Annotated[bool, typer.Option("--cron", help="Print a crontab line instead of installing a timer.")] = False,
    enable: Annotated[bool, typer.Option("--enable/--no-enable", help="Enable and start the timer now.")] = True,
    unit_dir: Dir = None,
) -> None:
    """Add a schedule: a systemd user timer running `labswitch ACTION --yes` at the given times.

    The timer runs even when you are logged out once lingering is on (loginctl enable-linger).
    Secrets stay references: give --env-file for the variables they name, or use file/keyring references.

    Examples:

      labswitch schedule add up --at "Mon..Fri 07:30"

      labswitch schedule add down --at "Mon..Fri 19:00" --env-file ~/.config/labswitch/secrets.env

      labswitch schedule add down --at "Sat,Sun 02:00" --cron >> my.crontab
    """
    state: State = ctx.obj
    found = shutil.which("labswitch")
    program = [found] if found else [sys.executable, "-m", "labswitch"]
    s = schedule.make(action, at, state.config_path, group or [], restore, name, program)
    if cron:
        render.stdout.out(schedule.cron_line(s), highlight=False)
        return
    directory = unit_dir or schedule.unit_dir()
    for note in schedule.install(s, env_file, directory, enable):
        render.note(note)
    render.stdout.print(f"schedule {s.name}: labswitch {action} at {at} ({schedule.on_calendar(at)}); units in {directory}", markup=False)


@schedule_app.command("list")
def list_command(unit_dir: Dir = None) -> None:
    """List the installed labswitch schedules."""
    rows = schedule.installed(unit_dir or schedule.unit_dir())
    if not rows:
        render.stdout.print("no schedules", markup=False)
        return
    render.table("Schedules", ["NAME", "AT", "COMMAND"], rows)


@schedule_app.command("remove")
def remove_command(name: Annotated[str, typer.Argument(help="The schedule's name (see list).")], unit_dir: Dir = None) -> None:
    """Disable a schedule's timer and delete its units."""
    for note in schedule.remove(name, unit_dir or schedule.unit_dir(), enable=unit_dir is None):
        render.note(note)
    render.stdout.print(f"schedule {name} removed", markup=False)
