"""Waits on vCenter's change feed (WaitForUpdatesEx), never per-object polling.

One dedicated PropertyCollector per wait, filtered to the objects and properties
concerned: a wait for 1,000 VMs to power off is one long-poll at a time.
"""

from __future__ import annotations

import contextlib
import http.client
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyVmomi import vmodl

from labswitch.cancel import Cancel
from labswitch.errors import VSphereError
from labswitch.vsphere import faults
from labswitch.vsphere.inventory import pages

State = dict[str, dict[str, Any]]  # moid -> property path -> value
PC = vmodl.query.PropertyCollector


def _reread(content: Any, spec: Any, state: State, on_change: Callable[[str, Mapping[str, Any]], None] | None) -> None:
    for obj in pages(content.propertyCollector, spec):
        props = state.setdefault(obj.obj._moId, {})
        fresh = {p.name: p.val for p in obj.propSet}
        if any(props.get(k) != v for k, v in fresh.items()):
            props.update(fresh)
            if on_change is not None:
                on_change(obj.obj._moId, props)


# Over 60 lines with its docstring and signature (about 50 of code): one loop over WaitForUpdatesEx, kept whole so
# that the version handling, the deadline and the cancel check read together.
def wait_for(
    content: Any,
    objects: Sequence[Any],
    paths: Sequence[str],
    done: Callable[[State], bool],
    timeout: float,
    poll_ceiling: float,
    on_change: Callable[[str, Mapping[str, Any]], None] | None = None,
    started: Callable[[], None] | None = None,
    cancel: Cancel | None = None,
) -> tuple[State, bool]:
    """Follow ``paths`` of ``objects`` until ``done(state)`` or ``timeout``: (state, done?).

    ``poll_ceiling`` bounds each long-poll below the HTTP read timeout.
    ``on_change(moid, props)`` runs for every object update, in this thread.
    ``started()`` runs once the initial state is in: act there, and no change can slip
    between the action and the wait. With ``cancel``, each long-poll lasts at most a second and a
    set switch raises Interrupted. Before giving up, the objects are read once more
    directly, so a change the feed did not deliver is not reported as a timeout.
    """
    state: State = {}
    if not objects:
        return state, done(state)
    by_type: dict[type, None] = {type(o): None for o in objects}
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=o, skip=False) for o in objects],
        propSet=[PC.PropertySpec(type=kind, pathSet=list(paths)) for kind in by_type],
    )
    deadline = time.monotonic() + timeout
    try:
        collector = content.propertyCollector.CreatePropertyCollector()
    except vmodl.MethodFault as exc:
        raise faults.error("vCenter: cannot create a PropertyCollector", exc) from exc
    try:
        collector.CreateFilter(spec, partialUpdates=False)
        version = ""
        while True:
            if cancel is not None:
                cancel.check()
            remaining = deadline - time.monotonic()
            wait = max(0, min(int(remaining), int(poll_ceiling), 1 if cancel is not None else int(poll_ceiling)))
            result = collector.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=wait))
            if result is not None:
                version = result.version
                for fs in result.filterSet or []:
                    for update in fs.objectSet or []:
                        props = state.setdefault(update.obj._moId, {})
                        for change in update.changeSet or []:
                            props[change.name] = change.val
                        if on_change is not None:
                            on_change(update.obj._moId, props)
            if started is not None:
                run_now = started
                started = None
                run_now()
                continue
            if done(state):
                return state, True
            if time.monotonic() >= deadline:
                _reread(content, spec, state, on_change)
                return state, done(state)
    except vmodl.MethodFault as exc:
        raise faults.error("vCenter: waiting on updates failed", exc) from exc
    except (OSError, http.client.HTTPException) as exc:  # a read timeout or a dropped connection mid-wait
        raise VSphereError(
            f"vCenter: no answer while waiting on updates ({type(exc).__name__}); vCenter may be overloaded: "
            "raise vcenter.timeout, or run again (a re-run completes an interrupted run)"
        ) from exc
    finally:
        with contextlib.suppress(Exception):  # the collector dies with the session anyway
            collector.DestroyPropertyCollector()
