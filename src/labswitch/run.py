"""Executes a Plan: bounded parallelism, waits on vCenter's change feed, timeouts, BMC fallbacks.

Every step's outcome is journaled and emitted as an event as it happens. A step that
fails never stops the others; what depends on it (a host whose VM stayed on, the VMs
of a host that never reconnected) is skipped with the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Any

from labswitch.bmc import Driver, Power
from labswitch.cancel import Cancel
from labswitch.config import Config
from labswitch.errors import EndpointError, VSphereError
from labswitch.journal import Journal
from labswitch.plan import Action, Intent, Plan, Status, Step
from labswitch.vsphere.actions import Actions


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


# ("plan", Plan) once; ("phase", name); ("start", Step) when a step begins; ("step", StepResult) when it ends; ("note", text)
EventSink = Callable[[str, Any], None]


class Runner:
    def __init__(
        self,
        actions: Actions,
        config: Config,
        drivers: Mapping[str, Driver],
        journal: Journal,
        run_id: str,
        on_event: EventSink,
        cancel: Cancel | None = None,
    ) -> None:
        self.actions = actions
        self.cancel = cancel or Cancel()
        self.actions.cancel = self.cancel
        self.config = config
        self.policy = config.policy
        self.drivers = drivers
        self.journal = journal
        self.run_id = run_id
        self.on_event = on_event
        self.results: list[StepResult] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=self.policy.max_parallel)

    def run(self, plan: Plan) -> list[StepResult]:
        """Run the plan; Interrupted when the cancel switch is set (self.results then holds what was done)."""
        self.on_event("plan", plan)
        try:
            if plan.intent is Intent.DOWN:
                self._down(plan)
            elif plan.intent is Intent.REBOOT:
                self._reboot(plan)
            else:
                self._up(plan)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
        return self.results

    # -- bookkeeping ----------------------------------------------------------------------
    def _record(self, step: Step, status: str, detail: str, since: float, phase: str | None = None, action: str | None = None) -> None:
        result = StepResult(
            phase or step.phase, action or step.action, step.target, Status(status), detail, round(time.monotonic() - since, 2), step.server
        )
        with self._lock:
            self.results.append(result)
            self.journal.add_step(self.run_id, result.phase, result.action, result.target, status, detail, result.seconds, step.server)
        self.on_event("step", result)

    def _phase(self, name: str) -> float:
        self.on_event("phase", name)
        return time.monotonic()

    def _parallel(self, items: Iterable[Any], fn: Callable[[Any], Any]) -> list[tuple[Any, Any, str | None]]:
        """Run fn over items on the pool, in order of submission: (item, result, error).

        Once the cancel switch is set nothing more is submitted; the calls under way finish, then Interrupted.
        """

        def begin(item: Any) -> Any:
            if isinstance(item, Step):
                self.on_event("start", item)
            return fn(item)

        futures: list[tuple[Any, Future[Any]]] = []
        for item in items:
            if self.cancel.is_set():
                break
            futures.append((item, self._pool.submit(begin, item)))
        futures_wait([f for _, f in futures])
        self.cancel.check()
        out: list[tuple[Any, Any, str | None]] = []
        for item, future in futures:
            try:
                out.append((item, future.result(), None))
            except EndpointError as exc:
                out.append((item, None, str(exc)))
        return out

    # -- down ------------------------------------------------------------------------------
    def _down(self, plan: Plan) -> None:
        blocked = self._empty_hosts(plan)
        self._host_shutdown([s for s in plan.phase("host-shutdown") if s.server not in blocked], blocked)

    def _empty_hosts(self, plan: Plan) -> set[str]:
        """Stop the VMs and put the hosts in maintenance mode; returns the servers left blocked."""
        blocked: set[str] = {s.server for s in plan.phase("power-off") if s.action == Action.LEAVE_RUNNING and s.server}
        blocked |= self._guest_shutdown(plan.phase("guest-shutdown"))
        for step in (s for s in plan.phase("power-off") if s.action == Action.LEAVE_RUNNING):
            self._record(step, "failed", "no VMware Tools and policy.hard_power_off is false: left on, host left on", time.monotonic())
        self._hard_power_off([s for s in plan.phase("power-off") if s.action == Action.POWER_OFF_VM])
        self._enter_maintenance([s for s in plan.phase("maintenance") if s.server not in blocked], blocked)
        return blocked

    # -- reboot (one host of a rolling reboot) ------------------------------------------------
    def _reboot(self, plan: Plan) -> None:
        step = plan.phase("reboot")[0]
        if self._empty_hosts(plan):
            self._record(step, "skipped", "host not emptied: see the steps above", time.monotonic())
            return
        start = self._phase("reboot")
        moid = step.moid or ""
        try:
            error = self.actions.wait_tasks({"t": self.actions.reboot_host(moid)}, self.policy.maintenance_timeout)["t"]
        except VSphereError as exc:
            error = str(exc)
        if error is not None:
            self._record(step, "failed", f"{error}; the host stays in maintenance mode with its VMs off", start)
            return
        _, gone = self.actions.watch(
            "host",
            [moid],
            ["runtime.connectionState"],
            done=lambda st: st.get(moid, {}).get("runtime.connectionState") not in (None, "connected"),
            timeout=self.policy.host_off_timeout,
        )
        if not gone:
            self._record(step, "failed", f"still connected {self.policy.host_off_timeout:.0f}s after the reboot task", start)
            return
        self._record(step, "ok", "rebooting", start)
        if self._connect_and_exit_maintenance(list(plan.phase("connect")), list(plan.phase("maintenance-exit"))):
            for vm in plan.phase("start:restore"):
                self._record(vm, "skipped", "host did not come back", time.monotonic())
            return
        self._start_wave("start:restore", list(plan.phase("start:restore")), None, plan, wait=False)

    def _guest_shutdown(self, steps: tuple[Step, ...]) -> set[str]:
        """Ask every guest to shut down, wait on the change feed; returns servers left blocked."""
        if not steps:
            return set()
        start = self._phase("guest-shutdown")
        fallback: list[tuple[Step, str]] = []
        by_moid: dict[str, Step] = {}  # the VMs asked, filled once the watch is in place
        asked = False
        done_at: dict[str, float] = {}

        def ask() -> None:  # runs once the watch holds every VM's current state
            nonlocal asked
            for step, _, error in self._parallel(steps, lambda s: self.actions.shutdown_guest(s.moid)):
                if error is None and step.moid:
                    by_moid[step.moid] = step
                elif error is not None:
                    fallback.append((step, error))
            asked = True

        def seen(moid: str, props: Mapping[str, Any]) -> None:
            if asked and moid in by_moid and props.get("runtime.powerState") == "poweredOff" and moid not in done_at:
                done_at[moid] = time.monotonic()
                self._record(by_moid[moid], "ok", "guest shut down", start)

        def done(state: Mapping[str, Mapping[str, Any]]) -> bool:
            for moid in by_moid:  # a guest already off when asked sends no change: record it here
                seen(moid, state.get(moid, {}))
            return asked and len(done_at) == len(by_moid)

        self.actions.watch(
            "vm",
            [s.moid for s in steps if s.moid],
            ["runtime.powerState"],
            done=done,
            timeout=self.policy.guest_shutdown_timeout,
            on_change=seen,
            started=ask,
        )
        fallback += [(s, f"still on after {self.policy.guest_shutdown_timeout:.0f}s") for m, s in by_moid.items() if m not in done_at]
        blocked = set()
        if self.policy.hard_power_off:
            for step, why in fallback:
                self._record(step, "fallback", f"{why}; hard power-off follows (policy.hard_power_off)", start)
            self._hard_power_off([Step("power-off", Action.POWER_OFF_VM, s.target, s.moid, s.server) for s, _ in fallback])
        else:
            for step, why in fallback:
                self._record(step, "failed", f"{why}; left on, host left on (policy.hard_power_off = false)", start)
                blocked.add(step.server or "")
        return blocked

    def _hard_power_off(self, steps: list[Step]) -> None:
        if not steps:
            return
        start = self._phase("power-off")
        self._tasks(
            steps, lambda s: self.actions.power_off_vm(s.moid or ""), "powered off", start, timeout=self.policy.guest_shutdown_timeout
        )

    def _tasks(self, steps: list[Step], starter: Callable[[Step], Any], ok: str, start: float, timeout: float) -> dict[str, bool]:
        """Start one task per step in parallel, wait for all on the change feed; target -> succeeded."""
        tasks, outcome = {}, {}
        for step, task, error in self._parallel(steps, starter):
            if error is not None:
                self._record(step, "failed", error, start)
                outcome[step.target] = False
            else:
                tasks[step.target] = (step, task)
        results = self.actions.wait_tasks({k: t for k, (_, t) in tasks.items()}, timeout) if tasks else {}
        for target, (step, _) in tasks.items():
            error = results.get(target)
            self._record(step, "ok" if error is None else "failed", ok if error is None else error, start)
            outcome[target] = error is None
        return outcome

    def _enter_maintenance(self, steps: list[Step], blocked: set[str]) -> None:
        if not steps:
            return
        start = self._phase("maintenance")
        outcome = self._tasks(
            steps, lambda s: self.actions.enter_maintenance(s.moid or ""), "in maintenance mode", start, self.policy.maintenance_timeout
        )
        blocked |= {target for target, ok in outcome.items() if not ok}

    def _host_shutdown(self, steps: list[Step], blocked: set[str]) -> None:
        for server in sorted(blocked):
            if server:
                self._record(
                    Step("host-shutdown", Action.SHUTDOWN_HOST, server), "skipped", "host left on: see the steps above", time.monotonic()
                )
        if not steps:
            return
        start = self._phase("host-shutdown")
        # Each host mostly waits (its shutdown, then BMC polls): one worker per host, not max_parallel.
        with ThreadPoolExecutor(max_workers=len(steps)) as hosts:
            for future in [hosts.submit(self._shut_one_host, s, start) for s in steps]:
                future.result()

    def _shut_one_host(self, step: Step, start: float) -> None:
        self.cancel.check()
        self.on_event("start", step)
        driver = self.drivers[step.server or step.target]
        graceful_sent = False
        if step.action == Action.SHUTDOWN_HOST:
            try:
                task = self.actions.shutdown_host(step.moid or "")
                error = self.actions.wait_tasks({"t": task}, self.policy.maintenance_timeout)["t"]
            except VSphereError as exc:
                error = str(exc)
            if error is None:
                self._record(step, "ok", "ESXi shutting down", start)
            else:
                self._record(step, "fallback", f"vSphere shutdown failed ({error}); the BMC takes over", start)
                graceful_sent = self._bmc(step, start, driver.graceful_shutdown, "BMC GracefulShutdown")
        else:
            graceful_sent = self._bmc(step, start, driver.graceful_shutdown, "host not connected; BMC GracefulShutdown")
        confirm = Step("host-shutdown", Action.CONFIRM_OFF, step.target, step.moid, step.server)
        if self._wait_off(driver, self.policy.host_off_timeout):
            self._record(confirm, "ok", "off (BMC)", start)
            return
        if not graceful_sent:
            self._bmc(confirm, start, driver.graceful_shutdown, f"still on after {self.policy.host_off_timeout:.0f}s; BMC GracefulShutdown")
            if self._wait_off(driver, self.policy.host_off_timeout):
                self._record(confirm, "ok", "off (BMC) after GracefulShutdown", start)
                return
        if self.policy.bmc_force_off:
            self._bmc(confirm, start, driver.force_off, "still on; BMC ForceOff (policy.bmc_force_off)")
            if self._wait_off(driver, 60):
                self._record(confirm, "ok", "off (BMC) after ForceOff", start)
                return
        self._record(confirm, "failed", "server still on; set policy.bmc_force_off = true to force it off", start)

    def _bmc(self, step: Step, start: float, action: Callable[[], bool], what: str) -> bool:
        try:
            action()
        except EndpointError as exc:
            self._record(step, "failed", f"{what}: {exc}", start)
            return False
        self._record(step, "ok", what, start, action=Action.BMC_FALLBACK if step.action != Action.BMC_GRACEFUL_SHUTDOWN else None)
        return True

    def _wait_off(self, driver: Driver, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if driver.power_state() is Power.OFF:
                    return True
            except EndpointError:
                pass  # a BMC busy during the power transition: ask again
            if time.monotonic() >= deadline:
                return False
            self.cancel.sleep(min(self.policy.bmc_poll_interval, max(0.0, deadline - time.monotonic())))

    # -- up --------------------------------------------------------------------------------
    def _up(self, plan: Plan) -> None:
        failed_servers = self._power_on(plan.phase("power-on"))
        failed_servers |= self._connect_and_exit_maintenance(
            [s for s in plan.phase("connect") if s.server not in failed_servers],
            [s for s in plan.phase("maintenance") if s.server not in failed_servers],
        )
        for phase in [p for p in plan.phases if p.startswith("start:")]:
            steps = [s for s in plan.phase(phase)]
            runnable = [s for s in steps if s.server not in failed_servers]
            for step in steps:
                if step.server in failed_servers:
                    self._record(step, "skipped", f"host {step.server} is not up", time.monotonic())
            last = phase == plan.phases[-1]
            self._start_wave(phase, runnable, steps[0].wave if steps else None, plan, wait=not last)

    def _power_on(self, steps: tuple[Step, ...]) -> set[str]:
        if not steps:
            return set()
        start = self._phase("power-on")
        failed = set()
        for step, changed, error in self._parallel(steps, lambda s: self.drivers[s.server or s.target].power_on()):
            if error is not None:
                self._record(step, "failed", error, start)
                failed.add(step.server or step.target)
            else:
                self._record(step, "ok", "powered on" if changed else "already on", start)
        return failed

    def _connect_and_exit_maintenance(self, connect: list[Step], exit_steps: list[Step]) -> set[str]:
        """Exit maintenance on each host as soon as it is connected; returns the servers that never connected."""
        exits = {s.moid: s for s in exit_steps if s.moid}
        if not connect and not exits:
            return set()
        start = self._phase("connect")
        waiting = {s.moid: s for s in connect if s.moid}
        exited: dict[str, Future[None]] = {}

        def exit_maintenance(step: Step, in_maintenance: bool) -> None:
            self.on_event("start", step)
            if not in_maintenance:
                self._record(step, "ok", "not in maintenance mode", start)
                return
            try:
                error = self.actions.wait_tasks({"t": self.actions.exit_maintenance(step.moid or "")}, self.policy.maintenance_timeout)["t"]
            except VSphereError as exc:
                error = str(exc)
            self._record(step, "ok" if error is None else "failed", "out of maintenance mode" if error is None else error, start)

        def seen(moid: str, props: Mapping[str, Any]) -> None:
            if props.get("runtime.connectionState") == "connected" and moid not in exited:
                if moid in waiting:
                    self._record(waiting[moid], "ok", "connected", start)
                if moid in exits:
                    exited[moid] = self._pool.submit(exit_maintenance, exits[moid], bool(props.get("runtime.inMaintenanceMode")))

        state, _ = self.actions.watch(
            "host",
            list({*waiting, *exits}),
            ["runtime.connectionState", "runtime.inMaintenanceMode"],
            done=lambda st: all(st.get(m, {}).get("runtime.connectionState") == "connected" for m in {*waiting, *exits}),
            timeout=self.policy.host_connect_timeout,
            on_change=seen,
        )
        for future in exited.values():
            future.result()
        never = set()
        for moid in {*waiting, *exits}:
            if state.get(moid, {}).get("runtime.connectionState") != "connected":
                step = waiting.get(moid) or exits[moid]
                never.add(step.server or step.target)
                self._record(
                    step,
                    "failed",
                    f"not connected to vCenter after {self.policy.host_connect_timeout:.0f}s",
                    start,
                    phase="connect",
                    action=Action.WAIT_CONNECTED,
                )
                if moid in exits:
                    self._record(exits[moid], "skipped", "host not connected", start)
        return never

    def _start_wave(self, phase: str, steps: list[Step], wave_index: int | None, plan: Plan, wait: bool) -> None:
        if not steps:
            return
        start = self._phase(phase)
        outcome = self._tasks(steps, lambda s: self.actions.power_on_vm(s.moid or ""), "powered on", start, self.policy.maintenance_timeout)
        wave = plan.waves[wave_index] if wave_index is not None and wave_index < len(plan.waves) else None
        started = [s.moid for s in steps if outcome.get(s.target) and s.moid]
        if not wait or not started:
            return
        condition = wave.wait if wave else "tools"
        timeout = wave.timeout if wave else 300.0
        if condition != "none":
            path, value = ("guest.toolsRunningStatus", "guestToolsRunning") if condition == "tools" else ("guestHeartbeatStatus", "green")
            state, ok = self.actions.watch(
                "vm", started, [path], done=lambda st: all(st.get(m, {}).get(path) == value for m in started), timeout=timeout
            )
            if not ok:
                late = sorted(s.target for s in steps if s.moid in started and state.get(s.moid or "", {}).get(path) != value)
                self.on_event("note", f"{phase}: {condition} not up after {timeout:.0f}s on {', '.join(late)}; next wave starts anyway")
        if wave and wave.delay:
            self.cancel.sleep(wave.delay)  # a configured pause between waves, not a wait on a condition
