"""The power cycle's vSphere port, in the lab's own words: shut guests down, wait until they are off,
enter maintenance, wait until a host is connected. The step modules speak only this; tests drive them
against an in-memory fake of it (tests/unit/fake_lab.py).

One change feed (vsphere/feed.py) serves every wait of a run, task waits included.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from labswitch.cancel import Cancel
from labswitch.errors import EndpointError, VSphereError
from labswitch.snapshot import has_system_vms_config
from labswitch.vsphere.actions import Actions
from labswitch.vsphere.faults import fault_text
from labswitch.vsphere.feed import Feed

# The property each condition reads: the feed follows only those a run needs (vCenter's cost, and the
# simulator's, grows with objects x properties followed).
PATHS = {
    "off": "runtime.powerState",
    "on": "runtime.powerState",
    "tools": "guest.toolsRunningStatus",
    "heartbeat": "guestHeartbeatStatus",
    "connected": "runtime.connectionState",
    "gone": "runtime.connectionState",
}
CONDITIONS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "off": lambda p: p.get("runtime.powerState") == "poweredOff",
    "on": lambda p: p.get("runtime.powerState") == "poweredOn",
    "tools": lambda p: p.get("guest.toolsRunningStatus") == "guestToolsRunning",
    "heartbeat": lambda p: p.get("guestHeartbeatStatus") == "green",
    "connected": lambda p: p.get("runtime.connectionState") == "connected",
    "gone": lambda p: p.get("runtime.connectionState") not in (None, "connected"),
}


VCLS_OPTION = "config.vcls.clusters.{}.enabled"  # vCenter's advanced option; false: the cluster is in retreat mode
# From 8.0 U2 retreat mode is a cluster setting (systemVMsConfig.deploymentMode); the journal keeps the option's words.
MODE_OF = {"false": "ABSENT", "true": "SYSTEM_MANAGED"}
WORD_OF = {mode: word for word, mode in MODE_OF.items()}


class LabPort(Protocol):
    """What the step modules need of vSphere. A call that does not do what it says raises EndpointError (usually
    VSphereError) with the one line the step fails with; the bulk power calls, which act on many VMs at once, answer
    per VM (None: done, else why not). Waits raise Interrupted when cancelled."""

    def shutdown_guest(self, vm: str) -> None: ...
    def power_off_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]: ...
    def power_on_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]: ...
    def enter_maintenance(self, host: str, timeout: float) -> None: ...
    def exit_maintenance(self, host: str, timeout: float) -> None: ...
    def shutdown_host(self, host: str, timeout: float) -> None: ...
    def reboot_host(self, host: str, timeout: float) -> None: ...
    def in_maintenance(self, host: str) -> bool: ...
    def enter_maintenance_no_action(self, host: str, timeout: float) -> None:
        """Maintenance mode without moving vSAN data (objectAction noAction)."""
        ...

    def cluster_setting(self, cluster: str, setting: str) -> str | None:
        """A cluster setting as text: "ha" ("true"/"false"), "vcls" (its vCenter option; None: not set),
        "vsan-power" (vSAN's cluster power status)."""
        ...

    def change_cluster_setting(self, cluster: str, setting: str, value: str, timeout: float) -> None:
        """Set "ha" or "vcls" to ``value``."""
        ...

    def vcls_agents(self, cluster: str) -> dict[str, str]:
        """The cluster's vCLS agent VMs now: moid -> power state."""
        ...

    def vsan_power(self, cluster: str, target: str, timeout: float) -> None:
        """vSAN's cluster power action to ``target`` (clusterPoweredOff | clusterPoweredOn)."""
        ...

    def set_host_option(self, host: str, key: str, value: str) -> Any:
        """Set a host's advanced option (``value``: "true", "false" or an integer, as text); its value read back."""
        ...

    def reset_cbt(self, vm: str, snapshot: str, description: str, timeout: float) -> tuple[bool, list[str]]:
        """CBT off, a snapshot created and removed (consolidating), CBT on again whatever failed between; then
        read back: (CBT on, the VM's snapshot names)."""
        ...

    def wait(
        self, objects: Sequence[str], condition: str, timeout: float, on_each: Callable[[str], None] | None = None, reread: bool = True
    ) -> set[str]:
        """Until every object meets ``condition`` (CONDITIONS) or ``timeout``; those that met it, each told to on_each.
        Before giving up the objects are read once more directly, unless ``reread`` is False (a hint, not a verdict)."""
        ...

    def close(self) -> None: ...


class VSpherePort:
    """LabPort over vCenter: calls through Actions (at most ``max_parallel`` at once), waits on one change feed."""

    # Over 200 lines: one short method per LabPort call, the protocol read in one place (the calls are Actions').

    def __init__(
        self, actions: Actions, vms: Mapping[str, set[str]], hosts: Mapping[str, set[str]], max_parallel: int, cancel: Cancel
    ) -> None:
        """``vms`` and ``hosts``: each object the run will wait on, with the conditions it will wait for."""
        self.actions = actions
        self.cancel = cancel
        self._calls = threading.BoundedSemaphore(max_parallel)
        self._once = threading.Lock()
        self._multi: Any = ...  # the datacenter for multi-VM power-ons; None: not offered; ...: not looked up yet
        api = str(getattr(getattr(actions.content, "about", None), "apiVersion", "") or "")
        self._system_vms = has_system_vms_config(api)  # retreat mode through the cluster's systemVMsConfig
        vm_paths = sorted({PATHS[c] for conditions in vms.values() for c in conditions})
        host_paths = sorted({PATHS[c] for conditions in hosts.values() for c in conditions})
        self._feed = Feed(actions, sorted(vms), vm_paths, sorted(hosts), host_paths, cancel)

    def shutdown_guest(self, vm: str) -> None:
        with self._calls:
            self.actions.shutdown_guest(vm)

    def power_off_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]:
        outcome = self._tasks({vm: functools.partial(self.actions.power_off_vm, vm) for vm in vms}, timeout)
        return self._settled(outcome, "poweredOff")

    def power_on_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]:
        """One PowerOnMultiVM_Task for the VMs (a host's share of a wave) where vCenter offers it, else one
        PowerOnVM_Task each; so too for any VM the multi-VM result does not account for and that is not on."""
        outcome: dict[str, str | None] = {}
        datacenter = self._datacenter() if len(vms) > 1 else None
        together = self._power_on_together(datacenter, vms, timeout) if datacenter is not None else None
        outcome.update(together or {})
        rest = [vm for vm in vms if vm not in outcome]
        if rest and together is not None:
            # Not accounted for (govmomi's simulator returns no per-VM result): read, don't assume.
            already = {vm for vm, power in self._power_states(rest).items() if power == "poweredOn"}
            outcome.update(dict.fromkeys(already))
            rest = [vm for vm in rest if vm not in already]
        if rest:
            outcome.update(self._tasks({vm: functools.partial(self.actions.power_on_vm, vm) for vm in rest}, timeout))
        return self._settled(outcome, "poweredOn")

    def _settled(self, outcome: dict[str, str | None], wanted: str) -> dict[str, str | None]:
        """Idempotent power: a VM whose call failed (InvalidPowerState: already so, or any race) but that is
        ``wanted`` now is done. Read in one call; an unreadable state leaves the error as it was."""
        failed = [vm for vm, error in outcome.items() if error is not None]
        if not failed:
            return outcome
        for vm, power in self._power_states(failed).items():
            if power == wanted:
                outcome[vm] = None
        return outcome

    def _power_states(self, vms: Sequence[str]) -> dict[str, str]:
        try:
            with self._calls:
                return self.actions.power_states(vms)
        except VSphereError:
            return {}

    def _datacenter(self) -> Any | None:
        """The datacenter for multi-VM power-ons: found once per run; None when there is not exactly one
        or vCenter does not offer the call."""
        with self._once:
            if self._multi is ...:
                with self._calls:
                    try:
                        self._multi = self.actions.only_datacenter()
                    except VSphereError:
                        self._multi = None
            return self._multi

    def _power_on_together(self, datacenter: Any, vms: Sequence[str], timeout: float) -> dict[str, str | None] | None:
        """vm -> None or why not, for the VMs the multi-VM power-on accounted for (attempted or not); None
        when vCenter does not offer it."""
        self.cancel.check()
        try:
            with self._calls:
                task = self.actions.power_on_multi(datacenter, vms)
        except VSphereError as exc:
            return {vm: str(exc) for vm in vms}
        if task is None:  # not offered here: one call per VM from now on
            with self._once:
                self._multi = None
            return None
        error = self._feed.wait_tasks({"multi": task}, timeout)["multi"]
        if error is not None:
            return {vm: error for vm in vms}
        with self._calls:
            result = self.actions.read(task, ["info.result"]).get("info.result")
        outcome: dict[str, str | None] = {}
        for skipped in getattr(result, "notAttempted", None) or []:
            if (vm := _moid(getattr(skipped, "vm", None))) is not None:
                fault = getattr(skipped, "fault", None)
                outcome[vm] = fault_text(fault) if fault is not None else "not attempted by vCenter"
        started = {
            vm: a.task for a in getattr(result, "attempted", None) or [] if (vm := _moid(getattr(a, "vm", None))) and a.task is not None
        }
        if started:
            outcome.update(self._feed.wait_tasks(started, timeout))
        return outcome

    def enter_maintenance(self, host: str, timeout: float) -> None:
        self._task(lambda: self.actions.enter_maintenance(host), timeout)

    def exit_maintenance(self, host: str, timeout: float) -> None:
        self._task(lambda: self.actions.exit_maintenance(host), timeout)

    def shutdown_host(self, host: str, timeout: float) -> None:
        self._task(lambda: self.actions.shutdown_host(host), timeout)

    def reboot_host(self, host: str, timeout: float) -> None:
        self._task(lambda: self.actions.reboot_host(host), timeout)

    def enter_maintenance_no_action(self, host: str, timeout: float) -> None:
        self._task(lambda: self.actions.enter_maintenance(host, no_action=True), timeout)

    def cluster_setting(self, cluster: str, setting: str) -> str | None:
        with self._calls:
            if setting == "ha":
                return "true" if self.actions.ha_enabled(cluster) else "false"
            if setting == "vcls" and self._system_vms:
                return WORD_OF.get(self.actions.deployment_mode(cluster) or "")
            if setting == "vcls":
                return self.actions.vcenter_option(VCLS_OPTION.format(cluster))
            if setting == "vsan-power":
                return self.actions.vsan_power_status(cluster)
        raise ValueError(setting)

    def change_cluster_setting(self, cluster: str, setting: str, value: str, timeout: float) -> None:
        if setting == "vcls" and self._system_vms:
            self._task(lambda: self.actions.set_deployment_mode(cluster, MODE_OF[value]), timeout)
        elif setting == "vcls":
            with self._calls:
                self.actions.set_vcenter_option(VCLS_OPTION.format(cluster), value)
        else:
            self._task(lambda: self.actions.set_ha(cluster, value == "true"), timeout)

    def vcls_agents(self, cluster: str) -> dict[str, str]:
        with self._calls:
            return self.actions.agents(cluster)

    def vsan_power(self, cluster: str, target: str, timeout: float) -> None:
        self._task(lambda: self.actions.vsan_power_action(cluster, target), timeout)

    def set_host_option(self, host: str, key: str, value: str) -> Any:
        with self._calls:
            return self.actions.set_host_option(host, key, value)

    def reset_cbt(self, vm: str, snapshot: str, description: str, timeout: float) -> tuple[bool, list[str]]:
        self._task(lambda: self.actions.set_change_tracking(vm, False), timeout, "CBT off")
        try:
            task = self._task(lambda: self.actions.create_snapshot(vm, snapshot, description), timeout, "create snapshot")
            created = self.actions.call(lambda: task.info.result)
            self._task(lambda: self.actions.remove_snapshot(created), timeout, "remove snapshot")
        finally:
            self._task(lambda: self.actions.set_change_tracking(vm, True), timeout, "CBT on")  # never left without CBT
        with self._calls:
            return self.actions.cbt_and_snapshots(vm)

    def in_maintenance(self, host: str) -> bool:
        """Read directly: a host that just reconnected may not have sent its maintenance flag down the feed yet."""
        with self._calls:
            return bool(self.actions.read(self.actions.host(host), ["runtime.inMaintenanceMode"]).get("runtime.inMaintenanceMode"))

    def wait(
        self, objects: Sequence[str], condition: str, timeout: float, on_each: Callable[[str], None] | None = None, reread: bool = True
    ) -> set[str]:
        return self._feed.wait(objects, CONDITIONS[condition], timeout, on_each, reread)

    def close(self) -> None:
        self._feed.stop()

    def _task(self, start: Callable[[], Any], timeout: float, what: str = "") -> Any:
        """One task, waited for on the change feed: the task, or VSphereError with its fault (after ``what``)."""
        started: list[Any] = []

        def begin() -> Any:
            started.append(start())
            return started[0]

        error = self._tasks({"task": begin}, timeout)["task"]
        if error is not None:
            raise VSphereError(f"{what}: {error}" if what else error)
        return started[0]

    def _tasks(self, starters: Mapping[str, Callable[[], Any]], timeout: float) -> dict[str, str | None]:
        """Start one task per key (errors per key), wait for them all on the change feed: key -> None or the error."""
        outcome: dict[str, str | None] = {}
        tasks = {}
        for key, start in starters.items():
            self.cancel.check()
            try:
                with self._calls:
                    tasks[key] = start()
            except EndpointError as exc:
                outcome[key] = str(exc)
        if tasks:
            try:
                outcome.update(self._feed.wait_tasks(tasks, timeout))
            except VSphereError as exc:
                outcome.update({key: str(exc) for key in tasks})
        return outcome


def _moid(ref: Any) -> str | None:
    moid = getattr(ref, "_moId", None)
    return moid if isinstance(moid, str) else None
