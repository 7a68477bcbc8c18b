"""`labswitch ups status | watch`: a UPS watched through NUT takes the lab down when the power is gone, in
order and with every safety rule, and (when enabled) brings it back when the power returns.

The policy is a small state machine (Watch), fed a reading and the time: pure, so its rules are unit
tests. The loop around it reads the UPS every ``ups.poll_interval`` and runs the down or up it asks
for through the same use case as `labswitch down|up` (the run lock, the journal with the reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

from labswitch.cancel import Cancel
from labswitch.config import Config, Ups
from labswitch.errors import AuthenticationFailed, ConfigError, EndpointError, Interrupted, LabswitchError
from labswitch.nut import NutClient, UpsReading, parse_url
from labswitch.plan import Intent
from labswitch.run import EventSink
from labswitch.usecases import power

LOCK_WAIT = 300.0  # a UPS down waits this long for a run in progress (a user's up) before it is refused


@dataclass(frozen=True)
class Decision:
    intent: Intent
    reason: str


@dataclass
class Watch:
    """What the UPS's state asks for, once: a down when on battery for ``on_battery_after`` (or at once
    on low battery, or when the runtime left is under ``min_runtime``); after it, an up when the power
    has been back, with the charge over ``up_min_charge``, for ``up_after`` (if set). Flapping power
    starts no second down: the lab stays "down by the UPS" until the up."""

    policy: Ups
    battery_since: float | None = None
    back_since: float | None = None
    down: bool = False  # a down was started by this watch and no up since

    def feed(self, r: UpsReading, now: float) -> Decision | None:
        if r.on_battery or r.low_battery:
            self.back_since = None
            self.battery_since = self.battery_since if self.battery_since is not None else now
            if self.down:
                return None
            reason = self._why_down(r, now)
            if reason is not None:
                self.down = True
                return Decision(Intent.DOWN, reason)
            return None
        self.battery_since = None
        if not r.on_line or not self.down or self.policy.up_after is None:
            return None
        if r.charge is not None and r.charge < self.policy.up_min_charge:
            self.back_since = None
            return None
        self.back_since = self.back_since if self.back_since is not None else now
        if now - self.back_since >= self.policy.up_after:
            self.down = False
            charge = f", charge {r.charge:.0f}%" if r.charge is not None else ""
            return Decision(Intent.UP, f"power back for {now - self.back_since:.0f}s{charge}")
        return None

    def _why_down(self, r: UpsReading, now: float) -> str | None:
        if r.low_battery:
            return "low battery (LB)"
        if self.policy.min_runtime and r.runtime is not None and r.runtime < self.policy.min_runtime:
            return f"battery runtime {r.runtime:.0f}s under ups.min_runtime {self.policy.min_runtime:.0f}s"
        held = now - self.battery_since if self.battery_since is not None else 0.0
        if held >= self.policy.on_battery_after:
            return f"on battery for {held:.0f}s"
        return None


def _ups(config: Config) -> Ups:
    if config.ups is None:
        raise ConfigError('no [ups] in the config: add [ups] url = "nut://USER@HOST/UPS" and password')
    return config.ups


def read(config: Config) -> UpsReading:
    """The UPS now (one NUT session)."""
    ups = _ups(config)
    password = ups.password.get_secret_value() if isinstance(ups.password, SecretStr) else None  # resolved on load
    with NutClient(parse_url(ups.url), password, ups.timeout) as client:
        return client.reading()


def watch(
    config: Config,
    sink: Callable[[], tuple[EventSink, Callable[[], None]]],
    note: Callable[[str], None],
    cancel: Cancel,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Until cancelled: read the UPS, and run what the policy asks (each run's events to a fresh ``sink()``:
    the sink and what ends it). A wrong password ends the watch (it would not change by itself); an
    unreachable UPS is said once, and read again."""
    ups = _ups(config)
    state = Watch(ups)
    last: frozenset[str] | None = None
    unreachable = False
    while not cancel.is_set():
        try:
            reading = read(config)
        except AuthenticationFailed:
            raise
        except EndpointError as exc:
            if not unreachable:
                note(f"{exc}; reading it again every {ups.poll_interval:.0f}s")
            unreachable = True
            cancel.sleep(ups.poll_interval)
            continue
        if unreachable or reading.status != last:
            note(describe(reading))
        unreachable, last = False, reading.status
        decision = state.feed(reading, clock())
        if decision is not None:
            on_event, done = sink()
            try:
                _run(config, ups, decision, on_event, note, cancel)
            finally:
                done()
        cancel.sleep(ups.poll_interval)


def _run(config: Config, ups: Ups, decision: Decision, on_event: EventSink, note: Callable[[str], None], cancel: Cancel) -> None:
    """The down or up the UPS asks for, through the usual use case: a refusal or a failure is said, not fatal."""
    note(f"UPS: {decision.reason}: {decision.intent}")
    request = power.Request(
        decision.intent,
        tuple(ups.groups),
        restore=decision.intent is Intent.UP,
        whole_lab=ups.whole_lab and decision.intent is Intent.DOWN,
        lock_wait=LOCK_WAIT,
        reason=f"ups: {decision.reason}",
    )
    try:
        outcome = power.execute(config, request, lambda plan: True, on_event, cancel, on_wait=note)
    except Interrupted:
        raise
    except LabswitchError as exc:
        note(f"UPS {decision.intent} not done: {exc}")
        return
    note(f"UPS {decision.intent} {'done' if outcome.ok else 'finished with failures'} (run {outcome.run_id})")


def describe(r: UpsReading) -> str:
    words = {"OL": "on line", "OB": "on battery", "LB": "low battery", "CHRG": "charging", "DISCHRG": "discharging"}
    order = list(words)  # the power first, then the battery
    status = ", ".join(words.get(s, s) for s in sorted(r.status, key=lambda s: (order.index(s) if s in order else len(order), s)))
    status = status or "no status"
    charge = f", charge {r.charge:.0f}%" if r.charge is not None else ""
    runtime = f", runtime {r.runtime / 60:.0f} min" if r.runtime is not None else ""
    return f"UPS {r.name}: {status}{charge}{runtime}"
