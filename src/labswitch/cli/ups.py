"""labswitch ups status | watch"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import asdict

import typer

from labswitch import render
from labswitch.cancel import Cancel
from labswitch.cli import Json, State, app
from labswitch.errors import EXIT_INTERRUPTED, Interrupted
from labswitch.render.live import LiveProgress, RunView
from labswitch.usecases import ups

ups_app = typer.Typer(
    help="A UPS watched through NUT (Network UPS Tools): the lab down in order when the power is gone.", no_args_is_help=True
)
app.add_typer(ups_app, name="ups")


@ups_app.command("status")
def status_command(ctx: typer.Context, json_out: Json = False) -> None:
    """Show the UPS: status (OL on line, OB on battery, LB low battery), charge, runtime left.

    Read through NUT's network protocol from \\[ups] url; changes nothing.

    Example:

      labswitch ups status --json
    """
    state: State = ctx.obj
    reading = ups.read(state.config())
    if json_out:
        render.emit_json({**asdict(reading), "status": sorted(reading.status)})
        return
    render.stdout.print(ups.describe(reading), markup=False)


@ups_app.command("watch")
def watch_command(ctx: typer.Context) -> None:
    """Watch the UPS and take the lab down when the power is gone; back up when it returns (if enabled).

    On battery for ups.on_battery_after (default 2m), on low battery (LB), or with less than
    ups.min_runtime left: `down` of ups.groups (default: every group that is not always_on),
    with the run lock and every safety rule, journaled with its reason. With ups.up_after set:
    once the power has been back that long and the charge is over ups.up_min_charge, `up
    --restore`. A shutdown started is finished even if the power returns meanwhile. Runs until
    SIGTERM or Ctrl-C (a run in progress is left resumable, as with `down`).

    Example:

      labswitch ups watch               # e.g. as a systemd service beside upsmon
    """
    state: State = ctx.obj
    config = state.config()
    groups = {s.name: s.group for s in config.servers}

    def sink() -> tuple[LiveProgress, Callable[[], None]]:  # each run its own lines and clock
        progress = LiveProgress(render.stderr, RunView(groups, {}), live=False)
        return progress, progress.stop

    def note(text: str) -> None:  # a watch runs for days: its lines say when
        render.note(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}")

    cancel = Cancel()
    previous = signal.signal(signal.SIGTERM, lambda *_: cancel.set("stopped (SIGTERM)"))
    try:
        ups.watch(config, sink, note, cancel)
    except KeyboardInterrupt:
        cancel.set()
    except Interrupted:
        pass  # SIGTERM or Ctrl-C during a wait: a run under way is journaled as interrupted, resumable
    finally:
        signal.signal(signal.SIGTERM, previous)
    render.stderr.print(f"ups watch: {cancel.reason}", markup=False)
    raise typer.Exit(EXIT_INTERRUPTED if cancel.reason == "interrupted" else 0)
