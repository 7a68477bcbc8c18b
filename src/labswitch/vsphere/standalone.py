"""A lab of standalone ESXi hosts, no vCenter: each server's host read through its own API, in parallel,
into one Snapshot in the lab's own names — a host is "host:<server>", a VM "uuid:<instanceUuid>" (each
host numbers its VMs from 1) — so the planner plans it as it plans a vCenter's, and the host ports
(vsphere.esxi) carry the steps out."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyVmomi import vim, vmodl

from labswitch.config import Config, ESXi, Server
from labswitch.errors import ConnectionFailed, VSphereError
from labswitch.snapshot import AutoStart, HostInfo, Snapshot, VMInfo, host_key, vm_key
from labswitch.vsphere import inventory
from labswitch.vsphere.session import close_session, login_for_host, open_session


class Standalone:
    """The lab's hosts, each through its own API (the counterpart of a logged-in vCenter)."""

    def __init__(self, config: Config) -> None:
        assert config.esxi is not None
        self.config = config
        self.esxi: ESXi = config.esxi

    def actions(self) -> None:
        """No vCenter: every step goes through a host's own port."""
        return None

    def lacking(self, needed: Any) -> set[tuple[str, str]]:
        """Privileges are vCenter's; a host's root has them all."""
        return set()

    def run_port(self, cancel: Any) -> None:
        """Every step goes through its host's own port, which the Runner opens."""
        return None

    def refusals(self, plan: Any, snap: Snapshot) -> list[str]:
        """A host's root may do everything a run does."""
        return []

    def snapshot(self, tags_required: bool = False) -> Snapshot:
        """Every server's host and VMs, read in parallel; a host that does not answer is left out, with a note.
        A wrong password or an untrusted certificate is an error (it would not change on its own). A host
        has no tags: ``tags_required`` asks for none."""
        return self._all(audit=False)

    def audit_snapshot(self) -> Snapshot:
        """The same, with what the audits read (options, disks, CBT, SGX)."""
        return self._all(audit=True)

    def _all(self, audit: bool) -> Snapshot:
        servers = self.config.lab_servers
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(servers)))) as pool:
            parts = list(pool.map(lambda s: self._read(s, audit), servers))
        hosts = tuple(h for h, _, _ in parts if h is not None)
        vms = tuple(sorted((vm for _, found, _ in parts for vm in found), key=lambda v: v.name))
        notes = tuple(n for _, _, ns in parts for n in ns)
        return Snapshot(hosts=tuple(sorted(hosts, key=lambda h: h.name)), vms=vms, notes=notes)

    def _read(self, server: Server, audit: bool) -> tuple[HostInfo | None, list[VMInfo], list[str]]:
        login = login_for_host(self.esxi, server)
        try:
            si = open_session(login)
        except ConnectionFailed as exc:  # off, or booting: known by its server, its VMs unknown until it answers
            lost = HostInfo(host_key(server.name), server.esxi, None, "notResponding", False, "unknown")
            return lost, [], [f"server {server.name}: its host does not answer ({exc})"]
        try:
            content = si.RetrieveContent()
            snap = inventory.read(content, login.where, audit=audit)
            autostart = _autostart(content, snap.hosts[0].moid, login.where) if snap.hosts else {}
        finally:
            close_session(si, login.where)
        key = host_key(server.name)
        # A host that answers is connected: its own API is the only connection there is.
        hosts = [
            dataclasses.replace(h, moid=key, name=server.esxi, cluster=None, cluster_moid=None, connection_state="connected")
            for h in snap.hosts[:1]
        ]
        notes = [f"server {server.name}: VM {vm.name} reports no instance UUID; it is left alone" for vm in snap.vms if not vm.uuid]
        vms = [dataclasses.replace(vm, moid=vm_key(vm.uuid), host_moid=key, autostart=autostart.get(vm.moid)) for vm in snap.vms if vm.uuid]
        return (hosts[0] if hosts else None), vms, notes


def _autostart(content: Any, host_moid: str, where: str) -> dict[str, AutoStart]:
    """The host's autostart order: its VMs' moids -> their place, delay and heartbeat rule (defaults applied)."""
    try:
        host = vim.HostSystem(host_moid, content.propertyCollector._stub)
        config = host.configManager.autoStartManager.config
    except (vmodl.MethodFault, AttributeError) as exc:
        raise VSphereError(f"{where}: its autostart order could not be read ({type(exc).__name__})") from exc
    defaults = config.defaults or vim.host.AutoStartManager.SystemDefaults()
    out = {}
    for info in config.powerInfo or []:
        if info.startOrder is None or info.startOrder < 1 or info.startAction == "none":
            continue
        delay = info.startDelay if info.startDelay is not None and info.startDelay >= 0 else (defaults.startDelay or 0)
        heartbeat = info.waitForHeartbeat == "yes" or (info.waitForHeartbeat == "systemDefault" and bool(defaults.waitForHeartbeat))
        out[info.key._moId] = AutoStart(int(info.startOrder), float(delay), heartbeat)
    return out
