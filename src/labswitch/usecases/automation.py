"""What `labswitch serve` does by itself: energy samples every energy.sample_interval (and, with them,
idle auto-down), and the runs of [[serve.schedules]]. Every run it starts goes through the service,
under the same run lock as any other, journaled with its reason ("idle: ...", "schedule: ...")."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from labswitch.config import Config, ServeSchedule
from labswitch.errors import LabswitchError
from labswitch.journal import Journal
from labswitch.plan import Intent
from labswitch.samples import Samples
from labswitch.schedule import next_run
from labswitch.usecases import idle
from labswitch.usecases.coordinator import Coordinator
from labswitch.usecases.sampling import next_samples
from labswitch.usecases.service import Service

log = logging.getLogger("labswitch.serve")


def duration(seconds: float) -> str:
    """3h, 1h30m, 45m, 10s: the form the config takes."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


@dataclass(frozen=True)
class Upcoming:
    schedule: ServeSchedule
    at: dt.datetime


class Automation:
    def __init__(self, config: Config, service: Service, coordinator: Coordinator) -> None:
        self.config = config
        self.service = service
        self.coordinator = coordinator
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        after = config.policy.idle_down_after
        self.idle = idle.IdleClock(after) if after is not None else None
        self.last_sample: float | None = None

    def start(self) -> None:
        if self.config.energy.sample_interval:
            self._spawn("energy-samples", self._sample_loop)
        if self.config.serve.schedules:
            self._spawn("schedules", self._schedule_loop)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def countdowns(self) -> dict[str, idle.Countdown]:
        return self.idle.countdowns() if self.idle is not None else {}

    def upcoming(self) -> list[Upcoming]:
        """Each schedule's next run (local time, with its offset), soonest first."""
        now = dt.datetime.now()
        return sorted((Upcoming(s, next_run(s.at, now).astimezone()) for s in self.config.serve.schedules), key=lambda u: u.at)

    def sample(self) -> None:
        """One round: every server's draw into the journal; idleness observed (and due groups taken down)."""
        interval = self.config.energy.sample_interval
        reading = self.coordinator.read(min(interval, self.coordinator.interval))  # without vCenter: the BMCs' draw alone
        now, report, readings = reading.at, reading.report, reading.power
        with Samples.of(self.config) as store:
            store.add(next_samples(readings, store.last(), now, interval, self.config.energy.server_watts))
        with Journal.of(self.config) as journal:
            last_runs: dict[str, float] = {}
            for run in journal.runs(200):
                for group in run.groups if run.outcome != "refused" else ():
                    last_runs.setdefault(group, run.finished or now)  # a run still going: the clock waits for its end
        self.last_sample = now
        if self.idle is not None:
            for group in self.idle.observe(now, idle.observe(self.config, report, last_runs)):
                self._idle_down(group)

    def _idle_down(self, group: str) -> None:
        assert self.idle is not None
        reason = f"idle: no VM over {self.config.policy.idle_cpu_mhz:g} MHz for {duration(self.idle.after)}"
        try:
            self.service.start(Intent.DOWN, [group], reason=reason)  # the service logs it
            self.idle.restart(group)
        except LabswitchError as exc:  # another run in progress, a refusal: said; tried again next round
            log.warning("%s: idle auto-down not started: %s", group, exc)

    def _schedule_loop(self) -> None:
        """Local wall-clock time, naive: "07:30" stays 07:30 across a daylight-saving change. Each round fires
        what fell due since the last (a run that took long delays, never loses, the next one)."""
        schedules = self.config.serve.schedules
        checked = dt.datetime.now()
        while not self._stop.is_set():
            now = dt.datetime.now()
            for s in schedules:
                if next_run(s.at, checked) <= now:
                    self._scheduled(s)
            checked = now
            soonest = min(next_run(s.at, now) for s in schedules)
            self._stop.wait(min(max((soonest - now).total_seconds(), 0.05), 30))  # and the clock read again twice a minute

    def _scheduled(self, s: ServeSchedule) -> None:
        reason = f"schedule: {s.action} {s.at}"
        try:
            self.service.start(Intent(s.action), s.groups, restore=s.restore, reason=reason)  # the service logs it
        except LabswitchError as exc:
            log.warning("%s: not started: %s", reason, exc)
        except Exception:  # a bug: logged whole, and the schedules go on
            log.exception("%s: not started", reason)

    def _sample_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except LabswitchError as exc:  # the journal cannot be written, ...: one line; the next round comes
                log.warning("energy sample failed: %s", exc)
            except Exception:  # a bug: logged whole
                log.exception("energy sample failed")
            self._stop.wait(self.config.energy.sample_interval)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
