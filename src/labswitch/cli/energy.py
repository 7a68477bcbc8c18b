"""labswitch energy"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from labswitch import render
from labswitch.cli import Json, State, app
from labswitch.errors import ConfigError
from labswitch.usecases.energy import EnergyReport, report


@app.command("energy")
def energy_command(
    ctx: typer.Context,
    json_out: Json = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write on-hours and kWh per day per group to a PNG (needs labswitch[plot]).")
    ] = None,
) -> None:
    """Watts per server now, the monthly cost if always on, and the real cost and saving from the last 30 days.

    On-hours come from the journal: a server is off from its confirmed-off step of a `down`
    to its BMC power-on in the next `up`. Prices: [energy] price_per_kwh and currency.
    """
    state: State = ctx.obj
    config = state.config()
    if plot is not None:
        _check_matplotlib()
    result = report(config)
    if json_out:
        render.emit_json(
            {
                "servers": [
                    {"server": s.server, "watts": s.watts, "power": s.power, "on_hours_30d": s.on_hours_30d} for s in result.servers
                ],
                "total_watts": result.total_watts,
                "monthly_kwh_always_on": result.monthly_kwh_always_on,
                "monthly_cost_always_on": result.monthly_cost_always_on,
                "monthly_kwh_actual": result.monthly_kwh_actual,
                "monthly_cost_actual": result.monthly_cost_actual,
                "saving": round(result.saving, 2),
                "currency": result.currency,
            }
        )
    else:
        _show(result)
    for note in result.notes:
        render.note(note)
    if plot is not None:
        _plot(result, plot)
        render.stderr.print(f"plot written to {plot}", markup=False)


def _show(r: EnergyReport) -> None:
    render.table(
        "Energy",
        ["SERVER", "POWER", "WATTS NOW", "ON-HOURS (30 d)"],
        ((s.server, s.power, "-" if s.watts is None else f"{s.watts:g}", f"{s.on_hours_30d:.1f}") for s in r.servers),
    )
    c = r.currency
    render.stdout.print(f"\nTotal now: {r.total_watts:g} W")
    render.stdout.print(f"Always on: {r.monthly_kwh_always_on:.1f} kWh/month = {r.monthly_cost_always_on:.2f} {c}/month")
    render.stdout.print(f"Actual (last 30 days): {r.monthly_kwh_actual:.1f} kWh/month = {r.monthly_cost_actual:.2f} {c}/month")
    render.stdout.print(f"Saving: {r.saving:.2f} {c}/month")


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'labswitch[plot]'") from None


def _plot(r: EnergyReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    kwh: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in r.servers:
        for day, h in s.on_hours_by_day.items():
            hours[s.group][day] += h
        for day, k in s.kwh_by_day.items():
            kwh[s.group][day] += k
    days = sorted({d for g in hours.values() for d in g})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for group in sorted(hours):
        top.plot(days, [hours[group].get(d, 0) for d in days], marker="o", label=group)
        bottom.plot(days, [kwh[group].get(d, 0) for d in days], marker="o", label=group)
    top.set_ylabel("server on-hours per day")
    bottom.set_ylabel("kWh per day")
    top.legend()
    top.set_title(f"Lab energy, last 30 days: {r.monthly_cost_actual:.2f} {r.currency}/month (always on: {r.monthly_cost_always_on:.2f})")
    bottom.tick_params(axis="x", rotation=60, labelsize=7)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise ConfigError(f"--plot {path}: cannot write: {exc.strerror}") from None
    finally:
        plt.close(fig)
