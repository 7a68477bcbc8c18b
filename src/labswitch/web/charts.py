"""The page's energy panel: this month's figures and two SVG charts with axes, units and a value per mark (on
hover, focus or tap: static/app.js shows a mark's ``data-label``). The figures are `labswitch energy`'s
(usecases/energy): the past from samples and the journal, never from the draw now; days before the lab's first
record have no bar; measured and estimated kWh are drawn apart (the estimated part outlined, not only lighter)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.errors import LabswitchError
from labswitch.usecases import energy

WIDTH = 340  # both charts' viewBox width
LEFT, RIGHT, TOP, BOTTOM = 40, 6, 8, 92  # the plot area inside it; the axes' labels outside
DAYS = 14
WATTS_HOURS = 72  # the watts chart: the last three days, hour by hour


def panel(config: Config, readings: Mapping[str, tuple[Power, float | None]]) -> dict[str, Any] | None:
    """This month's kWh, cost, always-on cost and saving; kWh per day for two weeks; watts per hour for three days."""
    now = dt.datetime.now().astimezone()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    try:
        month = energy.report(config, since=month_start, until=now, readings=readings)
        two_weeks = (now - dt.timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0)
        fortnight = energy.report(config, since=two_weeks, until=now, readings=readings)  # never a BMC read of its own
    except LabswitchError:
        return None
    c = month.currency
    return {
        "watts": round(sum(w or 0 for _, w in readings.values())),
        "kwh": f"{month.kwh:.2f}",
        "measured": f"{month.measured_kwh:.2f}",
        "estimated": f"{month.estimated_kwh:.2f}",
        "cost": f"{month.cost:.2f} {c}",
        "always_on": f"{month.always_on_cost:.2f} {c}",
        "saving": f"{month.saving:.2f} {c}",
        "counted_since": f"{month.counted_since:%b %d %H:%M}" if month.counted_since > month_start else None,
        "nothing_yet": month.counted_since >= month.until,
        "sampled": month.sampled_since is not None,
        "days": day_bars(energy.by_day(fortnight), now.date()),
        "watts_chart": watts_line(energy.recent_watts(config, WATTS_HOURS, now.timestamp()), now),
        "width": WIDTH,
    }


def nice_top(value: float) -> float:
    """The axis' top: the value rounded up to 1, 2 or 5 times a power of ten (PURE)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= value))


def _axis(top: float, unit: str) -> list[dict[str, Any]]:
    """Three gridlines (0, half, top) with their labels; kWh under 1 in Wh (a few samples' worth is not 0.00 kWh)."""
    scale, unit = (1000.0, "Wh") if unit == "kWh" and top < 1 else (1.0, unit)
    return [{"y": round(BOTTOM - (BOTTOM - TOP) * f, 1), "label": f"{round(top * f * scale, 6):g} {unit}"} for f in (0, 0.5, 1)]


def day_bars(days: list[tuple[str, float, float]], today: dt.date) -> dict[str, Any]:
    """A slot per day of the last two weeks, today last; a bar only for counted days: measured at the bottom,
    estimated on top (PURE)."""
    counted = {d: (m, e) for d, m, e in days}
    top = nice_top(max((m + e for m, e in counted.values()), default=0.0))
    slot = (WIDTH - LEFT - RIGHT) / DAYS
    scale = (BOTTOM - TOP) / top
    bars = []
    for i in range(DAYS):
        day = today - dt.timedelta(days=DAYS - 1 - i)
        x = round(LEFT + i * slot + 2, 1)
        entry: dict[str, Any] = {"x": x, "mid": round(x + (slot - 4) / 2, 1), "day": f"{day:%d}", "iso": day.isoformat()}
        entry["counted"] = entry["iso"] in counted
        if entry["counted"]:
            m, e = counted[day.isoformat()]
            hm, he = round(m * scale, 1), round(e * scale, 1)
            entry |= {
                "measured_y": round(BOTTOM - hm, 1),
                "measured_h": hm,
                "estimated_y": round(BOTTOM - hm - he, 1),
                "estimated_h": he,
                "label": f"{day:%a %b %d}: {m + e:.2f} kWh ({m:.2f} measured, {e:.2f} estimated)",
            }
        bars.append(entry)
    return {"bars": bars, "bar_width": round(slot - 4, 1), "axis": _axis(top, "kWh"), "rows": days}


def watts_line(hourly: list[float | None], now: dt.datetime) -> dict[str, Any] | None:
    """The lab's draw per hour over the last three days: the line (broken where nothing was sampled), a point per
    sampled hour with its value, the axes (PURE). None: no hour was sampled."""
    if all(w is None for w in hourly):
        return None
    top = nice_top(max(w for w in hourly if w is not None))
    step = (WIDTH - LEFT - RIGHT) / max(len(hourly) - 1, 1)
    lines: list[list[str]] = [[]]
    points = []
    for i, watts in enumerate(hourly):
        if watts is None:
            if lines[-1]:
                lines.append([])
            continue
        x, y = LEFT + step * i, BOTTOM - (BOTTOM - TOP) * watts / top
        lines[-1].append(f"{x:.1f},{y:.1f}")
        hour = now - dt.timedelta(hours=len(hourly) - i)  # the hour that began then
        points.append({"x": round(x, 1), "y": round(y, 1), "label": f"{hour:%a %H}:00: {watts:.0f} W"})
    n = len(hourly)
    marks = [(i, f"-{n - i} h") for i in range(0, n - 1, 24)] + [(n - 1, "now")]
    return {
        "lines": [" ".join(p) for p in lines if len(p) > 1],
        "points": points,
        "axis": _axis(top, "W"),
        "ticks": [{"x": round(LEFT + step * i, 1), "label": label, "anchor": "end" if i == n - 1 else "middle"} for i, label in marks],
    }
