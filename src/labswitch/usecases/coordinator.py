"""`labswitch serve`'s one reader of the lab (as Home Assistant's DataUpdateCoordinator polls once for every
entity): every ``serve.poll_interval`` one round — vCenter's status and every server's power and draw —
over one driver per BMC kept open while the service runs (one connection, at most one Redfish session:
an iDRAC has few session slots). The metrics, MQTT, the page, the API's status and the energy samples
read its latest round; none of them reads the lab itself.

While a run holds the lock (this service's or the CLI's) a round is taken every RUN_POLL seconds, and
one at once when the run ends, so what is shown follows the run. A round that cannot read vCenter is
said once at WARNING, with its cause, and so is the round that reads it again; a BMC likewise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from labswitch.bmc import Driver, Power
from labswitch.config import Config
from labswitch.usecases import bmc
from labswitch.usecases.service import Service
from labswitch.usecases.status import StatusReport, with_readings

log = logging.getLogger("labswitch.serve")
RUN_POLL = 2.0  # seconds between rounds while a run is in progress


@dataclass(frozen=True)
class Reading:
    """One round: when it was taken, vCenter's status (None: not read, ``error`` says why) and each server's
    (power, watts); a server whose BMC did not answer is Unknown in the status and absent from ``power``."""

    at: float
    report: StatusReport | None
    power: dict[str, tuple[Power, float | None]] = field(default_factory=dict)
    error: str | None = None


class Coordinator:
    def __init__(self, config: Config, service: Service, interval: float | None = None) -> None:
        self.config = config
        self.service = service
        self.interval = interval if interval is not None else config.serve.poll_interval
        self._drivers: dict[str, Driver] | None = None  # opened on the first round, closed by stop()
        self._round_lock = threading.Lock()  # one round at a time; callers that wait share it
        self._state = threading.Lock()
        self._latest: Reading | None = None
        self._stale = True  # the lab changed (a run started or ended) since the latest round
        self._failing: set[str] = set()  # "vcenter" and the servers whose last round failed: said once
        self._listeners: list[Callable[[Reading], None]] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading ---------------------------------------------------------------------
    def latest(self) -> Reading | None:
        """The latest round, however old, without starting one (None before the first): for readers that must never
        wait on the lab (a Prometheus scrape)."""
        with self._state:
            return self._latest

    def read(self, max_age: float | None = None) -> Reading:
        """The latest round if it is younger than ``max_age`` (default: the poll interval) and the lab has not
        changed since; else a new round (a caller arriving during a round waits for it and shares it)."""
        limit = self.interval if max_age is None else max_age
        with self._state:
            latest, stale = self._latest, self._stale
        if latest is not None and not stale and time.time() - latest.at <= limit:
            return latest
        asked = time.time()
        with self._round_lock:
            with self._state:
                if self._latest is not None and self._latest.at >= asked and not self._stale:
                    return self._latest  # taken while this caller waited for the lock
            return self._round()

    def changed(self) -> None:
        """The lab changed (a run of this service started or ended): the next read takes a new round, and the
        loop takes one soon."""
        with self._state:
            self._stale = True
        self._wake.set()

    def subscribe(self, listener: Callable[[Reading], None]) -> None:
        """``listener(reading)`` after every round (MQTT publishes the states then)."""
        self._listeners.append(listener)

    def _round(self) -> Reading:
        with self._state:
            self._stale = False
        if self._drivers is None:
            self._drivers = bmc.drivers_for(self.config, self.config.servers)
        report, power, error = with_readings(self.config, self._drivers)
        reading = Reading(time.time(), report, power, error)
        self._say(reading)
        with self._state:
            self._latest = reading
        for listener in list(self._listeners):
            try:
                listener(reading)
            except Exception:
                log.exception("a listener of the lab's readings failed")
        return reading

    def _say(self, reading: Reading) -> None:
        """A failure once, when it begins, and its end once."""
        if reading.report is not None:
            errors = {h.name: h.bmc_error or "" for h in reading.report.hosts if h.bmc_error}
        else:
            errors = {s.name: "no answer" for s in self.config.servers if s.name not in reading.power}
        now_failing = set(errors) | ({"vcenter"} if reading.error is not None else set())
        for what in sorted(now_failing - self._failing):
            if what == "vcenter":
                log.warning("lab not read: %s; the page, metrics and MQTT show the BMCs alone until it answers", reading.error)
            else:
                log.warning("server %s: BMC not answering (%s); its power is unknown", what, errors[what])
        for what in sorted(self._failing - now_failing):
            log.warning("%s answers again", "vCenter" if what == "vcenter" else f"server {what}: BMC")
        self._failing = now_failing

    # -- the loop --------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lab-coordinator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._round_lock:
            for driver in (self._drivers or {}).values():
                driver.close()
            self._drivers = None

    def _loop(self) -> None:
        running = False
        while not self._stop.is_set():
            holder = self.service.running()
            if running and holder is None:
                self.changed()  # a run (maybe the CLI's) ended: what it changed is read at once
            running = holder is not None
            try:
                self.read(RUN_POLL if running else self.interval)
            except Exception:
                log.exception("reading the lab failed")
            with self._state:
                age = time.time() - self._latest.at if self._latest else 0.0
            self._wake.wait(max(0.2, (RUN_POLL if running else self.interval) - age))
            self._wake.clear()
