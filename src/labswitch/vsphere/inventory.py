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

from labswitch.snapshot import ClusterInfo, Disk, HostInfo, Snapshot, VMInfo, has_vcls, has_vsan_power_action, reports_sgx
from labswitch.vsphere import faults, vsan

HOST_PROPS = ["name", "parent", "runtime.connectionState", "runtime.inMaintenanceMode", "runtime.powerState", "config.product.version"]
VM_PROPS = [
    "name",
    "runtime.host",
    "runtime.powerState",
    "guest.toolsRunningStatus",
    "guest.ipAddress",
    "guest.hostName",
    "config.template",
    "config.managedBy",
    "config.guestId",
    "config.instanceUuid",
    "summary.quickStats.overallCpuUsage",  # MHz: idle auto-down
]
CLUSTER_PROPS = ["name", "configurationEx"]  # dasConfig and vsanConfigInfo live in the subtype: read whole
VCLS_OPTIONS = "config.vcls.clusters."  # vCenter's advanced options: <cluster moid>.enabled (retreat mode when false)
# What the audits add: still one read for every VM and host, plus one for every host's options.
AUDIT_HOST_PROPS = ["configManager.advancedOption", "summary.hardware.cpuModel"]
AUDIT_VM_PROPS = ["config.version", "config.changeTrackingEnabled", "config.hardware.device", "snapshot.rootSnapshotList"]
SGX_HOST_PROPS = ["hardware.sgxInfo"]  # vSphere 7.0 and later; older vCenters reject the path
SGX_VM_PROPS = ["config.sgxInfo"]


def read(content: Any, where: str, audit: bool = False) -> Snapshot:
    """Hosts, clusters and VMs in one PropertyCollector read; ``audit`` adds disks, CBT, options, SGX."""
    api = str(getattr(content.about, "apiVersion", "") or "")
    host_props, vm_props = list(HOST_PROPS), list(VM_PROPS)
    if audit:
        host_props += AUDIT_HOST_PROPS + (SGX_HOST_PROPS if reports_sgx(api) else [])
        vm_props += AUDIT_VM_PROPS + (SGX_VM_PROPS if reports_sgx(api) else [])
    try:
        wanted: dict[type, list[str]] = {
            vim.HostSystem: host_props,
            vim.VirtualMachine: vm_props,
            vim.ClusterComputeResource: CLUSTER_PROPS,
        }
        objects = dict(retrieve(content, wanted))
        options = _host_options(content, objects) if audit else {}
        candidates = [moid for (kind, moid), props in objects.items() if kind is vim.VirtualMachine and might_be_agent(props)]
        marked = agent_marks(content, candidates)
    except vmodl.MethodFault as exc:
        raise faults.error(f"{where}: reading the inventory failed", exc) from exc
    clusters = {moid: props["name"] for (kind, moid), props in objects.items() if kind is vim.ClusterComputeResource}
    notes: list[str] = []
    cluster_infos = _clusters(content, objects, api, notes)
    hosts = tuple(
        sorted(
            (_host(moid, props, clusters, options.get(moid, {})) for (kind, moid), props in objects.items() if kind is vim.HostSystem),
            key=lambda h: h.name,
        )
    )
    vms = tuple(
        sorted(
            (_vm(moid, props, marked.get(moid)) for (kind, moid), props in objects.items() if kind is vim.VirtualMachine),
            key=lambda v: v.name,
        )
    )
    return Snapshot(hosts=hosts, vms=vms, api_version=api, clusters=cluster_infos, notes=tuple(notes))


def _clusters(content: Any, objects: Mapping[tuple[type, str], Mapping[str, Any]], api: str, notes: list[str]) -> tuple[ClusterInfo, ...]:
    """Each cluster's HA and vSAN switches, its vCLS option and (vSAN, 7.0 U3+) its vSAN power status."""
    vcls = _vcls_options(content) if has_vcls(api) else {}
    out = []
    for (kind, moid), props in objects.items():
        if kind is not vim.ClusterComputeResource:
            continue
        ha, vsan_on = switches(props.get("configurationEx"))
        info = ClusterInfo(moid=moid, name=props.get("name", moid), ha=ha, vsan=vsan_on, vcls=vcls.get(moid))
        if info.vsan and has_vsan_power_action(api):
            try:
                info = dataclasses.replace(info, vsan_power=vsan.power_status(content.propertyCollector._stub, moid))
            except (vmodl.MethodFault, OSError) as exc:
                notes.append(
                    f"cluster {info.name}: vSAN power status unreadable ({type(exc).__name__}); vSAN's cluster power action is not used"
                )
        out.append(info)
    return tuple(sorted(out, key=lambda c: c.name))


def switches(config: Any) -> tuple[bool, bool]:
    """A cluster's configurationEx: (HA enabled, vSAN enabled)."""
    das = getattr(config, "dasConfig", None)
    vsan_info = getattr(config, "vsanConfigInfo", None)
    return bool(getattr(das, "enabled", False)), bool(getattr(vsan_info, "enabled", False))


def vcenter_options(content: Any, name: str) -> dict[str, str]:
    """vCenter's advanced options named ``name`` or under it ("a.b." for a subtree): key -> value as
    lower-case text; none set is empty (vCenter answers InvalidName)."""
    try:
        options = content.setting.QueryOptions(name=name)
    except vim.fault.InvalidName:
        return {}
    return {o.key: str(o.value).strip().lower() for o in options or []}


def _vcls_options(content: Any) -> dict[str, str]:
    """cluster moid -> its vCLS option's value ("true"/"false"), for the clusters that have one set."""
    out = {}
    for key, value in vcenter_options(content, VCLS_OPTIONS).items():
        moid, _, rest = key.removeprefix(VCLS_OPTIONS).partition(".")
        if rest == "enabled":
            out[moid] = value
    return out


def _host_options(content: Any, objects: Mapping[tuple[type, str], Mapping[str, Any]]) -> dict[str, dict[str, object]]:
    """Every host's advanced settings in one read of their OptionManagers: host moid -> key -> value."""
    managers = {
        props["configManager.advancedOption"]._moId: moid
        for (kind, moid), props in objects.items()
        if kind is vim.HostSystem and props.get("configManager.advancedOption") is not None
    }
    if not managers:
        return {}
    settings = read_objects(content, vim.option.OptionManager, list(managers), ["setting"])
    return {managers[m]: {o.key: o.value for o in props.get("setting") or []} for m, props in settings.items()}


def read_objects(content: Any, kind: type, moids: list[str], paths: list[str]) -> dict[str, dict[str, Any]]:
    """moid -> {path: value} for objects of one kind named by moid, in one PropertyCollector call (plus
    pages); unset properties are absent. A moid that is gone faults the whole call (ManagedObjectNotFound)."""
    pc = vmodl.query.PropertyCollector
    stub = content.propertyCollector._stub
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=kind(m, stub), skip=False) for m in moids],
        propSet=[pc.PropertySpec(type=kind, pathSet=paths)],
    )
    return {obj.obj._moId: {p.name: p.val for p in obj.propSet} for obj in pages(content.propertyCollector, spec)}


def with_tags(snap: Snapshot, tags: Mapping[str, tuple[str, ...]], note: str | None = None) -> Snapshot:
    vms = tuple(dataclasses.replace(vm, tags=tags.get(vm.moid, ())) for vm in snap.vms)
    return dataclasses.replace(snap, vms=vms, notes=snap.notes + ((note,) if note else ()))


def retrieve(content: Any, wanted: Mapping[type, list[str]], root: Any = None) -> Iterator[tuple[tuple[type, str], dict[str, Any]]]:
    """Every object of the wanted kinds under ``root`` (default: the whole inventory), with the paths asked
    for, through one container view and one PropertyCollector read (plus pages)."""
    view = content.viewManager.CreateContainerView(root or content.rootFolder, list(wanted), True)
    try:
        traverse = vmodl.query.PropertyCollector.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths) for kind, paths in wanted.items()],
        )
        for obj in pages(content.propertyCollector, spec):
            kind = next(k for k in wanted if isinstance(obj.obj, k))
            yield (kind, obj.obj._moId), {p.name: p.val for p in obj.propSet}
    finally:
        view.Destroy()


def pages(pc: Any, spec: Any) -> Iterator[Any]:
    """The objects of one PropertyCollector read, page by page."""
    result = pc.RetrievePropertiesEx(specSet=[spec], options=vmodl.query.PropertyCollector.RetrieveOptions())
    while result is not None:
        yield from result.objects
        result = pc.ContinueRetrievePropertiesEx(token=result.token) if result.token else None


def _moid(ref: Any) -> str | None:
    return ref._moId if ref is not None else None


def _host(moid: str, props: dict[str, Any], clusters: Mapping[str, str], options: Mapping[str, object]) -> HostInfo:
    sgx = props.get("hardware.sgxInfo")
    return HostInfo(
        moid=moid,
        name=props.get("name", moid),
        cluster=clusters.get(_moid(props.get("parent")) or ""),
        connection_state=str(props.get("runtime.connectionState", "unknown")),
        in_maintenance=bool(props.get("runtime.inMaintenanceMode", False)),
        power_state=str(props.get("runtime.powerState", "unknown")),
        options=dict(options),
        cpu_model=props.get("summary.hardware.cpuModel"),
        sgx_state=str(sgx.sgxState) if sgx is not None else None,
        cluster_moid=_moid(props.get("parent")) if _moid(props.get("parent")) in clusters else None,
        esxi_version=str(props["config.product.version"]) if props.get("config.product.version") else None,
    )


# vSphere Cluster Services agents, in every form (Broadcom KB 370219, 370222, 370351, 312147, 316514):
EAM_AGENT = ("com.vmware.vim.eam", "cluster-agent")  # 7.0 U1 - 8.0 U2, and 8.0 U3's fallback: ESX Agent Manager's
EMBEDDED_AGENT = ("VirtualCenter", "vcls-entity")  # 8.0 U3 and 9.0: vCenter's own, CRX VMs in host memory
CRX_GUEST = "crxSys1Guest"  # an embedded agent's guest
AGENT_MARK, EMBEDDED_MARK = "HDCS.agent", "vCLSCRX.agent"  # extraConfig: any vCLS VM; an embedded one


def vcls_kind(managed_by: Any) -> str | None:
    """ "external" or "embedded" for a vCLS agent by its config.managedBy, else None (a name alone proves nothing)."""
    key = (getattr(managed_by, "extensionKey", None), getattr(managed_by, "type", None))
    return "external" if key == EAM_AGENT else "embedded" if key == EMBEDDED_AGENT else None


def system_of(managed_by: Any) -> str | None:
    """What runs a VM for vSphere itself, by its managedBy."""
    return "vcls" if vcls_kind(managed_by) else None


def might_be_agent(props: Mapping[str, Any]) -> bool:
    """Worth a look at its extraConfig: not marked by managedBy, but a CRX guest or a vCLS name."""
    return vcls_kind(props.get("config.managedBy")) is None and (
        props.get("config.guestId") == CRX_GUEST or str(props.get("name", "")).startswith("vCLS")
    )


def agent_marks(content: Any, moids: list[str]) -> dict[str, str]:
    """vm moid -> "embedded" or "external" for those whose extraConfig marks a vCLS agent (HDCS.agent =
    true): one PropertyCollector read of the few candidates' extraConfig (never every VM's)."""
    if not moids:
        return {}
    try:
        found = read_objects(content, vim.VirtualMachine, moids, ["config.extraConfig"])
    except vmodl.fault.ManagedObjectNotFound:  # one went away since the bulk read: look at the others one by one
        if len(moids) == 1:
            return {}
        return {m: kind for one in moids for m, kind in agent_marks(content, [one]).items()}
    out = {}
    for moid, props in found.items():
        marks = {str(getattr(o, "key", "")): str(getattr(o, "value", "")).strip().lower() for o in props.get("config.extraConfig") or []}
        if marks.get(AGENT_MARK) == "true":
            out[moid] = "embedded" if marks.get(EMBEDDED_MARK) == "true" else "external"
    return out


def _vm(moid: str, props: dict[str, Any], marked: str | None = None) -> VMInfo:
    kind = vcls_kind(props.get("config.managedBy")) or marked
    return VMInfo(
        moid=moid,
        name=props.get("name", moid),
        host_moid=_moid(props.get("runtime.host")),
        power_state=str(props.get("runtime.powerState", "unknown")),
        tools_running=props.get("guest.toolsRunningStatus") == "guestToolsRunning",
        guest_ip=props.get("guest.ipAddress") or None,
        guest_hostname=props.get("guest.hostName") or None,
        template=bool(props.get("config.template", False)),
        system="vcls" if kind else None,
        vcls_embedded=kind == "embedded",
        uuid=props.get("config.instanceUuid") or None,
        cpu_mhz=_int_or_none(props.get("summary.quickStats.overallCpuUsage")),
        hw_version=_hw_version(props.get("config.version")),
        cbt=bool(props.get("config.changeTrackingEnabled")),
        has_snapshots=bool(props.get("snapshot.rootSnapshotList")),
        disks=tuple(_disk(d) for d in props.get("config.hardware.device") or [] if isinstance(d, vim.vm.device.VirtualDisk)),
        sgx_epc_mb=int(sgx.epcSize) if (sgx := props.get("config.sgxInfo")) is not None and sgx.epcSize else None,
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _hw_version(text: str | None) -> int | None:
    try:
        return int(str(text).removeprefix("vmx-")) if text else None
    except ValueError:
        return None


def _disk(device: Any) -> Disk:
    backing = device.backing
    label = device.deviceInfo.label if device.deviceInfo is not None else f"disk {device.key}"
    return Disk(
        label=label,
        file=str(getattr(backing, "fileName", "") or ""),
        thin=bool(getattr(backing, "thinProvisioned", False)),
        eager_zeroed=bool(getattr(backing, "eagerlyScrub", False)),
        sharing=str(getattr(backing, "sharing", None) or "sharingNone"),
    )
