"""labswitch energy"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from labswitch import render
from labswitch.cli import Json, State, app
from labswitch.errors import ConfigError
from labswitch.usecases.energy import EnergyReport, as_json, period, report


@app.command("energy")
def energy_command(
    ctx: typer.Context,
    json_out: Json = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Start of the period, local time: 2026-11-01 or 2026-11-01T08:00 (default: 30 days ago).")
    ] = None,
    days: Annotated[int | None, typer.Option("--days", min=1, help="The period: the last N days (default 30).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write kWh per day per group to a PNG (needs labswitch[plot]).")] = None,
) -> None:
    r"""What the lab drew over a period and what it cost, measured and estimated apart; the same period
    always on, and the saving.

    Measured: the energy samples `labswitch serve` takes every energy.sample_interval. Estimated: the
    rest of the period (before sampling started, while serve was not running), from the journal's
    power steps at each server's draw when on (its samples' mean, else energy.server_watts; never the
    draw now). Nothing is counted before the lab's first run or sample. Prices: \[energy] price_per_kwh
    and currency.

    Examples:

      labswitch energy --days 7

      labswitch energy --since 2026-11-01 --json
    """
    state: State = ctx.obj
    config = state.config()
    start = period(since, days)
    if plot is not None:
        _check_matplotlib()
    result = report(config, since=start)
    if json_out:
        render.emit_json(as_json(result))
    else:
        _show(result)
    for note in result.notes:
        render.note(note)
    if plot is not None:
        _plot(result, plot)
        render.stderr.print(f"plot written to {plot}", markup=False)


def _show(r: EnergyReport) -> None:
    render.table(
        f"Energy {r.counted_since:%Y-%m-%d %H:%M} to {r.until:%Y-%m-%d %H:%M} ({r.hours:.1f} h)"
        if r.hours < 48
        else f"Energy {r.counted_since:%Y-%m-%d %H:%M} to {r.until:%Y-%m-%d %H:%M} ({r.hours / 24:.1f} days)",
        ["SERVER", "POWER", "WATTS NOW", "ON-HOURS", "MEASURED", "ESTIMATED"],
        (
            (
                s.server,
                s.power,
                "-" if s.watts is None else f"{s.watts:g}",
                f"{s.on_hours:.1f}",
                energy_text(s.measured_kwh),
                energy_text(s.estimated_kwh),
            )
            for s in r.servers
        ),
    )
    c = r.currency
    render.stdout.print(f"\nTotal now: {r.total_watts:g} W")
    sampled = f"sampled since {r.sampled_since:%Y-%m-%d %H:%M}" if r.sampled_since else "never sampled: run labswitch serve"
    render.stdout.print(
        f"Used: {energy_text(r.kwh)} = {r.cost:.2f} {c} (measured {energy_text(r.measured_kwh)}, "
        f"estimated {energy_text(r.estimated_kwh)}; {sampled})"
    )
    render.stdout.print(f"Always on, same period: {energy_text(r.always_on_kwh)} = {r.always_on_cost:.2f} {c}")
    render.stdout.print(f"Saving: {r.saving:.2f} {c}")
    render.stdout.print(f"Per month: {r.monthly_cost_actual:.2f} {c} at this rate, {r.monthly_cost_always_on:.2f} {c} always on")


def energy_text(kwh: float) -> str:
    """2.04 kWh; under 1 kWh in Wh (a few samples' worth is not 0.00)."""
    if kwh >= 1 or kwh == 0:
        return f"{kwh:.2f} kWh"
    return f"{kwh * 1000:.3g} Wh"


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'labswitch[plot]'") from exc


def _plot(r: EnergyReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kwh: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in r.servers:
        for day, k in s.kwh_by_day.items():
            kwh[s.group][day] += k
    days = sorted({d for g in kwh.values() for d in g})
    fig, axes = plt.subplots(figsize=(10, 4))
    for group in sorted(kwh):
        axes.plot(days, [kwh[group].get(d, 0) for d in days], marker="o", label=group)
    axes.set_ylabel("kWh per day")
    axes.legend()
    axes.set_title(f"Lab energy: {r.cost:.2f} {r.currency} (always on: {r.always_on_cost:.2f}); measured {r.measured_kwh:.1f} kWh")
    axes.tick_params(axis="x", rotation=60, labelsize=7)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise ConfigError(f"--plot {path}: cannot write: {exc.strerror}") from exc
    finally:
        plt.close(fig)
