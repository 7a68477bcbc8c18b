"""Bulk inventory: one container view, one PropertyCollector read (plus pages), never one call per VM.

pyVmomi's attribute access is lazy (one round trip per property per object);
reading through RetrievePropertiesEx keeps the number of calls fixed whatever
the number of VMs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from pyVmomi import vim, vmodl

from labswitch.errors import VSphereError
from labswitch.snapshot import HostInfo, Snapshot, VMInfo

HOST_PROPS = ["name", "parent", "runtime.connectionState", "runtime.inMaintenanceMode", "runtime.powerState"]
VM_PROPS = [
    "name",
    "runtime.host",
    "runtime.powerState",
    "guest.toolsRunningStatus",
    "guest.ipAddress",
    "guest.hostName",
    "config.template",
]
CLUSTER_PROPS = ["name"]


def read(content: Any, where: str) -> Snapshot:
    try:
        objects = dict(
            _retrieve(content, {vim.HostSystem: HOST_PROPS, vim.VirtualMachine: VM_PROPS, vim.ClusterComputeResource: CLUSTER_PROPS})
        )
    except vmodl.MethodFault as exc:
        raise VSphereError(f"{where}: reading the inventory failed: {exc.msg or type(exc).__name__}") from None
    clusters = {moid: props["name"] for (kind, moid), props in objects.items() if kind is vim.ClusterComputeResource}
    hosts = tuple(
        sorted(
            (_host(moid, props, clusters) for (kind, moid), props in objects.items() if kind is vim.HostSystem),
            key=lambda h: h.name,
        )
    )
    vms = tuple(sorted((_vm(moid, props) for (kind, moid), props in objects.items() if kind is vim.VirtualMachine), key=lambda v: v.name))
    return Snapshot(hosts=hosts, vms=vms)


def with_tags(snap: Snapshot, tags: Mapping[str, tuple[str, ...]], note: str | None = None) -> Snapshot:
    vms = tuple(dataclasses.replace(vm, tags=tags.get(vm.moid, ())) for vm in snap.vms)
    return dataclasses.replace(snap, vms=vms, notes=snap.notes + ((note,) if note else ()))


def _retrieve(content: Any, wanted: Mapping[type, list[str]]) -> Iterator[tuple[tuple[type, str], dict[str, Any]]]:
    view = content.viewManager.CreateContainerView(content.rootFolder, list(wanted), True)
    try:
        traverse = vmodl.query.PropertyCollector.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths) for kind, paths in wanted.items()],
        )
        pc = content.propertyCollector
        result = pc.RetrievePropertiesEx(specSet=[spec], options=vmodl.query.PropertyCollector.RetrieveOptions())
        while result is not None:
            for obj in result.objects:
                kind = next(k for k in wanted if isinstance(obj.obj, k))
                yield (kind, obj.obj._moId), {p.name: p.val for p in obj.propSet}
            result = pc.ContinueRetrievePropertiesEx(token=result.token) if result.token else None
    finally:
        view.Destroy()


def _moid(ref: Any) -> str | None:
    return ref._moId if ref is not None else None


def _host(moid: str, props: dict[str, Any], clusters: Mapping[str, str]) -> HostInfo:
    return HostInfo(
        moid=moid,
        name=props.get("name", moid),
        cluster=clusters.get(_moid(props.get("parent")) or ""),
        connection_state=str(props.get("runtime.connectionState", "unknown")),
        in_maintenance=bool(props.get("runtime.inMaintenanceMode", False)),
        power_state=str(props.get("runtime.powerState", "unknown")),
    )


def _vm(moid: str, props: dict[str, Any]) -> VMInfo:
    return VMInfo(
        moid=moid,
        name=props.get("name", moid),
        host_moid=_moid(props.get("runtime.host")),
        power_state=str(props.get("runtime.powerState", "unknown")),
        tools_running=props.get("guest.toolsRunningStatus") == "guestToolsRunning",
        guest_ip=props.get("guest.ipAddress") or None,
        guest_hostname=props.get("guest.hostName") or None,
        template=bool(props.get("config.template", False)),
    )
