"""Idle auto-down's clock (pure): idle at every sample for the whole time, reset by activity and by runs."""

from __future__ import annotations

import datetime as dt

from labswitch.schedule import next_run
from labswitch.usecases.idle import IdleClock, Observation

H = 3600.0


def idle(group: str = "lab", on: bool = True, quiet: bool | None = True, last_run: float | None = None) -> Observation:
    return Observation(group, on=on, idle=quiet, last_run=last_run)


def test_due_once_idle_for_the_whole_time() -> None:
    clock = IdleClock(3 * H)
    assert clock.observe(0, [idle()]) == []
    assert clock.observe(2 * H, [idle()]) == []
    assert clock.countdowns()["lab"].down_at == 3 * H
    assert clock.observe(3 * H, [idle()]) == ["lab"]


def test_activity_an_unread_round_or_off_restart_the_clock() -> None:
    for interruption in (idle(quiet=False), idle(quiet=None), idle(on=False)):
        clock = IdleClock(3 * H)
        clock.observe(0, [idle()])
        clock.observe(2 * H, [interruption])
        assert "lab" not in clock.countdowns()
        assert clock.observe(3 * H, [idle()]) == []
        assert clock.countdowns()["lab"].down_at == 6 * H


def test_a_manual_up_restarts_it_from_the_run() -> None:
    clock = IdleClock(3 * H)
    clock.observe(0, [idle()])
    assert clock.observe(3.5 * H, [idle(last_run=2 * H)]) == []  # someone ran `up` at 2 h
    assert clock.countdowns()["lab"].down_at == 5 * H
    assert clock.observe(5 * H, [idle(last_run=2 * H)]) == ["lab"]


def test_each_group_has_its_own_clock() -> None:
    clock = IdleClock(H)
    clock.observe(0, [idle("a"), idle("b", quiet=False)])
    assert clock.observe(H, [idle("a"), idle("b")]) == ["a"]
    clock.restart("a")
    assert set(clock.countdowns()) == {"b"}


def test_next_run_of_a_schedule() -> None:
    monday = dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)  # a Monday, 07:00
    assert next_run("Mon..Fri 07:30", monday) == monday.replace(minute=30)
    assert next_run("Mon..Fri 07:00", monday) == monday + dt.timedelta(days=1)  # strictly after
    assert next_run("Sat,Sun 09:00", monday) == dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
    assert next_run("06:00", monday) == dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
