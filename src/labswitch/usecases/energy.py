"""`labswitch energy`: what the lab drew over a period, measured where `labswitch serve` sampled it and
estimated where it did not, what it would have cost always on, and the saving.

Measured: the journal's energy samples (usecases/sampling). Estimated: the rest of the period, from the
journal's power steps (a server is off from its confirmed-off step in a down to its BMC power-on in the
next up) at the server's draw when on: the mean of its measured samples while on, else energy.server_watts.
The past is never valued at the present draw: a server booting now does not change last week. Nothing is
counted before the lab's first record (its first run or sample): labswitch knows nothing of the lab before
it, and the always-on comparison covers the same counted time. Both parts are reported apart, per server,
per day and in total."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labswitch.bmc import Power
from labswitch.config import Config, Server
from labswitch.errors import ConfigError, shown
from labswitch.journal import Journal
from labswitch.samples import Sample, Samples
from labswitch.usecases import bmc

HOURS_PER_MONTH = 24 * 365 / 12  # 730
DEFAULT_DAYS = 30
Interval = tuple[float, float]  # epoch seconds, start < end


@dataclass(frozen=True)
class ServerEnergy:
    server: str
    group: str
    power: str
    watts: float | None  # measured now; None when the BMC reports none (shown, never used for the past)
    on_watts: float  # its draw when on, for estimates and the always-on figure: its samples' mean, else the default
    on_hours: float  # over the period, sampled and estimated
    off_hours: float  # the rest of the counted period
    off_kwh: float  # drawn while off (a BMC's standby, where measured)
    measured_kwh: float  # from samples with a reading (or off at 0 W)
    estimated_kwh: float  # from samples on without a reading, and from the journal's power steps outside sampled time
    measured_by_day: Mapping[str, float]  # local ISO date -> measured kWh
    estimated_by_day: Mapping[str, float]  # local ISO date -> estimated kWh

    @property
    def kwh(self) -> float:
        return self.measured_kwh + self.estimated_kwh

    @property
    def always_on_kwh(self) -> float:
        """The same period had it stayed on: what it drew while on, and its draw when on for the hours it was off."""
        return self.kwh - self.off_kwh + self.off_hours * self.on_watts / 1000

    @property
    def kwh_by_day(self) -> dict[str, float]:
        """Both parts, per local ISO date."""
        out = dict(self.measured_by_day)
        for day, kwh in self.estimated_by_day.items():
            out[day] = out.get(day, 0.0) + kwh
        return out


@dataclass(frozen=True)
class EnergyReport:
    since: dt.datetime
    until: dt.datetime
    counted_since: dt.datetime  # since, or the lab's first record if later (until: the lab has none yet)
    servers: tuple[ServerEnergy, ...]
    total_watts: float
    measured_kwh: float
    estimated_kwh: float
    always_on_kwh: float  # the same servers on for the whole counted period: as drawn while on, at on_watts while off
    price_per_kwh: float
    currency: str
    sampled_since: dt.datetime | None  # the first energy sample ever (None: `serve` never sampled)
    notes: tuple[str, ...]

    @property
    def hours(self) -> float:
        """The hours counted: from the lab's first record on, not before."""
        return (self.until - self.counted_since).total_seconds() / 3600

    @property
    def kwh(self) -> float:
        return self.measured_kwh + self.estimated_kwh

    @property
    def cost(self) -> float:
        return self.kwh * self.price_per_kwh

    @property
    def always_on_cost(self) -> float:
        return self.always_on_kwh * self.price_per_kwh

    @property
    def saving(self) -> float:
        return self.always_on_cost - self.cost

    @property
    def monthly_kwh_always_on(self) -> float:
        return sum(s.on_watts for s in self.servers) * HOURS_PER_MONTH / 1000

    @property
    def monthly_kwh_actual(self) -> float:
        return self.kwh * HOURS_PER_MONTH / self.hours if self.hours > 0 else 0.0

    @property
    def monthly_cost_always_on(self) -> float:
        return self.monthly_kwh_always_on * self.price_per_kwh

    @property
    def monthly_cost_actual(self) -> float:
        return self.monthly_kwh_actual * self.price_per_kwh


def report(
    config: Config,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    readings: Mapping[str, tuple[Power, float | None]] | None = None,
) -> EnergyReport:
    """The period [since, until] (default: the last 30 days up to now), counted from the lab's first record.
    ``readings`` (server -> power and watts now, shown beside the figures) spares reading the BMCs again when the
    caller just did."""
    until = until or dt.datetime.now().astimezone()
    since = since or until - dt.timedelta(days=DEFAULT_DAYS)
    notes: list[str] = []
    if readings is None:
        readings = _read_bmcs(config, notes)
    with Journal.of(config) as journal:
        events = _power_events(journal)
        first_run = journal.first_started()
    with Samples.of(config) as store:
        first_sample = store.first()
        draws = store.on_draw()
        end = until.timestamp()
        start = counted_from(since.timestamp(), end, first_run, first_sample)
        samples = store.between(start, end)
    counted = dt.datetime.fromtimestamp(start, until.tzinfo)
    if start >= end:
        notes.append("nothing counted yet: labswitch counts a lab's energy from its first run or energy sample")
    elif start > since.timestamp():
        notes.append(f"counted from {counted:%Y-%m-%d %H:%M}, the lab's first record: nothing is known of it before")
    by_server: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_server[sample.server].append(sample)
    default = config.energy.server_watts
    servers = [
        _server_energy(
            server,
            readings.get(server.name, (Power.UNKNOWN, None)),
            draws.get(server.name, default),
            by_server.get(server.name, []),
            events.get(server.name, []),
            (start, end),
            until.tzinfo,
        )
        for server in config.servers
    ]
    if any(s.estimated_kwh > 0 and s.server not in draws for s in servers):
        notes.append(f"servers never sampled on are estimated at energy.server_watts = {default:g} W when on")
    return EnergyReport(
        since=since,
        until=until,
        counted_since=min(counted, until),
        servers=tuple(servers),
        total_watts=sum(s.watts or 0 for s in servers),
        measured_kwh=sum(s.measured_kwh for s in servers),
        estimated_kwh=sum(s.estimated_kwh for s in servers),
        always_on_kwh=sum(s.always_on_kwh for s in servers),
        price_per_kwh=config.energy.price_per_kwh,
        currency=config.energy.currency,
        sampled_since=dt.datetime.fromtimestamp(first_sample, until.tzinfo) if first_sample is not None else None,
        notes=tuple(notes),
    )


def counted_from(since: float, until: float, first_run: float | None, first_sample: float | None) -> float:
    """Where a period's counting starts (PURE): at ``since``, or at the lab's first record if that is later; at
    ``until`` (nothing counted) for a lab with no record at all."""
    known = [t for t in (first_run, first_sample) if t is not None]
    return min(max(since, min(known)), until) if known else until


def _read_bmcs(config: Config, notes: list[str]) -> dict[str, tuple[Power, float | None]]:
    """Each server's power and watts now, read from its BMC (unknown when it does not answer: a note says why)."""
    readings: dict[str, tuple[Power, float | None]] = {}
    for o in bmc.each(config, config.servers, lambda d: (d.power_state(), bmc.watts_or_none(d))):
        if o.error:
            notes.append(o.error)
        readings[o.server] = o.value if o.value else (Power.UNKNOWN, None)
    return readings


def _server_energy(
    server: Server,
    now: tuple[Power, float | None],
    on_watts: float,
    samples: list[Sample],
    events: list[tuple[float, bool]],
    window: tuple[float, float],
    tz: dt.tzinfo | None,
) -> ServerEnergy:
    """One server over the window: measured where sampled, estimated from its power history elsewhere at
    ``on_watts`` (its draw when on, as its samples showed it)."""
    power, watts = now
    start, end = window
    measured, sampled_estimate, covered, sampled_on, off_kwh, measured_days, estimated_days = _sampled(samples, start, end, tz)
    estimated_on = subtract(on_intervals(events, start, end, power), covered) if end > start else []
    for day, hours in hours_by_day(estimated_on, tz).items():
        estimated_days[day] += hours * on_watts / 1000
    estimated_hours = sum(b - a for a, b in estimated_on) / 3600
    return ServerEnergy(
        server=server.name,
        group=server.group,
        power=str(power),
        watts=watts,
        on_watts=on_watts,
        on_hours=round(sampled_on + estimated_hours, 3),
        off_hours=max(0.0, (end - start) / 3600 - sampled_on - estimated_hours),
        off_kwh=off_kwh,
        measured_kwh=measured,
        estimated_kwh=sampled_estimate + estimated_hours * on_watts / 1000,
        measured_by_day=dict(measured_days),
        estimated_by_day=dict(estimated_days),
    )


MAX_DAYS = 3660  # ten years: a period longer than any lab's journal


def period(since: str | None, days: int | None) -> dt.datetime | None:
    """The start of a period from --since (ISO date or date and time, local) or --days; None: the default."""
    now = dt.datetime.now().astimezone()
    if since is not None and days is not None:
        raise ConfigError("energy: give --since or --days, not both")
    if days is not None:
        if not 1 <= days <= MAX_DAYS:
            raise ConfigError(f"--days {days}: from 1 to {MAX_DAYS}")
        return now - dt.timedelta(days=days)
    if since is None:
        return None
    try:
        start = dt.datetime.fromisoformat(since)
        start = start.astimezone() if start.tzinfo is None else start
    except (ValueError, OverflowError, OSError) as exc:
        raise ConfigError(f"--since {shown(since)}: a date or date and time, e.g. 2026-11-01 or 2026-11-01T08:00") from exc
    if start.year < 2000:
        raise ConfigError(f"--since {since}: a date from 2000 on")
    if start >= now:
        raise ConfigError(f"--since {since}: that is not in the past")
    return start


def as_json(r: EnergyReport) -> dict[str, Any]:
    """The report as `energy --json` and the API give it."""
    return {
        "since": r.since.isoformat(timespec="seconds"),
        "until": r.until.isoformat(timespec="seconds"),
        "counted_since": r.counted_since.isoformat(timespec="seconds"),
        "servers": [
            {
                "server": s.server,
                "power": s.power,
                "watts": s.watts,
                "on_watts": round(s.on_watts, 1),
                "on_hours": s.on_hours,
                "kwh": round(s.kwh, 6),
                "measured_kwh": round(s.measured_kwh, 6),
                "estimated_kwh": round(s.estimated_kwh, 6),
            }
            for s in r.servers
        ],
        "total_watts": r.total_watts,
        "kwh": round(r.kwh, 6),
        "measured_kwh": round(r.measured_kwh, 6),
        "estimated_kwh": round(r.estimated_kwh, 6),
        "cost": round(r.cost, 2),
        "always_on_kwh": round(r.always_on_kwh, 6),
        "always_on_cost": round(r.always_on_cost, 2),
        "saving": round(r.saving, 2),
        "monthly_kwh_always_on": round(r.monthly_kwh_always_on, 2),
        "monthly_cost_always_on": round(r.monthly_cost_always_on, 2),
        "monthly_kwh_actual": round(r.monthly_kwh_actual, 2),
        "monthly_cost_actual": round(r.monthly_cost_actual, 2),
        "sampled_since": r.sampled_since.isoformat(timespec="seconds") if r.sampled_since else None,
        "currency": r.currency,
        "days": days_json(r),
        "notes": list(r.notes),
    }


def by_day(r: EnergyReport) -> list[tuple[str, float, float]]:
    """(local ISO date, measured kWh, estimated kWh) for each counted day of the period, oldest first (PURE)."""
    measured: dict[str, float] = defaultdict(float)
    estimated: dict[str, float] = defaultdict(float)
    for s in r.servers:
        for iso, kwh in s.measured_by_day.items():
            measured[iso] += kwh
        for iso, kwh in s.estimated_by_day.items():
            estimated[iso] += kwh
    out = []
    day = r.counted_since.date()
    while day <= r.until.date() and r.counted_since < r.until:
        iso = day.isoformat()
        out.append((iso, measured.get(iso, 0.0), estimated.get(iso, 0.0)))
        day += dt.timedelta(days=1)
    return out


def days_json(r: EnergyReport) -> list[dict[str, Any]]:
    return [{"day": d, "measured_kwh": round(m, 6), "estimated_kwh": round(e, 6)} for d, m, e in by_day(r)]


def _sampled(
    samples: Sequence[Sample], start: float, end: float, tz: dt.tzinfo | None
) -> tuple[float, float, list[Interval], float, float, defaultdict[str, float], defaultdict[str, float]]:
    """From one server's samples inside [start, end]: measured kWh, estimated kWh (on without a reading),
    the spans they cover, the hours on among them, the kWh drawn while off, and measured and estimated kWh per day."""
    measured = estimated = on_hours = off_kwh = 0.0
    covered: list[Interval] = []
    measured_days: defaultdict[str, float] = defaultdict(float)
    estimated_days: defaultdict[str, float] = defaultdict(float)
    for s in samples:
        if s.seconds <= 0:
            continue
        a, b = max(s.at - s.seconds, start), min(s.at, end)
        if b <= a:
            continue
        kwh = s.kwh * (b - a) / s.seconds
        if s.measured:
            measured += kwh
        else:
            estimated += kwh
        if s.power == "On":
            on_hours += (b - a) / 3600
        else:
            off_kwh += kwh
        covered.append((a, b))
        days = measured_days if s.measured else estimated_days
        for day, hours in hours_by_day([(a, b)], tz).items():
            days[day] += kwh * hours * 3600 / (b - a)
    return measured, estimated, covered, on_hours, off_kwh, measured_days, estimated_days


def watts_by_hour(samples: Sequence[Sample], since: float, hours: int) -> list[float | None]:
    """The lab's total draw per hour from ``since`` (PURE): each sampling round's servers summed, the rounds
    of an hour averaged; None for an hour with no sample (the service was not running)."""
    rounds: dict[float, float] = defaultdict(float)
    for s in samples:
        rounds[s.at] += s.watts
    per_hour: list[list[float]] = [[] for _ in range(hours)]
    for at, watts in rounds.items():
        i = int((at - since) // 3600)
        if 0 <= i < hours:
            per_hour[i].append(watts)
    return [sum(w) / len(w) if w else None for w in per_hour]


def totals(config: Config) -> dict[str, float]:
    """kWh per server over every sample ever taken: a counter (Prometheus, Home Assistant's energy sensor)."""
    with Samples.of(config) as store:
        return store.totals()


def recent_watts(config: Config, hours: int = 72, now: float | None = None) -> list[float | None]:
    """The lab's draw per hour over the last ``hours``, oldest first, from the journal's samples."""
    end = now if now is not None else dt.datetime.now().timestamp()
    since = end - hours * 3600
    with Samples.of(config) as store:
        samples = store.between(since, end)
    return watts_by_hour(samples, since, hours)


def _power_events(journal: Journal) -> dict[str, list[tuple[float, bool]]]:
    """Per server, (time, powered on?) from the journal's successful power steps, oldest first."""
    events: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for at, on, target in journal.power_steps():
        events[target].append((at, on))
    return {k: sorted(v) for k, v in events.items()}


def on_intervals(events: Sequence[tuple[float, bool]], start: float, end: float, power_now: Power) -> list[Interval]:
    """When the server was on inside [start, end] (PURE). Before the first event in it, the server is taken
    to be in the state that event left (or, with no event at all, the state it is in now)."""
    before = [on for when, on in events if when < start]
    inside = [(when, on) for when, on in events if start <= when <= end]
    if before:
        state = before[-1]
    elif inside:
        state = not inside[0][1]
    else:
        state = power_now is not Power.OFF
    out: list[Interval] = []
    cursor = start
    for when, on in [*inside, (end, state if not inside else inside[-1][1])]:
        if state and when > cursor:
            out.append((cursor, when))
        cursor, state = when, on
    return out


def subtract(intervals: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """``intervals`` without the time ``holes`` cover (PURE)."""
    out: list[Interval] = []
    ordered = sorted(holes)
    for a, b in intervals:
        cursor = a
        for h0, h1 in ordered:
            if h1 <= cursor or h0 >= b:
                continue
            if h0 > cursor:
                out.append((cursor, h0))
            cursor = max(cursor, h1)
        if cursor < b:
            out.append((cursor, b))
    return out


def hours_by_day(intervals: Sequence[Interval], tz: dt.tzinfo | None) -> dict[str, float]:
    """Hours per local date (ISO) that the intervals cover (PURE)."""
    hours: dict[str, float] = defaultdict(float)
    for a, b in intervals:
        begin = dt.datetime.fromtimestamp(a, tz)
        end = dt.datetime.fromtimestamp(b, tz)
        while begin < end:
            midnight = dt.datetime.combine(begin.date() + dt.timedelta(days=1), dt.time(), tzinfo=begin.tzinfo)
            upto = min(end, midnight)
            hours[begin.date().isoformat()] += (upto - begin).total_seconds() / 3600
            begin = upto
    return dict(hours)
