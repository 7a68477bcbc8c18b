"""On-hours per day from journal power events (pure computation)."""

from __future__ import annotations

import datetime as dt

import pytest

from labswitch.bmc import Power
from labswitch.usecases.energy import _on_hours_by_day

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def at(days_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days_ago)


def test_no_events_follows_the_state_now() -> None:
    assert sum(_on_hours_by_day([], NOW, Power.ON).values()) == pytest.approx(720)
    assert sum(_on_hours_by_day([], NOW, Power.OFF).values()) == 0


def test_off_at_night_on_by_day() -> None:
    # down every evening at 18:00, up every morning at 08:00, for the whole window
    events = []
    for d in range(31, 0, -1):
        day = (NOW - dt.timedelta(days=d)).date()
        events.append((dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC), True))
        events.append((dt.datetime.combine(day, dt.time(18), tzinfo=dt.UTC), False))
    hours = _on_hours_by_day(events, NOW, Power.OFF)
    assert hours["2026-11-20"] == pytest.approx(10)
    assert sum(hours.values()) == pytest.approx(10 * 29 + 6)  # the window starts at 12:00 thirty days ago


def test_first_event_in_window_tells_the_state_before_it() -> None:
    hours = _on_hours_by_day([(at(10), False)], NOW, Power.OFF)  # went off 10 days ago: on before
    assert sum(hours.values()) == pytest.approx(20 * 24)
