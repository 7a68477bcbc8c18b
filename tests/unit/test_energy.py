"""Energy arithmetic (pure): on-intervals from journal power events, what samples cover, kWh per day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import tomli_w

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.config.load import parse
from labswitch.journal import Journal
from labswitch.samples import Sample, Samples
from labswitch.usecases import energy
from labswitch.usecases.energy import counted_from, hours_by_day, on_intervals, subtract, watts_by_hour
from labswitch.usecases.sampling import next_samples

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()
DAY = 86400.0
START = NOW - 30 * DAY


def hours(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals) / 3600


def test_no_events_follows_the_state_now() -> None:
    assert hours(on_intervals([], START, NOW, Power.ON)) == pytest.approx(720)
    assert on_intervals([], START, NOW, Power.OFF) == []


def test_off_at_night_on_by_day() -> None:
    # down every evening at 18:00, up every morning at 08:00, for the whole window
    events = []
    for d in range(31, 0, -1):
        day = (dt.datetime.fromtimestamp(NOW, UTC) - dt.timedelta(days=d)).date()
        events.append((dt.datetime.combine(day, dt.time(8), tzinfo=UTC).timestamp(), True))
        events.append((dt.datetime.combine(day, dt.time(18), tzinfo=UTC).timestamp(), False))
    on = on_intervals(events, START, NOW, Power.OFF)
    assert hours_by_day(on, UTC)["2026-11-20"] == pytest.approx(10)
    assert hours(on) == pytest.approx(10 * 29 + 6)  # the window starts at 12:00 thirty days ago


def test_first_event_in_window_tells_the_state_before_it() -> None:
    on = on_intervals([(NOW - 10 * DAY, False)], START, NOW, Power.OFF)  # went off 10 days ago: on before
    assert hours(on) == pytest.approx(20 * 24)


def test_sampled_time_is_not_estimated_again() -> None:
    on = [(START, NOW)]
    covered = [(NOW - 2 * DAY, NOW - DAY), (NOW - 1.5 * DAY, NOW - 0.5 * DAY)]  # overlapping samples' spans
    assert hours(subtract(on, covered)) == pytest.approx(720 - 36)
    assert subtract([(0.0, 10.0)], [(2.0, 4.0), (6.0, 20.0)]) == [(0.0, 2.0), (4.0, 6.0)]


def test_hours_split_at_local_midnight() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    start = dt.datetime(2026, 11, 20, 22, 0, tzinfo=cet).timestamp()
    split = hours_by_day([(start, start + 4 * 3600)], cet)
    assert split == {"2026-11-20": pytest.approx(2), "2026-11-21": pytest.approx(2)}


def test_samples_account_for_the_time_since_the_last() -> None:
    last = {"a": Sample(NOW - 300, "a", "On", 100.0, True, 300, 0.0)}
    readings = {"a": (Power.ON, 140.0), "b": (Power.OFF, None), "c": (Power.ON, None), "d": (Power.UNKNOWN, None)}
    got = {s.server: s for s in next_samples(readings, last, NOW, 300, 80.0)}
    assert got["a"].seconds == 300 and got["a"].kwh == pytest.approx(120 * 300 / 3.6e6) and got["a"].measured
    assert got["b"].watts == 0 and got["b"].measured and got["b"].seconds == 0  # off, no reading: 0 W; no earlier sample
    assert got["c"].watts == 80 and not got["c"].measured  # on without a reading: energy.server_watts, estimated
    assert "d" not in got  # nothing known: no sample


def test_a_gap_in_sampling_is_not_bridged() -> None:
    last = {"a": Sample(NOW - 3600, "a", "On", 100.0, True, 300, 0.0)}  # serve was stopped for an hour
    (sample,) = next_samples({"a": (Power.ON, 100.0)}, last, NOW, 300, 80.0)
    assert sample.seconds == 0 and sample.kwh == 0


def test_counting_starts_at_the_labs_first_record() -> None:
    hour_ago = NOW - 3600
    assert counted_from(START, NOW, hour_ago, None) == hour_ago, "a lab an hour old: nothing before its first run"
    assert counted_from(START, NOW, hour_ago, hour_ago - 60) == hour_ago - 60, "or its first sample, if earlier"
    assert counted_from(START, NOW, START - DAY, None) == START, "an older lab: the period as asked"
    assert counted_from(START, NOW, None, None) == NOW, "no record at all: nothing counted"


def test_watts_by_hour_sums_servers_averages_rounds_and_leaves_gaps() -> None:
    since = NOW - 3 * 3600
    samples = [
        Sample(since + 60, "a", "On", 100.0, True, 0, 0.0),
        Sample(since + 60, "b", "On", 50.0, True, 0, 0.0),
        Sample(since + 360, "a", "On", 120.0, True, 300, 0.0),
        Sample(since + 360, "b", "Off", 0.0, True, 300, 0.0),
        Sample(since + 2 * 3600 + 5, "a", "Off", 10.0, True, 300, 0.0),
    ]
    assert watts_by_hour(samples, since, 3) == [pytest.approx((150 + 120) / 2), None, 10.0]


def test_the_watts_line_breaks_where_nothing_was_sampled() -> None:
    from labswitch.web.charts import watts_line

    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    chart = watts_line([100.0, 50.0, None, 100.0, 100.0, 100.0, None], now)
    assert chart is not None
    assert [len(line.split()) for line in chart["lines"]] == [2, 3], "a gap splits the line"
    assert [p["label"] for p in chart["points"]][:2] == ["Mon 05:00: 100 W", "Mon 06:00: 50 W"]
    assert [a["label"] for a in chart["axis"]] == ["0 W", "50 W", "100 W"]
    assert chart["ticks"][-1]["label"] == "now"
    assert watts_line([None, None], now) is None, "nothing sampled: no chart"


def test_day_bars_leave_days_before_the_lab_empty() -> None:
    from labswitch.web.charts import day_bars, nice_top

    today = dt.date(2026, 11, 23)
    chart = day_bars([("2026-11-23", 1.2, 0.3)], today)
    assert [b["counted"] for b in chart["bars"]] == [False] * 13 + [True], "a lab one day old: one bar, today's"
    assert chart["bars"][-1]["label"] == "Mon Nov 23: 1.50 kWh (1.20 measured, 0.30 estimated)"
    assert [a["label"] for a in chart["axis"]] == ["0 kWh", "1 kWh", "2 kWh"]
    small = day_bars([("2026-11-23", 0.004, 0.0)], today)
    assert [a["label"] for a in small["axis"]] == ["0 Wh", "2.5 Wh", "5 Wh"], "under 1 kWh: Wh, never 0.00"
    assert (nice_top(0.37), nice_top(1.5), nice_top(7), nice_top(0)) == (0.5, 2, 10, 1)


def lab_config(state: Path) -> Config:
    raw = {
        "state_dir": str(state),
        "vcenter": {"url": "vcsa.lab.local", "user": "administrator@vsphere.local", "password": "x"},
        "groups": {"payload": {}},
        "servers": [
            {
                "name": n,
                "esxi": f"{n}.lab.local",
                "group": "payload",
                "bmc": {"driver": "redfish", "address": f"{n}-oob", "user": "root", "password": "x"},
            }
            for n in ("a", "b")
        ],
        "energy": {"server_watts": 80},
    }
    return parse(tomli_w.dumps(raw).encode(), source="test", resolve_secrets=False)


def test_the_past_is_never_valued_at_the_present_draw(tmp_path: Path) -> None:
    """A lab sampled for an hour: a host booting now (500 W read) changes neither this hour's kWh nor its estimate."""
    config = lab_config(tmp_path)
    now = dt.datetime.now().astimezone().replace(microsecond=0)
    t0 = now.timestamp() - 3600
    with Samples.of(config) as store:
        store.add(
            Sample(t0 + i * 300, n, "On", 100.0, True, 300 if i else 0, (100.0 * 300 / 3.6e6) if i else 0.0)
            for i in range(13)
            for n in "ab"
        )
    quiet = energy.report(config, until=now, readings={"a": (Power.ON, 100.0), "b": (Power.ON, 100.0)})
    booting = energy.report(config, until=now, readings={"a": (Power.ON, 100.0), "b": (Power.ON, 500.0)})
    assert quiet.kwh == booting.kwh == pytest.approx(2 * 0.1)  # two servers, 100 W, one hour: measured, nothing else
    assert quiet.always_on_kwh == booting.always_on_kwh == pytest.approx(0.2)
    assert booting.total_watts == 600, "the draw now is shown, beside the figures"
    assert quiet.counted_since.timestamp() == t0, "a lab an hour old is counted from its first sample"
    assert [d for d, _, _ in energy.by_day(quiet)] == sorted({dt.date.fromtimestamp(t0).isoformat(), now.date().isoformat()})


def test_a_lab_with_no_record_counts_nothing_and_says_so(tmp_path: Path) -> None:
    r = energy.report(lab_config(tmp_path), readings={"a": (Power.ON, 100.0), "b": (Power.ON, 100.0)})
    assert r.kwh == 0 and r.always_on_kwh == 0 and energy.by_day(r) == []
    assert any("nothing counted yet" in n for n in r.notes)


def test_a_down_saves_against_the_same_counted_period(tmp_path: Path) -> None:
    """Down 2 days ago (first record), up 1 day ago: one day off, one day on; always on: two days."""
    config = lab_config(tmp_path)
    now = dt.datetime.now().astimezone()
    with Journal.of(config) as journal:
        for intent, action, effect, ago in (("down", "confirm-off", "off", 2 * DAY), ("up", "bmc-power-on", "on", DAY)):
            run = journal.start_run(intent, ["payload"])
            db = journal._db
            db.execute("UPDATE runs SET started = ? WHERE id = ?", (now.timestamp() - ago - 10, run))
            for server in "ab":
                journal.add_step(run, intent, action, server, "ok", "", 1.0, server=server, effect=effect)
            db.execute("UPDATE steps SET at = ? WHERE run_id = ?", (now.timestamp() - ago, run))
            journal.finish(run, "ok")
    r = energy.report(config, until=now, readings={"a": (Power.ON, 100.0), "b": (Power.ON, 100.0)})
    assert r.counted_since.timestamp() == pytest.approx(now.timestamp() - 2 * DAY - 10)
    assert r.estimated_kwh == pytest.approx(2 * 80 * 24 / 1000, rel=0.01), "on one day of two, at server_watts (never sampled)"
    assert r.saving == pytest.approx(r.always_on_cost / 2, rel=0.01)


def test_a_server_never_off_saved_nothing_however_its_draw_varied(tmp_path: Path) -> None:
    config = lab_config(tmp_path)
    now = dt.datetime.now().astimezone().replace(microsecond=0)
    t0 = now.timestamp() - 3600
    with Samples.of(config) as store:  # an hour on: 400 W, then 100 W (its mean on draw: 250 W)
        store.add(
            Sample(t0 + i * 300, "a", "On", w, True, 300 if i else 0, w * 300 / 3.6e6 if i else 0.0)
            for i, w in enumerate([400.0] * 7 + [100.0] * 6)
        )
    r = energy.report(config, until=now, readings={"a": (Power.ON, 100.0), "b": (Power.OFF, 0.0)})
    a = next(s for s in r.servers if s.server == "a")
    assert a.always_on_kwh == pytest.approx(a.kwh) and a.off_hours == pytest.approx(0, abs=1e-6)
    assert r.saving >= 0
