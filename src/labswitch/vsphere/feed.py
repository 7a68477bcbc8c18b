"""The run's one change feed: a single PropertyCollector follows the plan's VMs and hosts
(WaitForUpdatesEx); a wait for 1,000 VMs is a condition on that state, not 1,000 polls. Task waits
(maintenance, shutdown, power-on) add a filter for their tasks to the same collector while they last:
no collector, no extra long-poll per task.
"""

from __future__ import annotations

import contextlib
import http.client
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
        self._ready = threading.Event()
        self._collector: Any = None
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
                return reached | (self._reread(objects, met, reached, on_each) if reread else set())
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
        with self._cond:
            self._objects.update({t._moId: t for t in tasks.values()})
            self._paths.update({m: TASK_PATHS for m in by_moid})
        task_filter = None
        try:
            task_filter = self.actions.call(lambda: collector.CreateFilter(spec, partialUpdates=False))
            self.wait(list(by_moid), lambda p: p.get("info.state") in TASK_DONE, timeout, None)
            with self._cond:
                return {key: task_outcome(self.state.get(m, {}), timeout) for m, key in by_moid.items()}
        finally:
            if task_filter is not None:
                with contextlib.suppress(Exception):
                    task_filter.DestroyPropertyFilter()
            with self._cond:
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
        content = self.actions.content
        collector = None
        try:
            collector = self._collector = content.propertyCollector.CreatePropertyCollector()
            collector.CreateFilter(self._spec, partialUpdates=False)
            version = ""
            while not self._stop.is_set():
                # short long-polls: the feed stops within a second when the run ends
                result = collector.WaitForUpdatesEx(version, vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=1))
                if result is not None:
                    version = result.version
                    with self._cond:
                        for fs in result.filterSet or []:
                            for update in fs.objectSet or []:
                                if update.obj._moId not in self._objects:  # a task whose wait is over
                                    continue
                                props = self.state.setdefault(update.obj._moId, {})
                                for change in update.changeSet or []:
                                    props[change.name] = change.val
                        self._cond.notify_all()
                self._ready.set()
        except vmodl.fault.RequestCanceled:  # stop() cancels the poll; _fail ignores it once stopped
            self._fail("vCenter: following the lab's changes was cancelled by vCenter; run again to finish the run")
        except vmodl.MethodFault as exc:
            self._fail(str(faults.error("vCenter: following the lab's changes failed", exc)))
        except (OSError, http.client.HTTPException, EndpointError) as exc:
            self._fail(f"vCenter: no answer while following the lab's changes ({type(exc).__name__}); run again to finish the run")
        except Exception as exc:  # noqa: BLE001 - any other answer ends the feed with one line, never silently
            self._fail(f"vCenter: unexpected answer while following the lab's changes ({type(exc).__name__})")
        finally:
            if collector is not None:
                with contextlib.suppress(Exception):
                    collector.DestroyPropertyCollector()
            self._ready.set()

    def _fail(self, text: str) -> None:
        if self._stop.is_set():  # the run is over: a poll cut short by the logout is no error
            return
        with self._cond:
            self._error = text
            self._cond.notify_all()
