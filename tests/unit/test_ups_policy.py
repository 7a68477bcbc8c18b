"""The UPS policy (usecases/ups.Watch) fed hand-made readings: when a down, when an up, never twice."""

from __future__ import annotations

from typing import Any

from labswitch.config import Ups
from labswitch.nut import UpsReading
from labswitch.plan import Intent
from labswitch.usecases.ups import Watch


def ups(**kw: Any) -> Ups:
    return Ups.model_validate({"url": "nut://upsmon@nas/ups1", "on_battery_after": "2m", **kw})


def r(status: str, charge: float = 100, runtime: float = 1800) -> UpsReading:
    return UpsReading("ups1", frozenset(status.split()), charge, runtime)


def test_on_battery_past_the_delay_takes_the_lab_down_once_even_when_power_flaps() -> None:
    w = Watch(ups())
    assert w.feed(r("OB DISCHRG"), 0) is None
    assert w.feed(r("OB DISCHRG"), 119) is None
    down = w.feed(r("OB DISCHRG"), 120)
    assert down is not None and down.intent is Intent.DOWN and down.reason == "on battery for 120s"
    assert w.feed(r("OL"), 130) is None and w.feed(r("OB"), 131) is None and w.feed(r("OB LB"), 400) is None, "never a second down"
    assert w.feed(r("OL CHRG"), 500) is None, "no up unless ups.up_after is set"


def test_a_short_outage_does_nothing_and_restarts_the_clock() -> None:
    w = Watch(ups())
    assert w.feed(r("OB"), 0) is None and w.feed(r("OL"), 60) is None
    assert w.feed(r("OB"), 100) is None and w.feed(r("OB"), 219) is None
    assert w.feed(r("OB"), 220) is not None


def test_low_battery_or_little_runtime_is_down_at_once() -> None:
    assert (d := Watch(ups()).feed(r("OB LB"), 0)) is not None and d.reason == "low battery (LB)"
    d = Watch(ups(min_runtime="5m")).feed(r("OB", runtime=240), 0)
    assert d is not None and "runtime 240s under ups.min_runtime 300s" in d.reason


def test_power_back_with_enough_charge_for_up_after_brings_it_up() -> None:
    w = Watch(ups(up_after="10m", up_min_charge=50))
    assert w.feed(r("OB LB"), 0) is not None
    assert w.feed(r("OL CHRG", charge=30), 100) is None, "not enough charge yet"
    assert w.feed(r("OL CHRG", charge=60), 200) is None
    assert w.feed(r("OL CHRG", charge=60), 799) is None
    up = w.feed(r("OL", charge=70), 800)
    assert up is not None and up.intent is Intent.UP and up.reason == "power back for 600s, charge 70%"
    assert w.feed(r("OL"), 900) is None, "once"
