"""The vSphere calls of a power cycle, each translated to labswitch errors, with bulk task waits."""

from __future__ import annotations

import contextlib
import http.client
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyVmomi import VmomiSupport, vim, vmodl

from labswitch.cancel import Cancel
from labswitch.errors import VSphereError
from labswitch.vsphere import vsan
from labswitch.vsphere.faults import TASK_DONE, TASK_PATHS, fault_text, task_outcome
from labswitch.vsphere.inventory import agent_marks, might_be_agent, pages, read_objects, retrieve, switches, system_of, vcenter_options
from labswitch.vsphere.watch import wait_for


class Actions:
    """Start actions on managed objects by moid; wait for their tasks through the change feed."""

    def __init__(
        self, si: Any, content: Any, timeout: float, cancel: Cancel | None = None, relogin: Callable[[], None] | None = None
    ) -> None:
        self.content = content
        self.stub = si._stub
        self.poll_ceiling = max(1.0, timeout - 5)
        self.cancel = cancel  # every wait stops when it is set
        self.relogin = relogin  # a new session on the same connection, when vCenter no longer has ours (it restarted)

    def vm(self, moid: str) -> Any:
        return vim.VirtualMachine(moid, self.stub)

    def host(self, moid: str) -> Any:
        return vim.HostSystem(moid, self.stub)

    # Each starter returns a Task (or None when the call completes at once) or raises VSphereError.
    def shutdown_guest(self, moid: str) -> None:
        self.call(lambda: self.vm(moid).ShutdownGuest())

    def power_off_vm(self, moid: str) -> Any:
        return self.call(lambda: self.vm(moid).PowerOffVM_Task())

    def power_on_vm(self, moid: str) -> Any:
        return self.call(lambda: self.vm(moid).PowerOnVM_Task())

    def only_datacenter(self) -> Any | None:
        """The lab's datacenter when it has exactly one (a multi-VM power-on is per datacenter), else None."""
        view = self.call(lambda: self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.Datacenter], True))
        try:
            found = self.call(lambda: list(view.view))
        finally:
            with contextlib.suppress(vmodl.MethodFault, OSError, http.client.HTTPException):
                view.DestroyView()
        return found[0] if len(found) == 1 else None

    def power_on_multi(self, datacenter: Any, moids: Sequence[str]) -> Any | None:
        """Datacenter.PowerOnMultiVM_Task (DRS automation overridden: started, not recommended); None where
        vCenter does not offer it (an ESXi host answers NotImplemented)."""
        option = vim.option.OptionValue(key="OverrideAutomationLevel", value=True)

        def start() -> Any | None:
            try:
                return datacenter.PowerOnMultiVM_Task(vm=[self.vm(m) for m in moids], option=[option])
            except (vmodl.fault.NotImplemented, vmodl.fault.NotSupported, vmodl.fault.MethodNotFound):
                return None

        return self.call(start)

    def cluster(self, moid: str) -> Any:
        return vim.ClusterComputeResource(moid, self.stub)

    def enter_maintenance(self, moid: str, no_action: bool = False) -> Any:
        """``no_action``: vSAN moves no data off the host (objectAction noAction)."""
        spec = vim.host.MaintenanceSpec(vsanMode=vim.vsan.host.DecommissionMode(objectAction="noAction")) if no_action else None
        return self.call(lambda: self.host(moid).EnterMaintenanceMode_Task(timeout=0, evacuatePoweredOffVms=False, maintenanceSpec=spec))

    def exit_maintenance(self, moid: str) -> Any:
        return self.call(lambda: self.host(moid).ExitMaintenanceMode_Task(timeout=0))

    def shutdown_host(self, moid: str) -> Any:
        return self.call(lambda: self.host(moid).ShutdownHost_Task(force=False))

    def reboot_host(self, moid: str) -> Any:
        return self.call(lambda: self.host(moid).RebootHost_Task(force=False))

    # Cluster settings: HA, the vCLS option (retreat mode), vSAN's cluster power action.
    def set_ha(self, moid: str, enabled: bool) -> Any:
        spec = vim.cluster.ConfigSpecEx(dasConfig=vim.cluster.DasConfigInfo(enabled=enabled))
        return self.call(lambda: self.cluster(moid).ReconfigureComputeResource_Task(spec=spec, modify=True))

    def ha_enabled(self, moid: str) -> bool:
        ha, _ = switches(self.read(self.cluster(moid), ["configurationEx"]).get("configurationEx"))
        return ha

    def deployment_mode(self, moid: str) -> str | None:
        """configurationEx.systemVMsConfig.deploymentMode (8.0 U2+): SYSTEM_MANAGED, ABSENT (retreat mode), or None."""
        config = self.read(self.cluster(moid), ["configurationEx"]).get("configurationEx")
        mode = getattr(getattr(config, "systemVMsConfig", None), "deploymentMode", None)
        return str(mode) if mode else None

    def set_deployment_mode(self, moid: str, mode: str) -> Any:
        spec = vim.cluster.ConfigSpecEx(systemVMsConfig=vim.cluster.SystemVMsConfigSpec(deploymentMode=mode))
        return self.call(lambda: self.cluster(moid).ReconfigureComputeResource_Task(spec=spec, modify=True))

    def vcenter_option(self, key: str) -> str | None:
        """A vCenter advanced option's value as text; None when it is not set."""
        options: dict[str, str] = self.call(lambda: vcenter_options(self.content, key))
        return options.get(key)

    def set_vcenter_option(self, key: str, value: str) -> None:
        self.call(lambda: self.content.setting.UpdateOptions(changedValue=[vim.option.OptionValue(key=key, value=value)]))

    def agents(self, cluster: str) -> dict[str, str]:
        """The cluster's vCLS agent VMs (every form) now: moid -> power state, in one read (two with extraConfig marks)."""
        wanted: dict[type, list[str]] = {vim.VirtualMachine: ["name", "config.managedBy", "config.guestId", "runtime.powerState"]}
        objects = self.call(lambda: list(retrieve(self.content, wanted, root=self.cluster(cluster))))
        marked = self.call(lambda: agent_marks(self.content, [moid for (_, moid), props in objects if might_be_agent(props)]))
        return {
            moid: str(props.get("runtime.powerState"))
            for (_, moid), props in objects
            if system_of(props.get("config.managedBy")) == "vcls" or moid in marked
        }

    def vsan_power_status(self, cluster: str) -> str:
        return str(self.call(lambda: vsan.power_status(self.stub, cluster)))

    def vsan_power_action(self, cluster: str, target: str) -> Any:
        return self.call(lambda: vsan.power_action(self.stub, cluster, target))

    # What the fixes for audit findings change: a host's advanced option, a VM's CBT and snapshots.
    def set_host_option(self, moid: str, key: str, value: str) -> Any:
        """Set a host's advanced option (``value`` as text: "true"/"false" or an integer) and read it back."""
        typed: object = value == "true" if value in ("true", "false") else VmomiSupport.GetVmodlType("long")(int(value))
        manager = self.call(lambda: self.host(moid).configManager.advancedOption)
        self.call(lambda: manager.UpdateOptions(changedValue=[vim.option.OptionValue(key=key, value=typed)]))
        return {o.key: o.value for o in self.call(lambda: manager.QueryOptions(name=key))}.get(key)

    def set_change_tracking(self, moid: str, enabled: bool) -> Any:
        return self.call(lambda: self.vm(moid).ReconfigVM_Task(spec=vim.vm.ConfigSpec(changeTrackingEnabled=enabled)))

    def create_snapshot(self, moid: str, name: str, description: str) -> Any:
        return self.call(lambda: self.vm(moid).CreateSnapshot_Task(name=name, description=description, memory=False, quiesce=False))

    def remove_snapshot(self, snapshot: Any) -> Any:
        return self.call(lambda: snapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True))

    def cbt_and_snapshots(self, moid: str) -> tuple[bool, list[str]]:
        """A VM's changeTrackingEnabled and the names of all its snapshots, read in one call."""
        now = self.read(self.vm(moid), ["config.changeTrackingEnabled", "snapshot.rootSnapshotList"])
        names, todo = [], list(now.get("snapshot.rootSnapshotList") or [])
        while todo:
            node = todo.pop()
            names.append(str(node.name))
            todo += node.childSnapshotList or []
        return bool(now.get("config.changeTrackingEnabled")), names

    def wait_tasks(self, tasks: Mapping[str, Any], timeout: float) -> dict[str, str | None]:
        """Wait for many tasks at once: key -> None on success, else the fault text."""
        by_moid = {task._moId: key for key, task in tasks.items()}
        state, _ = wait_for(
            self.content,
            list(tasks.values()),
            list(TASK_PATHS),
            lambda s: all(s.get(m, {}).get("info.state") in TASK_DONE for m in by_moid),
            timeout,
            self.poll_ceiling,
            cancel=self.cancel,
        )
        return {key: task_outcome(state.get(moid, {}), timeout) for moid, key in by_moid.items()}

    def power_states(self, moids: Sequence[str]) -> dict[str, str]:
        """Each VM's runtime.powerState now, in one PropertyCollector call."""
        if not moids:
            return {}
        found = self.call(lambda: read_objects(self.content, vim.VirtualMachine, list(moids), ["runtime.powerState"]))
        return {moid: str(props.get("runtime.powerState")) for moid, props in found.items()}

    def read(self, obj: Any, paths: Sequence[str]) -> dict[str, Any]:
        """Properties of one object in one PropertyCollector call; unset properties are absent."""
        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=obj, skip=False)], propSet=[pc.PropertySpec(type=type(obj), pathSet=list(paths))])
        objects = self.call(lambda: list(pages(self.content.propertyCollector, spec)))
        return {p.name: p.val for o in objects for p in o.propSet}

    def call(self, fn: Any) -> Any:
        """Run one vSphere call; a fault becomes VSphereError with its name and message. A session vCenter no
        longer has (it restarted) is logged in again, once, and the call made again."""
        try:
            return self._call(fn)
        except vim.fault.NotAuthenticated as exc:
            if self.relogin is None:
                raise VSphereError(fault_text(exc)) from exc
        self.relogin()
        try:
            return self._call(fn)
        except vim.fault.NotAuthenticated as exc:
            raise VSphereError(f"{fault_text(exc)} (a new session was refused too)") from exc

    @staticmethod
    def _call(fn: Any) -> Any:
        try:
            return fn()
        except vim.fault.NotAuthenticated:
            raise
        except vmodl.MethodFault as exc:
            raise VSphereError(fault_text(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:  # timeouts and dropped connections: per step, not a crash
            raise VSphereError(f"no answer from vCenter ({type(exc).__name__}); raise vcenter.timeout if it is overloaded") from exc
