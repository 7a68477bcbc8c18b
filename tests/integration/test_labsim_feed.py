"""labsim's change feed answers WaitForUpdatesEx as vCenter does, with its own feed (labsim/feed.go) and with the simulator's.

Read through pyVmomi only: a filter on some objects' properties, changes made with ordinary vSphere calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import vim, vmodl

from tests.conftest import wait_until
from tests.labsim import Lab

PC = vmodl.query.PropertyCollector
FAST = ("--clusters", "1", "--hosts-per-cluster", "2", "--vms-per-host", "2", "--tools-delay", "100ms")


@pytest.fixture(params=["labsim-feed", "govmomi-feed"])
def lab(request: pytest.FixtureRequest, lab_factory: Callable[..., Lab]) -> Lab:
    return lab_factory(*FAST, *(("--govmomi-feed",) if request.param == "govmomi-feed" else ()))


@pytest.fixture
def content(lab: Lab) -> Iterator[Any]:
    with lab.vsphere() as content:
        yield content


def follow(content: Any, objects: list[Any], kind: type, paths: list[str]) -> Any:
    collector = content.propertyCollector.CreatePropertyCollector()
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=o, skip=False) for o in objects], propSet=[PC.PropertySpec(type=kind, pathSet=paths)])
    collector.CreateFilter(spec, partialUpdates=False)
    return collector


def updates(result: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """moid -> (kind of its last update, {path: value}) of one WaitForUpdatesEx answer, in order (an object may come twice)."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for fs in result.filterSet if result else []:
        for u in fs.objectSet or []:
            props = seen.get(u.obj._moId, ("", {}))[1]
            seen[u.obj._moId] = (u.kind, {**props, **{c.name: c.val for c in u.changeSet or []}})
    return seen


def wait_change(collector: Any, version: str, until: Callable[[dict[str, tuple[str, dict[str, Any]]]], bool]) -> tuple[str, dict[str, Any]]:
    """Long-poll until an answer satisfies ``until``; every answer seen is returned merged."""
    seen: dict[str, Any] = {}
    deadline = 20
    for _ in range(deadline):
        result = collector.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=1))
        if result is not None:
            version = result.version
            for moid, (kind, props) in updates(result).items():
                seen[moid] = (kind, {**seen.get(moid, ("", {}))[1], **props})
            if until(seen):
                return version, seen
    raise AssertionError(f"no such change within {deadline} polls; seen {seen}")


def vms(content: Any) -> list[Any]:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    found = sorted((vm for vm in view.view if vm.runtime.powerState == "poweredOn"), key=lambda vm: vm._moId)
    view.DestroyView()
    return found


def test_first_answer_is_the_current_state_then_only_what_changed(content: Any) -> None:
    watched = vms(content)[:3]
    collector = follow(content, watched, vim.VirtualMachine, ["runtime.powerState", "guest.toolsRunningStatus"])
    first = collector.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5))
    entered = updates(first)
    assert set(entered) == {vm._moId for vm in watched}
    assert all(kind == "enter" and props["runtime.powerState"] == "poweredOn" for kind, props in entered.values())

    task = watched[1].PowerOffVM_Task()
    version, seen = wait_change(
        collector, first.version, lambda s: s.get(watched[1]._moId, ("", {}))[1].get("runtime.powerState") == "poweredOff"
    )
    assert set(seen) == {watched[1]._moId}, "an unchanged VM is not reported again"
    assert seen[watched[1]._moId][0] == "modify"
    wait_until(lambda: task.info.state == "success", 10, "power-off task")

    assert collector.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=0)) is None, "nothing changed since"
    collector.DestroyPropertyCollector()


def test_a_parent_property_follows_its_parts(content: Any) -> None:
    host = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True).view[0]
    collector = follow(content, [host], vim.HostSystem, ["runtime"])
    first = collector.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5))
    assert updates(first)[host._moId][1]["runtime"].inMaintenanceMode is False
    for vm in host.vm:
        if vm.runtime.powerState == "poweredOn":
            vm.PowerOffVM_Task()
    wait_until(lambda: all(vm.runtime.powerState == "poweredOff" for vm in host.vm), 10, "the host's VMs off")
    host.EnterMaintenanceMode_Task(timeout=0)
    wait_change(collector, first.version, lambda s: host._moId in s and s[host._moId][1]["runtime"].inMaintenanceMode is True)


def test_cancel_ends_a_waiting_poll_with_request_canceled(lab: Lab, content: Any) -> None:
    collector = follow(content, vms(content)[:1], vim.VirtualMachine, ["runtime.powerState"])
    first = collector.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5))
    outcome: list[BaseException] = []

    def poll() -> None:
        try:
            collector.WaitForUpdatesEx(first.version, PC.WaitOptions(maxWaitSeconds=30))
        except BaseException as exc:  # noqa: BLE001 - the fault is the observed effect
            outcome.append(exc)

    lab.soap_calls(reset=True)
    poller = threading.Thread(target=poll)
    poller.start()
    wait_until(lambda: lab.soap_calls().get("WaitForUpdatesEx", 0) == 1, 5, "the poll to reach vCenter")
    collector.CancelWaitForUpdates()
    poller.join(timeout=15)
    assert not poller.is_alive(), "the poll still waits after CancelWaitForUpdates"
    assert len(outcome) == 1 and isinstance(outcome[0], vmodl.fault.RequestCanceled)


def test_a_deleted_object_leaves_the_filter(lab_factory: Callable[..., Lab]) -> None:
    """labsim's feed only: the simulator's own re-collects the filter and faults (ManagedObjectNotFound) where vCenter says "leave"."""
    with lab_factory(*FAST).vsphere() as content:
        _deleted_object_leaves(content)


def _deleted_object_leaves(content: Any) -> None:
    vm = vms(content)[0]
    collector = follow(content, [vm], vim.VirtualMachine, ["runtime.powerState"])
    first = collector.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5))
    vm.PowerOffVM_Task()
    wait_until(lambda: vm.runtime.powerState == "poweredOff", 10, "VM off")
    vm.Destroy_Task()
    wait_change(collector, first.version, lambda s: s.get(vm._moId, ("", {}))[0] == "leave")


def test_a_traversal_filter_is_still_answered(content: Any) -> None:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    traverse = PC.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
        propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=["name"])],
    )
    collector = content.propertyCollector.CreatePropertyCollector()
    collector.CreateFilter(spec, partialUpdates=False)
    first = collector.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5))
    names = {props["name"] for _, props in updates(first).values()}
    assert names == {h.name for h in view.view}
