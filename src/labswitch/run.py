"""Executes a Plan's graph: every step as soon as the steps it waits for are done.

A small generic executor: it hands the ready steps of one kind on one server to that kind's
handler (labswitch.steps) on a worker, records each step's outcome in the journal and as an
event the moment it is reported, runs a step's planned fallback when the step did not work,
and skips, with the reason, what depended on a step that was not done. Waits happen in the
handlers, on vCenter's change feed or the BMC; the executor itself never sleeps.

Once the cancel switch is set nothing new starts; the handlers under way stop at their next
wait, and Interrupted is raised with ``results`` holding what was done.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from labswitch.bmc import Driver
from labswitch.cancel import Cancel
from labswitch.config import Config
from labswitch.errors import EndpointError, Interrupted
from labswitch.journal import Journal
from labswitch.plan import REGISTRY, VCENTER, Action, Plan, Status, Step, Subject, direct
from labswitch.plan.actions import WAVE
from labswitch.steps import Context, Handler, handlers
from labswitch.vsphere.actions import Actions
from labswitch.vsphere.esxi import HostPort, Unreachable
from labswitch.vsphere.port import LabPort, VSpherePort
from labswitch.vsphere.session import login_for_host


@dataclass(frozen=True)
class StepResult:
    phase: str
    action: str
    target: str
    status: Status
    detail: str
    seconds: float
    server: str | None = None  # the config server the step belongs to

    @property
    def ok(self) -> bool:
        """Done: directly, or by the fallback the policy names."""
        return not self.status.is_failure


# ("run", run id) once journaled; ("plan", Plan) once; ("phase", name) when a phase's first step starts; ("start", Step);
# ("step", StepResult); ("note", text)
EventSink = Callable[[str, Any], None]


class Executor:
    """Runs a plan's steps in dependency order; see the module docstring."""

    def __init__(
        self,
        plan: Plan,
        handlers: Mapping[Action, Handler],
        context: Context,
        record: Callable[[Step, Status, str, float], None],
        on_event: EventSink,
        workers: int,
        batch: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        """``batch()`` wraps the recording of each burst of outcomes (the journal's transaction)."""
        self.batch = batch
        self.plan = plan
        self.handlers = handlers
        self.ctx = context
        self.record = record
        self.on_event = on_event
        self.workers = workers
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._fallback = {s.fallback_of: s for s in plan.steps if s.fallback_of}
        self._started: dict[str, float] = {}
        self._phases: set[str] = set()
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        self._primaries = [s for s in plan.steps if not s.fallback_of]
        self._order = {s.id: i for i, s in enumerate(self._primaries)}
        self._unmet = {s.id: len(set(s.after)) + len(set(s.settled) - set(s.after)) for s in self._primaries}  # steps still waited for
        self._dependents: dict[str, list[tuple[Step, bool]]] = {}  # id -> (a step waiting for it, whether only for it to settle)
        for s in self._primaries:
            for d in set(s.after):
                self._dependents.setdefault(d, []).append((s, False))
            for d in set(s.settled) - set(s.after):
                self._dependents.setdefault(d, []).append((s, True))
        self._skipped: set[str] = set()

    def run(self) -> None:
        ready = [s for s in self._primaries if self._unmet[s.id] == 0]
        running = 0
        error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="step") as pool:
            while True:
                if not self.ctx.cancel.is_set() and error is None:
                    for group in _groups(ready):
                        running += 1
                        pool.submit(self._job, group)
                ready = []  # once cancelled (or a bug), what became ready is not started: the run stops here
                if running == 0:
                    break
                burst = [self._events.get()]  # then whatever else arrived meanwhile: recorded together
                with contextlib.suppress(queue.Empty):
                    while True:
                        burst.append(self._events.get_nowait())
                with self.batch():
                    for kind, data in burst:
                        if kind == "job-done":
                            running -= 1
                            if isinstance(data, BaseException) and not isinstance(data, Interrupted):
                                error = error or data
                            continue
                        step, status, detail = data
                        outcome = self._settle(step, status, detail)
                        key = step.fallback_of or step.id  # a primary whose fallback worked counts as done
                        if outcome is True:
                            ready += self._unblocked(key)
                        elif outcome is False:
                            ready += self._skip_dependents(key, f"{step.action} {step.target} failed")
                        else:  # the planned fallback runs next
                            ready.append(outcome)
        if error is not None:
            raise error
        if self.ctx.cancel.is_set():
            raise Interrupted(self.ctx.cancel.reason)

    def _unblocked(self, done: str) -> list[Step]:
        """The steps that waited for ``done`` and now wait for nothing (one count per edge: O(1) per event)."""
        return [step for step, _ in self._dependents.get(done, []) if self._one_less(step)]

    def _one_less(self, step: Step) -> bool:
        """One of the steps ``step`` waits for is settled; True when that was the last."""
        if step.id in self._skipped:
            return False
        self._unmet[step.id] -= 1
        return self._unmet[step.id] == 0

    def _skip_dependents(self, failed: str, cause: str) -> list[Step]:
        """Everything that waited, directly or not, for a step that was not done: skipped, naming the root
        cause. A step that waited only for it to settle is not skipped: those now ready are returned."""
        skipped: list[Step] = []
        ready: list[Step] = []
        todo = list(self._dependents.get(failed, []))
        while todo:
            step, soft = todo.pop()
            if soft:
                if self._one_less(step):
                    ready.append(step)
            elif step.id not in self._skipped:
                self._skipped.add(step.id)
                skipped.append(step)
                todo += self._dependents.get(step.id, [])
        for step in sorted(skipped, key=lambda s: self._order[s.id]):
            self._report_now(step, Status.SKIPPED, f"not started: {cause}")
        return [s for s in ready if s.id not in self._skipped]

    def _settle(self, step: Step, status: Status, detail: str) -> bool | Step:
        """Record a reported outcome: True done, False not done, or the fallback step that runs next."""
        fallback = self._fallback.get(step.id)
        if status is Status.FAILED and fallback is not None:
            self.record(step, Status.FALLBACK, detail, self._seconds(step))
            return fallback
        self.record(step, status, detail, self._seconds(step))
        return status is Status.OK

    def _report_now(self, step: Step, status: Status, detail: str) -> None:
        self.record(step, status, detail, 0.0)

    def _seconds(self, step: Step) -> float:
        return round(time.monotonic() - self._started.get(step.id, time.monotonic()), 2)

    def _job(self, group: list[Step]) -> None:
        def report(step: Step, status: Status, detail: str) -> None:
            with self._lock:
                if step.id in self._reported:
                    return
                self._reported.add(step.id)
            self._events.put(("report", (step, status, detail)))

        outcome: BaseException | None = None
        try:
            now = time.monotonic()
            for step in group:
                self._started[step.id] = now
                if step.phase not in self._phases:
                    self._phases.add(step.phase)
                    self.on_event("phase", step.phase)
                self.on_event("start", step)
            self.handlers[group[0].action](group, self.ctx, report)
        except EndpointError as exc:  # e.g. vCenter gone mid-wait: each unreported step fails with it
            for step in group:
                report(step, Status.FAILED, str(exc))
        except BaseException as exc:  # noqa: BLE001 - Interrupted, or a bug: handed to the run loop
            outcome = exc
        finally:
            if outcome is None:
                for step in group:  # a handler must report every step; one that did not is a failure, never a hang
                    report(step, Status.FAILED, "no outcome reported (internal)")
            self._events.put(("job-done", outcome))


def _groups(ready: Sequence[Step]) -> list[list[Step]]:
    """The ready steps by (action, server, endpoint): one handler call for a host's ten guest shutdowns."""
    groups: dict[tuple[str, str | None, str], list[Step]] = {}
    for step in ready:
        groups.setdefault((step.action, step.server, step.endpoint), []).append(step)
    return list(groups.values())


def waited_on(plan: Plan, endpoint: str = VCENTER) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The VMs and hosts a run will wait on through ``endpoint`` (vCenter, or "esxi:<server>"), each with the
    conditions (vsphere.port.CONDITIONS) it waits for: what the registry declares for each step's action."""
    vms: dict[str, set[str]] = {}
    hosts: dict[str, set[str]] = {}
    gated = {s.wave for s in plan.steps if s.action == Action.WAVE_READY}  # the last wave is not waited for
    for step in plan.steps:
        spec = REGISTRY[step.action]
        if not step.moid or not spec.waits or (step.endpoint != endpoint and not spec.vcenter_only):
            continue
        if spec.vcenter_only and (endpoint != VCENTER or not step.server):
            continue  # the feed tells when to ask the BMC (steps.bmc._wait_off): vCenter's only
        conditions = {_wave_wait(plan, step, gated) if c == WAVE else c for c in spec.waits} - {"none"}
        if conditions:
            (vms if spec.subject is Subject.VM else hosts).setdefault(step.moid, set()).update(conditions)
    return vms, hosts


def _wave_wait(plan: Plan, step: Step, gated: set[int | None]) -> str:
    """The condition a started VM is waited for: its wave's (config waves[].wait; "tools" for the remaining
    wave), "none" when no barrier waits for its wave."""
    if step.wave is None or step.wave not in gated:
        return "none"
    return plan.waves[step.wave].wait if step.wave < len(plan.waves) else "tools"


def waited_on_hosts(plan: Plan) -> dict[str, dict[str, set[str]]]:
    """Through each host talked to directly ("esxi:<server>"): the VMs (by key) the run waits on, with conditions."""
    endpoints = dict.fromkeys(s.endpoint for s in plan.steps if direct(s.endpoint))
    return {endpoint: waited_on(plan, endpoint)[0] for endpoint in endpoints}


class Runner:
    """One run of a plan against the lab: the port, the BMC drivers, the journal, the events."""

    def __init__(
        self,
        actions: Actions | None,
        config: Config,
        drivers: Mapping[str, Driver],
        journal: Journal,
        run_id: str,
        on_event: EventSink,
        cancel: Cancel | None = None,
        port: LabPort | None = None,
    ) -> None:
        self.actions = actions
        self.config = config
        self.drivers = drivers
        self.journal = journal
        self.run_id = run_id
        self.on_event = on_event
        self.cancel = cancel or Cancel()
        self.port = port
        self.results: list[StepResult] = []
        self._lock = threading.Lock()
        self._unchanged: set[str] = set()  # the handlers' Context.unchanged: power steps with no power effect

    def run(self, plan: Plan) -> list[StepResult]:
        """Run the plan; Interrupted when the cancel switch is set (self.results then holds what was done)."""
        self.on_event("plan", plan)
        port = self.port or self._vsphere_port(plan)
        hosts = self._host_ports(plan)
        try:
            ctx = Context(
                port,
                self.drivers,
                self.config.policy,
                plan,
                self.cancel,
                lambda text: self.on_event("note", text),
                journal=self.journal,
                run_id=self.run_id,
                ports=hosts,
                vcenter=self.config.vcenter,
                unchanged=self._unchanged,
                servers={s.name: s for s in self.config.servers},
            )
            servers = {s.server for s in plan.steps}
            workers = min(256, max(self.config.policy.max_parallel, 2 * len(servers) + 2))
            Executor(plan, handlers(), ctx, self._record, self.on_event, workers, self.journal.transaction).run()
        finally:
            for host in hosts.values():
                host.close()
            if self.port is None:
                port.close()
        return self.results

    def _vsphere_port(self, plan: Plan) -> LabPort:
        if self.actions is None:  # vCenter is off (the first part of a whole-lab up): its steps fail
            return cast(LabPort, Unreachable("vCenter is not running", self.cancel))
        self.actions.cancel = self.cancel
        vms, hosts = waited_on(plan)
        return VSpherePort(self.actions, vms, hosts, self.config.policy.max_parallel, self.cancel)

    def _host_ports(self, plan: Plan) -> dict[str, LabPort]:
        """A port per host the plan talks to directly; each connects on first use."""
        ports: dict[str, LabPort] = {}
        for endpoint, vms in waited_on_hosts(plan).items():
            server = self.config.server(direct(endpoint) or "")
            if server is None or self.config.esxi is None:
                continue  # the planner refuses such a plan; its steps would fail on vCenter's port
            login = login_for_host(self.config.esxi, server)
            ports[endpoint] = HostPort(login, vms, self.config.policy.max_parallel, self.cancel, self.config.policy.host_connect_timeout)
        return ports

    def _record(self, step: Step, status: Status, detail: str, seconds: float) -> None:
        result = StepResult(step.phase, step.action, step.target, status, detail, seconds, step.server)
        effect = REGISTRY[step.action].power if status is Status.OK and step.id not in self._unchanged else None
        with self._lock:
            self.results.append(result)
            self.journal.add_step(self.run_id, step.phase, step.action, step.target, status, detail, seconds, step.server, effect)
        self.on_event("step", result)
