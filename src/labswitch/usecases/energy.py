"""`labswitch energy`: watts now, what the lab costs always on, what it really cost (from the journal)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labswitch.bmc import Driver, Power
from labswitch.config import Config
from labswitch.errors import NotSupported
from labswitch.journal import Journal, default_path
from labswitch.usecases import bmc

HOURS_PER_MONTH = 24 * 365 / 12  # 730
WINDOW_DAYS = 30
OFF_ACTIONS = ("confirm-off",)
ON_ACTIONS = ("bmc-power-on",)


@dataclass(frozen=True)
class ServerEnergy:
    server: str
    group: str
    power: str
    watts: float | None  # measured now; None when the BMC reports none
    on_watts: float  # its draw when on: measured if on now, else energy.server_watts
    on_hours_30d: float
    kwh_by_day: Mapping[str, float]  # ISO date -> kWh
    on_hours_by_day: Mapping[str, float]


@dataclass(frozen=True)
class EnergyReport:
    servers: tuple[ServerEnergy, ...]
    total_watts: float
    monthly_kwh_always_on: float
    monthly_cost_always_on: float
    monthly_kwh_actual: float
    monthly_cost_actual: float
    currency: str
    notes: tuple[str, ...]

    @property
    def saving(self) -> float:
        return self.monthly_cost_always_on - self.monthly_cost_actual


def report(config: Config, now: dt.datetime | None = None) -> EnergyReport:
    now = now or dt.datetime.now(dt.UTC)
    readings = bmc.each(config, config.servers, lambda d: (d.power_state(), _watts_or_none(d)))
    journal = Journal(default_path(config.state_dir))
    try:
        events = _power_events(journal, now - dt.timedelta(days=WINDOW_DAYS))
    finally:
        journal.close()
    price = config.energy.price_per_kwh
    notes, servers = [], []
    for server, outcome in zip(config.servers, readings, strict=True):
        power, watts = outcome.value if outcome.value else (Power.UNKNOWN, None)
        if outcome.error:
            notes.append(outcome.error)
        on_watts = watts if power is Power.ON and watts else config.energy.server_watts
        by_day = _on_hours_by_day(events.get(server.name, []), now, power)
        servers.append(
            ServerEnergy(
                server=server.name,
                group=server.group,
                power=str(power),
                watts=watts,
                on_watts=on_watts,
                on_hours_30d=round(sum(by_day.values()), 2),
                kwh_by_day={d: round(h * on_watts / 1000, 4) for d, h in by_day.items()},
                on_hours_by_day={d: round(h, 3) for d, h in by_day.items()},
            )
        )
    if any(s.watts is None or s.power != "On" for s in servers):
        notes.append(
            f"servers that are off or report no power are counted at energy.server_watts = {config.energy.server_watts:g} W when on"
        )
    always_on_kwh = sum(s.on_watts for s in servers) * HOURS_PER_MONTH / 1000
    actual_kwh = sum(s.on_watts * s.on_hours_30d for s in servers) / 1000 * (HOURS_PER_MONTH / (WINDOW_DAYS * 24))
    return EnergyReport(
        servers=tuple(servers),
        total_watts=sum(s.watts or 0 for s in servers),
        monthly_kwh_always_on=round(always_on_kwh, 2),
        monthly_cost_always_on=round(always_on_kwh * price, 2),
        monthly_kwh_actual=round(actual_kwh, 2),
        monthly_cost_actual=round(actual_kwh * price, 2),
        currency=config.energy.currency,
        notes=tuple(notes),
    )


def _watts_or_none(driver: Driver) -> float | None:
    try:
        return float(driver.watts())
    except NotSupported:
        return None


def _power_events(journal: Journal, since: dt.datetime) -> dict[str, list[tuple[dt.datetime, bool]]]:
    """Per server, (time, powered on?) from the journal's successful power steps, oldest first."""
    events: dict[str, list[tuple[dt.datetime, bool]]] = defaultdict(list)
    for at, action, target in journal.power_steps():
        when = dt.datetime.fromtimestamp(at, dt.UTC)
        events[target].append((when, action in ON_ACTIONS))
    return {k: sorted(v) for k, v in events.items()}


def _on_hours_by_day(events: Sequence[tuple[dt.datetime, bool]], now: dt.datetime, power_now: Power) -> dict[str, float]:
    """On-hours per day over the window. Before the first event in it, the server is taken to be
    in the state that event left (or, with no event at all, the state it is in now)."""
    start = now - dt.timedelta(days=WINDOW_DAYS)
    before = [on for when, on in events if when < start]
    inside = [(when, on) for when, on in events if start <= when <= now]
    if before:
        state = before[-1]
    elif inside:
        state = not inside[0][1]
    else:
        state = power_now is not Power.OFF
    hours: dict[str, float] = defaultdict(float)
    cursor = start
    for when, on in [*inside, (now, state if not inside else inside[-1][1])]:
        if state:
            _spread(hours, cursor, when)
        cursor, state = when, on
    return dict(hours)


def _spread(hours: dict[str, float], begin: dt.datetime, end: dt.datetime) -> None:
    while begin < end:
        midnight = dt.datetime.combine(begin.date() + dt.timedelta(days=1), dt.time(), tzinfo=begin.tzinfo)
        upto = min(end, midnight)
        hours[begin.date().isoformat()] += (upto - begin).total_seconds() / 3600
        begin = upto
