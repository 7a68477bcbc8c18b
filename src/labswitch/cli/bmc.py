"""labswitch bmc status | on | off | shutdown | cycle | info | watts [SERVER ...]"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

import typer

from labswitch import render
from labswitch.bmc import Driver
from labswitch.cli import Json, State, app
from labswitch.errors import EXIT_FAILED
from labswitch.usecases import bmc

bmc_app = typer.Typer(
    help="Drive the servers' BMCs directly (Redfish, racadm over SSH, IPMI), in parallel: what RACADM scripts do.",
    no_args_is_help=True,
)
app.add_typer(bmc_app, name="bmc")

Servers = Annotated[list[str] | None, typer.Argument(help="Server names (default: every configured server).", show_default=False)]


def _run(ctx: typer.Context, servers: list[str] | None, op: Callable[[Driver], Any]) -> list[bmc.Outcome]:
    state: State = ctx.obj
    config = state.config()
    return bmc.each(config, bmc.select(config, servers or []), op)


def _finish(outcomes: list[bmc.Outcome]) -> None:
    for o in outcomes:
        if o.unsupported:  # what the driver cannot do is not a failure: said as a note, exit 0
            render.note(o.error or "")
        elif o.error:
            render.stderr.print(f"labswitch: error: {o.error}", markup=False)
    if any(o.error and not o.unsupported for o in outcomes):
        raise typer.Exit(EXIT_FAILED)


@bmc_app.command("status")
def status(ctx: typer.Context, servers: Servers = None, json_out: Json = False) -> None:
    """Power state of each server as its BMC reports it: On, Off or Unknown.

    Example: labswitch bmc status esx21 esx22 --json
    """
    outcomes = _run(ctx, servers, lambda d: d.power_state())
    rows = [
        {"server": o.server, "power": str(o.value) if o.value else "Unknown", **({"error": o.error} if o.error else {})} for o in outcomes
    ]
    if json_out:
        render.emit_json(rows)
    else:
        render.table("BMC power", ["SERVER", "POWER"], ((r["server"], r["power"]) for r in rows))
    _finish(outcomes)


def _report_actions(outcomes: list[bmc.Outcome], json_out: bool, done: str, already: str) -> None:
    """One line (or JSON row) per server: what was done, or that nothing was needed."""
    rows = [
        {
            "server": o.server,
            "ok": o.error is None,
            "changed": o.error is None and o.value is not False,
            "detail": o.error or (already if o.value is False else done),
        }
        for o in outcomes
    ]
    if json_out:
        render.emit_json(rows)
    else:
        for r in rows:
            if r["ok"]:
                render.stdout.print(f"{r['server']}: {r['detail']}", markup=False)
    _finish(outcomes)


@bmc_app.command("on")
def on(ctx: typer.Context, servers: Servers = None, json_out: Json = False) -> None:
    """Power the servers on; a server already on succeeds and says so."""
    _report_actions(_run(ctx, servers, lambda d: d.power_on()), json_out, "powered on", "already on")


@bmc_app.command("shutdown")
def shutdown(ctx: typer.Context, servers: Servers = None, json_out: Json = False) -> None:
    """Ask the servers' OS to shut down (ACPI: GracefulShutdown, else PushPowerButton)."""
    _report_actions(_run(ctx, servers, lambda d: d.graceful_shutdown()), json_out, "graceful shutdown requested", "already off")


@bmc_app.command("off")
def off(
    ctx: typer.Context,
    servers: Servers = None,
    force: Annotated[bool, typer.Option("--force", help="Cut the power (ForceOff) instead of a graceful shutdown.")] = False,
    json_out: Json = False,
) -> None:
    """Switch the servers off: a graceful shutdown unless --force.

    Prefer `labswitch down`, which shuts the VMs and hosts down first.
    """
    op: Callable[[Driver], Any] = (lambda d: d.force_off()) if force else (lambda d: d.graceful_shutdown())
    _report_actions(_run(ctx, servers, op), json_out, "powered off (ForceOff)" if force else "graceful shutdown requested", "already off")


@bmc_app.command("cycle")
def cycle(ctx: typer.Context, servers: Servers = None, json_out: Json = False) -> None:
    """Power-cycle the servers (PowerCycle, else ForceRestart)."""
    _report_actions(_run(ctx, servers, lambda d: d.power_cycle()), json_out, "power cycled", "power cycled")


@bmc_app.command("info")
def info(ctx: typer.Context, servers: Servers = None, json_out: Json = False) -> None:
    """Model, service tag, BIOS and BMC firmware, host name and power: what `racadm getsysinfo` shows."""
    outcomes = _run(ctx, servers, lambda d: d.system_info())
    rows = [
        {
            "server": o.server,
            **({k: str(v) if k == "power" else v for k, v in asdict(o.value).items()} if o.value else {}),
            **({"error": o.error} if o.error else {}),
        }
        for o in outcomes
    ]
    if json_out:
        render.emit_json(rows)
    else:
        columns = ["server", "model", "service_tag", "bios_version", "bmc_firmware", "host_name", "power"]
        render.table("BMC info", [c.upper().replace("_", " ") for c in columns], ([r.get(c) for c in columns] for r in rows))
    _finish(outcomes)


@bmc_app.command("watts")
def watts(ctx: typer.Context, servers: Servers = None, json_out: Json = False) -> None:
    """Power draw now, in watts, from the BMCs that report it."""
    outcomes = _run(ctx, servers, lambda d: d.watts())
    rows = [{"server": o.server, "watts": o.value, **({"error": o.error} if o.error else {})} for o in outcomes]
    if json_out:
        render.emit_json(rows)
    else:
        render.table("Power draw", ["SERVER", "WATTS"], ((o.server, _watts_cell(o)) for o in outcomes))
    _finish(outcomes)


def _watts_cell(outcome: bmc.Outcome) -> str:
    if outcome.value is not None:
        return str(outcome.value)
    return "n/a" if outcome.unsupported else "unknown"
