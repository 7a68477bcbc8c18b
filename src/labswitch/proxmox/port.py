"""The power cycle's port (vsphere.port.LabPort) over a Proxmox VE cluster: the step modules call it as they call
vCenter's. Guests' starts and stops are UPID tasks, waited on; waits for a guest or node state read the whole
cluster in one call (/cluster/resources, /cluster/status) once a second: Proxmox VE has no change feed.

Cluster settings, as text the journal keeps: "pve-ha" (every HA resource's requested state, as JSON), "pve-ha-armed"
(HA's armed state, pve-ha-manager 5.1.3+: "armed", or "disarmed:ignore" once disarmed with that resource mode), "ceph-flags"
(the OSD flags set, comma-separated), "ceph-health" (read only: "active" once every placement group is, else how
they stand)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labswitch.cancel import Cancel
from labswitch.errors import ConnectionFailed, EndpointError, ProxmoxError
from labswitch.plan.proxmox import CEPH_DOWN_FLAGS
from labswitch.proxmox.client import Client
from labswitch.proxmox.inventory import NODE, fencing

POLL = 1.0  # seconds between two reads of the cluster while waiting


class ProxmoxPort:
    """LabPort over one cluster (see the module docstring)."""

    # About 200 lines: one short method per LabPort call, the protocol read in one place.

    def __init__(self, client: Client, cancel: Cancel, max_parallel: int = 16) -> None:
        self.client = client
        self.cancel = cancel
        self._calls = threading.BoundedSemaphore(max_parallel)
        self._nodes: dict[str, str] = {}  # guest moid -> its node, as last read

    # -- guests --------------------------------------------------------------------------------
    def shutdown_guest(self, vm: str) -> None:
        """Asks the guest to shut down (ACPI; a container's init); the wait for off follows through wait()."""
        kind, vmid = vm.split("/", 1)
        node = self._node_of(vm)
        with self._calls:
            self.client.call(f"shut down {vm}", lambda api: api.nodes(node)(kind)(vmid).status.shutdown.post())

    def power_off_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]:
        return self._power(vms, "stop", "stopped", timeout)

    def power_on_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]:
        return self._power(vms, "start", "running", timeout)

    def _power(self, vms: Sequence[str], verb: str, wanted: str, timeout: float) -> dict[str, str | None]:
        """One task per guest, each waited for; a guest that is ``wanted`` afterwards is done whatever its task said
        (already running, an HA request the manager carried out)."""
        outcome: dict[str, str | None] = {}
        tasks: dict[str, tuple[str, str]] = {}
        refused: set[str] = set()  # the API answered no (no quorum, no privilege): nothing was started, nothing to wait for
        for vm in vms:
            self.cancel.check()
            kind, vmid = vm.split("/", 1)
            try:
                node = self._node_of(vm)
                with self._calls:
                    upid: str = self.client.call(f"{verb} {vm}", _guest_call(node, kind, vmid, verb))
                tasks[vm] = (node, str(upid))
            except EndpointError as exc:
                outcome[vm] = str(exc)
                if not isinstance(exc, ConnectionFailed):
                    refused.add(vm)
        outcome.update(self._wait_tasks(tasks, timeout))
        pending = [vm for vm in vms if vm not in refused and (outcome.get(vm) is not None or vm in tasks)]
        reached = self.wait(pending, "on" if wanted == "running" else "off", min(timeout, 30.0), reread=False) if pending else set()
        for vm in pending:
            if vm in reached:
                outcome[vm] = None
            elif outcome.get(vm) is None:
                outcome[vm] = f"{vm} not {wanted} after its {verb} task"
        return outcome

    def _wait_tasks(self, tasks: Mapping[str, tuple[str, str]], timeout: float) -> dict[str, str | None]:
        """Each UPID until it stopped: None when it ended OK, else its exit status."""
        deadline = time.monotonic() + timeout
        left = dict(tasks)
        out: dict[str, str | None] = {}
        while left:
            for key, (node, upid) in list(left.items()):
                try:
                    status: dict[str, Any] = self.client.call(f"read task {upid}", _task_call(node, upid))
                except EndpointError as exc:
                    out[key] = str(exc)
                    del left[key]
                    continue
                if status.get("status") == "stopped":
                    exit_status = str(status.get("exitstatus", ""))
                    out[key] = None if exit_status == "OK" else f"{status.get('type', 'task')} {key}: {exit_status}"
                    del left[key]
            if not left:
                break
            if time.monotonic() >= deadline:
                out.update({key: f"its task still running after {timeout:.0f}s (it may yet finish)" for key in left})
                break
            self.cancel.sleep(min(POLL / 2, max(0.0, deadline - time.monotonic())))
        return out

    def _node_of(self, vm: str) -> str:
        if vm not in self._nodes:
            self._read_guests()
        if vm not in self._nodes:
            raise ProxmoxError(f"{self.client.where}: no guest {vm} in the cluster")
        return self._nodes[vm]

    def _read_guests(self) -> dict[str, str]:
        """Every guest's status now (moid -> running | stopped | unknown ...), its node remembered."""
        found = self.client.call("list the guests", lambda api: api.cluster.resources.get(type="vm"))
        self._nodes.update({str(g["id"]): str(g["node"]) for g in found})
        return {str(g["id"]): str(g.get("status")) for g in found}

    # -- nodes ---------------------------------------------------------------------------------
    def shutdown_host(self, host: str, timeout: float) -> None:
        self._node_command(host, "shutdown")

    def reboot_host(self, host: str, timeout: float) -> None:
        self._node_command(host, "reboot")

    def _node_command(self, host: str, command: str) -> None:
        node = host.removeprefix(NODE)
        with self._calls:
            self.client.call(f"{command} node {node}", lambda api: api.nodes(node).status.post(command=command))

    def enter_maintenance(self, host: str, timeout: float) -> None:
        raise ProxmoxError(f"{self.client.where}: node {host.removeprefix(NODE)}: maintenance mode is vSphere's; not planned on Proxmox VE")

    enter_maintenance_no_action = enter_maintenance
    exit_maintenance = enter_maintenance

    def in_maintenance(self, host: str) -> bool:
        return False

    # -- cluster settings ----------------------------------------------------------------------
    def cluster_setting(self, cluster: str, setting: str) -> str | None:
        if setting == "pve-ha":
            found = self.client.call("list the HA resources", lambda api: api.cluster.ha.resources.get()) or []
            return json.dumps({str(r["sid"]): str(r.get("state", "started")) for r in found}, sort_keys=True)
        if setting == "ceph-flags":
            found = self.client.call("read the Ceph flags", lambda api: api.cluster.ceph.flags.get())
            return ",".join(sorted(str(f["name"]) for f in found if int(f.get("value", 0) or 0)))
        if setting == "pve-ha-armed":
            return fencing(self.client)
        if setting == "ceph-health":
            return _pgs(self.client.call("read Ceph's status", lambda api: api.cluster.ceph.status.get()))
        if setting == "ceph-services":
            return _services(self.client.call("read Ceph's status", lambda api: api.cluster.ceph.status.get()))
        raise ValueError(setting)

    def change_cluster_setting(self, cluster: str, setting: str, value: str, timeout: float) -> None:
        """ "pve-ha": every resource named in ``value`` (JSON sid -> state) given that state; "ceph-flags": the flags
        labswitch manages set exactly as ``value`` lists them (the others left as they are), the task waited for."""
        if setting == "pve-ha":
            wanted: dict[str, str] = json.loads(value)
            now = json.loads(self.cluster_setting(cluster, "pve-ha") or "{}")
            for sid, state in wanted.items():
                if sid in now and now[sid] != state:
                    self.client.call(f"set HA resource {sid} to {state}", _ha_call(sid, state))
            return
        if setting == "pve-ha-armed":
            self._arm(value, timeout)
            return
        if setting == "ceph-flags":
            chosen = set(filter(None, value.split(",")))
            flags = {name: int(name in chosen) for name in CEPH_DOWN_FLAGS}  # the flags a down sets; the others are left
            upid = self.client.call("set the Ceph flags", lambda api: api.cluster.ceph.flags.put(**flags))
            if isinstance(upid, str) and upid.startswith("UPID:"):
                node = upid.split(":")[1]
                error = self._wait_tasks({"flags": (node, upid)}, timeout)["flags"]
                if error is not None:
                    raise ProxmoxError(f"{self.client.where}: Ceph flags: {error}")
            return
        raise ValueError(setting)

    def _arm(self, wanted: str, timeout: float) -> None:
        """HA disarmed ("disarmed:ignore", "disarmed:freeze") or armed ("armed"): the command is queued for the CRM
        (pve-ha-manager API2/HA/Status.pm), which applies it on its next round: waited for until HA says so."""
        state, _, mode = wanted.partition(":")
        if state == "disarmed":
            self.client.call(f"disarm HA ({mode})", lambda api: api.cluster.ha.status("disarm-ha").post(**{"resource-mode": mode}))
        else:
            self.client.call("arm HA", lambda api: api.cluster.ha.status("arm-ha").post())
        deadline = time.monotonic() + timeout
        while (now := fencing(self.client)) != state and not (state == "armed" and now == "standby"):
            if time.monotonic() >= deadline:
                raise ProxmoxError(f"{self.client.where}: HA still {now} after {timeout:.0f}s, not {state}")
            self.cancel.sleep(POLL)

    def vcls_agents(self, cluster: str) -> dict[str, str]:
        return {}  # no vCLS on Proxmox VE

    def vsan_power(self, cluster: str, target: str, timeout: float) -> None:
        raise ProxmoxError(f"{self.client.where}: vSAN is vSphere's")

    def set_host_option(self, host: str, key: str, value: str) -> Any:
        raise ProxmoxError(f"{self.client.where}: host options are vSphere's")

    def reset_cbt(self, vm: str, snapshot: str, description: str, timeout: float) -> tuple[bool, list[str]]:
        raise ProxmoxError(f"{self.client.where}: changed block tracking is vSphere's")

    # -- waits ---------------------------------------------------------------------------------
    def wait(
        self, objects: Sequence[str], condition: str, timeout: float, on_each: Callable[[str], None] | None = None, reread: bool = True
    ) -> set[str]:
        """Until every guest or node meets ``condition`` (off, on, tools, heartbeat; connected, gone), reading the
        cluster once a second: those that met it, each told to ``on_each`` as it does. No node answering at the end
        is ConnectionFailed: what did not meet it is unknown, not "still on"; a node going down or the cluster
        booting meanwhile is read again."""
        deadline = time.monotonic() + timeout
        met: set[str] = set()
        left = set(objects)
        unread: ConnectionFailed | None = None
        while left:
            try:
                states, unread = self._states(left, condition), None
            except ConnectionFailed as exc:
                states, unread = {}, exc
            for obj in sorted(left):
                if _meets(condition, states.get(obj)):
                    met.add(obj)
                    left.discard(obj)
                    if on_each is not None:
                        on_each(obj)
            if not left or time.monotonic() >= deadline:
                break
            self.cancel.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
        if left and unread is not None and condition != "gone":  # "gone" is a hint only (steps.bmc: the BMC decides)
            raise ConnectionFailed(f"{unread} (whether it reached {condition!r}: its state is unknown)")
        return met

    def _states(self, objects: set[str], condition: str) -> dict[str, str]:
        if condition in ("connected", "gone"):
            status = self.client.call("read the cluster's status", lambda api: api.cluster.status.get())
            online = {f"{NODE}{n['name']}": "online" if n.get("online") else "offline" for n in status if n.get("type") == "node"}
            for node in [o for o in objects if online.get(o) == "online" and condition == "connected"]:
                if not self._answers(node):  # in the cluster, and its own API up: it can take calls
                    online[node] = "booting"
            return online
        return self._read_guests()

    def _answers(self, node: str) -> bool:
        try:
            self.client.call(f"read node {node}", lambda api: api.nodes(node.removeprefix(NODE)).status.get())
        except EndpointError:
            return False
        return True

    def close(self) -> None:
        return None


def _guest_call(node: str, kind: str, vmid: str, verb: str) -> Callable[[Any], str]:
    return lambda api: str(getattr(api.nodes(node)(kind)(vmid).status, verb).post())


def _task_call(node: str, upid: str) -> Callable[[Any], dict[str, Any]]:
    return lambda api: dict(api.nodes(node).tasks(upid).status.get())


def _ha_call(sid: str, state: str) -> Callable[[Any], None]:
    return lambda api: api.cluster.ha.resources(sid).put(state=state)


def _meets(condition: str, state: str | None) -> bool:
    return {
        "off": state == "stopped",
        "on": state == "running",
        "tools": state == "running",  # no guest agent is assumed: a running guest counts
        "heartbeat": state == "running",
        "connected": state == "online",
        "gone": state in ("offline", None),
    }.get(condition, False)


def _pgs(status: dict[str, Any]) -> str:
    """ "active" when every placement group is active (I/O served), else how they stand ("128 peering")."""
    groups = (status.get("pgmap") or {}).get("pgs_by_state") or []
    inactive = [g for g in groups if "active" not in str(g.get("state_name", "")).split("+")]
    if not groups:
        return "no placement groups reported"
    if not inactive:
        return "active"
    return ", ".join(f"{g.get('count')} {g.get('state_name')}" for g in inactive)


def _services(status: dict[str, Any]) -> str:
    """ "ready" once every monitor is in quorum and every OSD is up (pveceph.adoc: "confirm that all Ceph services are up
    and running"; then the only warning left should be the flags'), else what is missing. The placement groups are
    not waited for here: with norecover and nobackfill set they may not settle before the flags are cleared (ceph-ready
    waits for them after)."""
    mons = {str(m.get("name")) for m in (status.get("monmap") or {}).get("mons") or []}
    out = sorted(mons - {str(n) for n in status.get("quorum_names") or []})
    osdmap = status.get("osdmap") or {}
    osdmap = osdmap.get("osdmap", osdmap)  # older Ceph nests it
    total, up = osdmap.get("num_osds"), osdmap.get("num_up_osds")
    missing = [f"monitors out of quorum: {', '.join(out)}"] if out else []
    if isinstance(total, int) and isinstance(up, int) and up < total:
        missing.append(f"{total - up} of {total} OSDs down")
    return "; ".join(missing) or "ready"
