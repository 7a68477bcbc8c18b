"""The run's one change feed: a single PropertyCollector follows the plan's VMs and hosts
(WaitForUpdatesEx); a wait for 1,000 VMs is a condition on that state, not 1,000 polls. Task waits
(maintenance, shutdown, power-on) add a filter for their tasks to the same collector while they last:
no collector, no extra long-poll per task.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyVmomi import vim, vmodl

from labswitch.cancel import Cancel
from labswitch.errors import EndpointError, VSphereError
from labswitch.vsphere import faults
from labswitch.vsphere.actions import Actions
from labswitch.vsphere.faults import TASK_DONE, TASK_PATHS, task_outcome
from labswitch.vsphere.watch import State

log = logging.getLogger(__name__)
RECONNECT_FOR = 60.0  # seconds a dropped change feed is followed again before its waits fail


class Feed:
    """The run's one change feed: the current state of its VMs and hosts, and waits on it."""

    def __init__(
        self, actions: Actions, vms: Sequence[str], vm_paths: Sequence[str], hosts: Sequence[str], host_paths: Sequence[str], cancel: Cancel
    ) -> None:
        self.actions = actions
        self.cancel = cancel
        self.state: State = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._error: str | None = None
        self._lost: tuple[float, str] | None = None  # vCenter not answering the feed now: (since when, why)
        self._ready = threading.Event()
        self._collector: Any = None
        self._task_specs: dict[int, Any] = {}  # the task waits under way: their filter specs
        pc = vmodl.query.PropertyCollector
        objects = [actions.vm(m) for m in vms if vm_paths] + [actions.host(m) for m in hosts if host_paths]
        # what the feed follows, by moid: the object and its paths (for the direct re-read before a timeout)
        self._objects: dict[str, Any] = {o._moId: o for o in objects}
        self._paths: dict[str, Sequence[str]] = {m: vm_paths for m in vms} | {m: host_paths for m in hosts}
        props = [pc.PropertySpec(type=vim.VirtualMachine, pathSet=list(vm_paths))] if vm_paths else []
        props += [pc.PropertySpec(type=vim.HostSystem, pathSet=list(host_paths))] if host_paths else []
        # (pyVmomi refuses a FilterSpec with no objects: a run that follows nothing has none)
        self._spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=o, skip=False) for o in objects], propSet=props) if objects else None
        self._thread = threading.Thread(target=self._follow, name="change-feed", daemon=True)
        # Started, not awaited: the first actions go out while the feed reads the current state. No
        # change can slip by, because every wait is a condition on that state, not on an event.
        if objects:  # a run that waits on nothing in vCenter follows nothing
            self._thread.start()
        else:
            self._ready.set()

    def wait(
        self,
        objects: Sequence[str],
        met: Callable[[Mapping[str, Any]], bool],
        timeout: float,
        on_each: Callable[[str], None] | None,
        reread: bool = True,
    ) -> set[str]:
        deadline = time.monotonic() + timeout
        self._ready.wait(self.actions.poll_ceiling + 10)  # the current state is in
        reached: set[str] = set()
        while True:
            with self._cond:
                fresh = [m for m in objects if m not in reached and met(self.state.get(m, {}))]
                error = self._error
            for moid in fresh:
                reached.add(moid)
                if on_each is not None:
                    on_each(moid)
            if len(reached) == len(set(objects)):
                return reached
            if error:
                raise VSphereError(error)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reached |= self._reread(objects, met, reached, on_each) if reread else set()
                lost = self._lost
                if lost is not None and len(reached) < len(set(objects)):  # vCenter's silence, not the objects'
                    raise VSphereError(
                        f"vCenter does not answer (for {time.monotonic() - lost[0]:.0f}s: {lost[1]}); "
                        "the state is unknown until it does (the BMCs say whether the servers are on)"
                    )
                return reached
            self.cancel.check()
            with self._cond:
                self._cond.wait(min(1.0, remaining))

    def wait_tasks(self, tasks: Mapping[str, Any], timeout: float) -> dict[str, str | None]:
        """Wait for tasks on the feed (a filter on its collector while they last): key -> None or the error."""
        self._ready.wait(self.actions.poll_ceiling + 10)
        collector = self._collector
        if collector is None or not self._thread.is_alive():  # a run that follows nothing in vCenter
            return self.actions.wait_tasks(tasks, timeout)
        by_moid = {task._moId: key for key, task in tasks.items()}
        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=t, skip=False) for t in tasks.values()],
            propSet=[pc.PropertySpec(type=vim.Task, pathSet=list(TASK_PATHS))],
        )
        key = id(spec)
        with self._cond:
            self._objects.update({t._moId: t for t in tasks.values()})
            self._paths.update({m: TASK_PATHS for m in by_moid})
            self._task_specs[key] = spec  # a collector made again after a dropped connection follows them too
        task_filter = None
        try:
            with contextlib.suppress(EndpointError):  # the collector dropped meanwhile: its successor has the spec
                task_filter = self.actions.call(lambda: collector.CreateFilter(spec, partialUpdates=False))
            self.wait(list(by_moid), lambda p: p.get("info.state") in TASK_DONE, timeout, None)
            with self._cond:
                return {key: task_outcome(self.state.get(m, {}), timeout) for m, key in by_moid.items()}
        finally:
            if task_filter is not None:
                with contextlib.suppress(Exception):
                    task_filter.DestroyPropertyFilter()
            with self._cond:
                self._task_specs.pop(key, None)
                for m in by_moid:
                    self.state.pop(m, None)
                    self._objects.pop(m, None)
                    self._paths.pop(m, None)

    def stop(self) -> None:
        """End the feed now: its long-poll is cancelled, not waited out (that was a second at the end of every run)."""
        self._stop.set()
        collector = self._collector
        if collector is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                collector.CancelWaitForUpdates()
        # vCenter ends the cancelled poll when it next looks (the simulator: after the batch in
        # hand); the collector is the session's and goes with the logout, so no long join.
        if self._thread.is_alive():
            self._thread.join(timeout=0.2)

    def _reread(
        self, objects: Sequence[str], met: Callable[[Mapping[str, Any]], bool], reached: set[str], on_each: Callable[[str], None] | None
    ) -> set[str]:
        """Before a timeout is reported, the objects are read once more directly (a change the feed did not deliver)."""
        late = set()
        for moid in (m for m in objects if m not in reached):
            with self._cond:
                obj, paths = self._objects.get(moid), self._paths.get(moid, ())
            if obj is None:
                continue
            with contextlib.suppress(EndpointError):
                if met(self.actions.read(obj, paths)):
                    late.add(moid)
                    if on_each is not None:
                        on_each(moid)
        return late

    def _follow(self) -> None:
        """Follow the lab until stopped. A dropped connection (a network blip, a proxy, vpxd restarting its
        listener) is followed again on a new collector for up to RECONNECT_FOR seconds: its first answer is the
        whole current state, so no change is lost (every wait is a condition on that state). A fault vCenter
        answers ends the feed, and its waits, with one line."""
        content = self.actions.content
        give_up: float | None = None
        while not self._stop.is_set():
            collector = None
            try:
                collector = self._collector = content.propertyCollector.CreatePropertyCollector()
                collector.CreateFilter(self._spec, partialUpdates=False)
                with self._cond:
                    specs = list(self._task_specs.values())
                for spec in specs:  # the task waits under way, on the new collector too
                    collector.CreateFilter(spec, partialUpdates=False)
                version = ""
                while not self._stop.is_set():
                    # short long-polls: the feed stops within a second when the run ends
                    result = collector.WaitForUpdatesEx(version, vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=1))
                    if give_up is not None:
                        give_up, self._lost = None, None
                        log.warning("vCenter: the lab's changes are followed again")
                    if result is not None:
                        version = result.version
                        self._apply(result)
                    self._ready.set()
                return
            except vim.fault.NotAuthenticated as exc:  # vCenter restarted: our session is gone with it
                if self.actions.relogin is None:
                    self._fail(str(faults.error("vCenter: following the lab's changes failed", exc)))
                    return
                try:
                    self.actions.relogin()
                except EndpointError as failed:
                    self._fail(f"vCenter: following the lab's changes: {failed}")
                    return
                give_up = give_up or time.monotonic() + RECONNECT_FOR  # the same budget as a dropped connection
                self._lost = self._lost or (time.monotonic(), "its session was lost")
            except vmodl.fault.RequestCanceled:  # stop() cancels the poll; _fail ignores it once stopped
                self._fail("vCenter: following the lab's changes was cancelled by vCenter; run again to finish the run")
                return
            except vmodl.MethodFault as exc:
                self._fail(str(faults.error("vCenter: following the lab's changes failed", exc)))
                return
            except (OSError, http.client.HTTPException, EndpointError) as exc:
                now = time.monotonic()
                if give_up is None:
                    give_up = now + RECONNECT_FOR
                    self._lost = (now, type(exc).__name__)
                    log.warning("vCenter: the connection following the lab's changes dropped (%s); following again", type(exc).__name__)
                if now >= give_up:
                    self._fail(
                        f"vCenter: no answer while following the lab's changes for {RECONNECT_FOR:.0f}s "
                        f"({type(exc).__name__}); run again to finish the run"
                    )
                    return
                self._stop.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - any other answer ends the feed with one line, never silently
                self._fail(f"vCenter: unexpected answer while following the lab's changes ({type(exc).__name__})")
                return
            finally:
                if collector is not None:
                    with contextlib.suppress(Exception):
                        collector.DestroyPropertyCollector()
                self._ready.set()

    def _apply(self, result: Any) -> None:
        with self._cond:
            for fs in result.filterSet or []:
                for update in fs.objectSet or []:
                    if update.obj._moId not in self._objects:  # a task whose wait is over
                        continue
                    props = self.state.setdefault(update.obj._moId, {})
                    for change in update.changeSet or []:
                        props[change.name] = change.val
            self._cond.notify_all()

    def _fail(self, text: str) -> None:
        if self._stop.is_set():  # the run is over: a poll cut short by the logout is no error
            return
        with self._cond:
            self._error = text
            self._cond.notify_all()
