"""What `labswitch serve` does, in the lab's words, for any adapter (the REST API, later the page and MQTT):
start a down or up in the background and say its run id at once, tell a run's progress from the journal,
and stop cleanly. One run at a time: the same run lock as the CLI (a second gets RunInProgress naming the
run that holds it)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labswitch import lock
from labswitch.cancel import Cancel
from labswitch.config import Config
from labswitch.errors import EndpointError, Interrupted, LabswitchError, RunInProgress
from labswitch.journal import Journal, RunRecord, StepRecord, state_base
from labswitch.plan import Action, Intent, Plan, Step, slow_after, target_groups
from labswitch.render.live import HostRow, RunView, clock, power_by
from labswitch.usecases import lifecycle, power

log = logging.getLogger("labswitch.serve")  # the service's activity: every run it starts, and how it ended
START_TIMEOUT = 120.0  # planning reads vCenter and every BMC: the run id is known within this
WORKER_TAIL = 10.0  # a run's worker after the run lock is released: its end told to the view, the log, listeners


@dataclass(frozen=True)
class Started:
    run_id: str | None  # None: nothing to do
    nothing_to_do: bool = False


@dataclass(frozen=True)
class Progress:
    run: RunRecord
    steps: tuple[StepRecord, ...]

    @property
    def finished(self) -> bool:
        return self.run.outcome not in ("running",)


class Service:
    """The long-running process's runs: at most one, in a worker thread, cancelled on stop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._cancel: Cancel | None = None
        self._worker: threading.Thread | None = None
        self._mutex = threading.Lock()
        self._view: tuple[str, RunView] | None = None  # the run this service started last, as its hosts go
        self._view_lock = threading.Lock()  # the view is fed from the run's workers and read by the page
        self._listeners: list[Callable[[], None]] = []

    def start(self, intent: Intent, groups: Sequence[str] = (), restore: bool = False, reason: str = "serve") -> Started:
        """Plan and start a run; back as soon as it is journaled. RunInProgress (naming the run), SafetyRefusal,
        ConfigError and endpoint errors come back as they would from the CLI, before anything changed."""
        target_groups(self.config, groups, intent)  # an unknown group fails here, at once
        holder = lock.holder(lock.lock_path(state_base(self.config.state_dir), self.config.lab_id))
        if holder is not None:
            raise RunInProgress(f"another run is in progress: {holder.describe()}")
        answers: queue.Queue[tuple[str, Any]] = queue.Queue()
        cancel = Cancel()
        servers = self.config.servers
        view = RunView({s.name: s.group for s in servers}, slow_after(self.config.policy), power_by=power_by(servers))

        def on_event(kind: str, data: Any) -> None:
            with self._view_lock:
                view.feed(kind, data)
                if kind == "run":
                    self._view = (str(data), view)
            if kind == "run":
                answers.put(("run", data))
                self._changed()

        def work() -> None:
            try:
                request = power.Request(intent, tuple(groups), restore=restore, reason=reason)
                try:
                    outcome = power.execute(self.config, request, lambda plan: True, on_event, cancel)
                finally:
                    with self._view_lock:
                        view.finish()
                    self._changed()
                answers.put(("done", outcome.run_id if outcome.results else None))
                if outcome.results and outcome.run_id:
                    self._log_end(outcome.run_id)
            except Interrupted:
                answers.put(("done", None))
            except LabswitchError as exc:
                answers.put(("error", exc))
            except Exception as exc:  # noqa: BLE001 - a bug: said to the caller, not lost in a thread
                answers.put(("error", exc))

        with self._mutex:
            if self._worker is not None and self._worker.is_alive():
                # The run lock is free: the last run ended and its worker only tells that (its view, its log line).
                self._worker.join(WORKER_TAIL)
                if self._worker.is_alive():
                    raise RunInProgress("another run started by this service is in progress")
            self._cancel = cancel
            self._worker = threading.Thread(target=work, name=f"serve-{intent}", daemon=True)
            self._worker.start()
        try:
            kind, data = answers.get(timeout=START_TIMEOUT)
        except queue.Empty as exc:
            raise EndpointError(
                f"planning took over {START_TIMEOUT:g} s (vCenter or a BMC slow to answer); the run may still start: "
                "see the run lock and the history"
            ) from exc
        if kind == "error":
            raise data
        what = f"{intent} of {', '.join(groups) or 'every group not always_on'}"
        if kind == "run":
            log.info("%s started (run %s; %s)", what, data, reason)
            return Started(str(data))
        log.info("%s: nothing to do (%s)", what, reason)
        return Started(data, nothing_to_do=data is None)

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` when a run of this service starts and when it ends (the coordinator reads the lab again)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def _log_end(self, run_id: str) -> None:
        progress = self.progress(run_id)
        if progress is not None:
            run = progress.run
            took = (run.finished or time.time()) - run.started
            log.info("run %s (%s of %s) ended: %s after %s", run_id, run.intent, ", ".join(run.groups), run.outcome, clock(took))

    def progress(self, run_id: str) -> Progress | None:
        with Journal.of(self.config) as journal:
            record = journal.run(run_id)
            if record is None:
                return None
            return Progress(record, tuple(journal.steps(run_id)))

    def hosts(self, run_id: str) -> list[HostRow] | None:
        """Each host of a run, as the CLI's live table shows it: what it does or waits for ("esx11-vm03: shutting
        down 00:45", "vCLS retreat mode (Cluster1) 00:03"), its VMs done and its clock. A run this service started
        is followed as it goes; any other (the CLI's, a past one) is replayed from the journal: its plan and each
        step's start and end (a step under way shows once it ends). None: no plan recorded (a run from before)."""
        with self._view_lock:
            if self._view is not None and self._view[0] == run_id:
                return self._view[1].rows()
        return self._replayed(run_id)

    def _replayed(self, run_id: str) -> list[HostRow] | None:
        with Journal.of(self.config) as journal:
            record = journal.run(run_id)
            steps = lifecycle.planned_steps(journal, run_id)
            done = journal.timed_steps(run_id)
        if record is None or not steps:
            return None
        at = [record.started]
        servers = self.config.servers
        view = RunView({s.name: s.group for s in servers}, slow_after(self.config.policy), lambda: at[0], power_by=power_by(servers))
        plan = Plan(Intent(record.intent), record.groups, (), tuple(steps))
        view.begin(plan)
        by_key = {(s.action, s.target): s for s in steps}
        events: list[tuple[float, int, str, Any, Step | None]] = []  # (when, order, kind, event data, the planned step)
        for n, (result, when) in enumerate(done):
            planned = by_key.get((Action(result.action), result.target))
            if planned is not None:
                events.append((when - result.seconds, n, "start", planned, None))
            events.append((when, n, "step", result, planned))
        ended: dict[str, float] = {}
        for when, _, kind, data, planned in sorted(events, key=lambda e: (e[0], e[1], e[2] == "step")):
            at[0] = when
            view.feed(kind, data)
            if planned is not None:
                ended[planned.id] = when
        if record.finished is not None:
            at[0] = record.finished
            view.finish()
            return view.rows()
        for step in steps:  # under way: a step whose every predecessor ended started then (the executor's rule)
            waits = (*step.after, *step.settled)
            if step.fallback_of or step.id in ended or not all(d in ended for d in waits):
                continue
            at[0] = max((ended[d] for d in waits), default=record.started)
            view.feed("start", step)
        at[0] = time.time()
        return view.rows()

    def lab_wide(self, run_id: str) -> str | None:
        """What holds the whole of a run this service started, as the CLI's live view says it ("vCenter is starting:
        waiting for its SOAP and REST APIs to answer (02:10)"); None: nothing does, or not this service's run."""
        with self._view_lock:
            if self._view is None or self._view[0] != run_id or self._view[1].finished_at is not None:
                return None
            return self._view[1].lab_wide()

    def summaries(self, limit: int = 50) -> list[tuple[RunRecord, list[StepRecord]]]:
        """The last runs, newest first, each with its steps (one read of the journal)."""
        with Journal.of(self.config) as journal:
            return [(record, journal.steps(record.id)) for record in journal.runs(limit)]

    def history(self, limit: int = 50) -> list[RunRecord]:
        with Journal.of(self.config) as journal:
            return journal.runs(limit)

    def running(self) -> lock.Holder | None:
        return lock.holder(lock.lock_path(state_base(self.config.state_dir), self.config.lab_id))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the run in progress stops at its next wait, journaled as interrupted (resumable)."""
        with self._mutex:
            cancel, worker = self._cancel, self._worker
        if cancel is not None and worker is not None and worker.is_alive():
            cancel.set("the service stopped")
            worker.join(timeout)
