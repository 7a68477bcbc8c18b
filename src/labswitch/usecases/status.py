"""`labswitch status`: hosts and VMs from one bulk vCenter read, BMC power read in parallel."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

from labswitch import platform
from labswitch.bmc import Driver, Power
from labswitch.config import Config, Server
from labswitch.errors import ConnectionFailed, LabswitchError
from labswitch.journal import Journal
from labswitch.plan import is_vcenter_vm
from labswitch.platforms import servers as plain_servers
from labswitch.snapshot import Snapshot
from labswitch.usecases import bmc
from labswitch.usecases.power import vcenter_addresses


@dataclass(frozen=True)
class HostStatus:
    name: str
    esxi: str
    group: str | None
    cluster: str | None
    connection_state: str | None
    in_maintenance: bool | None
    bmc_power: str | None
    bmc_error: str | None = None
    watts: float | None = None  # read with status(..., watts=True): the BMC's or meter's draw now


@dataclass(frozen=True)
class VMStatus:
    name: str
    host: str | None
    power_state: str
    tools_running: bool
    tags: tuple[str, ...]
    system: str | None = None  # "vcls": vSphere's own agent, not workload
    cpu_mhz: int | None = None  # quickStats.overallCpuUsage
    embedded: bool = False  # a vCLS agent run by vCenter itself (8.0 U3+), not by the ESX Agent Manager


@dataclass(frozen=True)
class ClusterChangeStatus:
    """A cluster setting a down changed that no up has restored yet."""

    cluster: str
    setting: str  # ha | vcls | vsan-power
    previous: str | None
    run_id: str
    changed: float

    @property
    def text(self) -> str:
        what = CHANGE_TEXT.get(self.setting, self.setting)
        return f"cluster {self.cluster}: {what} by labswitch's down (run {self.run_id}); `labswitch up` restores it"


@dataclass(frozen=True)
class VCenterStatus:
    """vCenter as the lab shows it: "up" (it answered this read) or "off" (a whole-lab down stopped it); where it
    runs when labswitch finds its VM in the lab (vcenter.vm, or the VM whose guest address is vCenter's)."""

    state: str  # up | off
    vm: str | None
    host: str | None  # the server (or host) its VM is on

    @property
    def text(self) -> str:
        where = f"VM {self.vm} on {self.host}" if self.vm and self.host else "its VM not found in this lab (it runs elsewhere)"
        if self.state == "off":
            return f"off: a whole-lab down stopped {where}; `labswitch up` starts it there first"
        return f"up; {where}"


@dataclass(frozen=True)
class ClusterStatus:
    """A Proxmox VE cluster as it stands: quorum, its HA resources' requested states, Ceph's flags."""

    name: str
    quorate: bool
    nodes_online: int
    votes: int
    ha: dict[str, str]  # sid -> requested state
    ceph: bool
    ceph_flags: tuple[str, ...]
    ha_fencing: str | None = None  # HA's armed state (PVE 9.2+), None where the cluster cannot disarm HA

    @property
    def text(self) -> str:
        parts = [f"cluster {self.name}: {'quorate' if self.quorate else 'NO QUORUM'}, {self.nodes_online} of {self.votes} nodes online"]
        if self.ha:
            armed = f" ({self.ha_fencing})" if self.ha_fencing not in (None, "armed") else ""
            parts.append(f"HA{armed} " + ", ".join(f"{sid} {state}" for sid, state in sorted(self.ha.items())))
        if self.ceph:
            parts.append("Ceph flags " + (", ".join(self.ceph_flags) if self.ceph_flags else "none"))
        return "; ".join(parts)


CHANGE_TEXT = {
    "ha": "HA turned off",
    "vcls": "vCLS in retreat mode",
    "vsan-power": "vSAN cluster powered off",
    "pve-ha": "HA resources set to ignored",
    "pve-ha-armed": "HA disarmed",
    "ceph-flags": "Ceph's noout, norebalance, nobackfill and norecover set",
}


@dataclass(frozen=True)
class StatusReport:
    hosts: tuple[HostStatus, ...]
    vms: tuple[VMStatus, ...]
    notes: tuple[str, ...]
    cluster_changes: tuple[ClusterChangeStatus, ...] = ()
    vcenter: VCenterStatus | None = None  # None: a lab without vCenter
    clusters: tuple[ClusterStatus, ...] = ()  # Proxmox VE clusters
    platform: str = "vsphere"  # vsphere | proxmox: whose words the tables use

    @property
    def unread(self) -> bool:
        """A BMC could not be read: its server's power is unknown (`status` exits 1)."""
        return any(h.bmc_error for h in self.hosts)


def _vcenter_off(config: Config) -> Snapshot | None:
    """No vCenter answers: an empty snapshot that says why, when a whole-lab down stopped it (None: nothing did)."""
    with Journal.of(config) as journal:
        pending = journal.pending_whole_lab()
    if pending is None:
        return None
    note = f"vCenter is off: the whole-lab down {pending.run_id} stopped it on {pending.server}; `labswitch up` starts it there first"
    return Snapshot((), (), notes=(note,))


def _services(server: Server, power: Power) -> str | None:
    """A plain server's connection column: whether its ready checks answer (while it is on)."""
    if not server.ready or power is not Power.ON:
        return None
    waiting = plain_servers.not_answering(server)
    return f"not ready: {', '.join(waiting)}" if waiting else "ready"


def status(config: Config, watts: bool = False, drivers: Mapping[str, Driver] | None = None) -> StatusReport:
    """With ``watts``, each server's draw is read beside its power, in the same pass (the page, the sampler).
    ``drivers``: every server's, kept open by the caller (serve's coordinator); else opened for this read."""
    servers = config.servers
    with ThreadPoolExecutor(max_workers=1) as side:  # the BMCs are read while vCenter is
        operation = (lambda d: (d.power_state(), bmc.watts_or_none(d))) if watts else (lambda d: (d.power_state(), None))
        if drivers is not None:
            reading = side.submit(bmc.on_drivers, drivers, operation, config.policy.max_parallel)
        else:
            reading = side.submit(bmc.each, config, servers, operation)
        vcenter_off = False
        try:
            with platform.lab(config) as vc:
                snap = vc.snapshot()
        except ConnectionFailed:
            off = _vcenter_off(config)  # after a whole-lab down: the BMCs and the journal still say where things are
            if off is None:
                raise
            snap, vcenter_off = off, True
        outcomes = reading.result()
        power = bmc.power_states([replace(o, value=o.value[0]) if o.error is None else o for o in outcomes])
        draw = {o.server: o.value[1] for o in outcomes if o.error is None}

    by_esxi = {s.esxi: s for s in servers}
    display = {h.moid: (by_esxi[h.name].name if h.name in by_esxi else h.name) for h in snap.hosts}
    hosts = []
    for h in snap.hosts:
        server = by_esxi.get(h.name)
        state, error = power[server.name] if server else (None, None)
        hosts.append(
            HostStatus(
                name=display[h.moid],
                esxi=h.name,
                group=server.group if server else None,
                cluster=h.cluster,
                connection_state=h.connection_state,
                in_maintenance=h.in_maintenance,
                bmc_power=str(state) if state else None,
                bmc_error=error,
                watts=draw.get(server.name) if server else None,
            )
        )
    notes = list(snap.notes)
    found = {h.name for h in snap.hosts}
    for s in servers:
        if s.plain:
            state, error = power[s.name]
            hosts.append(HostStatus(s.name, s.esxi, s.group, None, _services(s, state), None, str(state), error, draw.get(s.name)))
        elif s.esxi not in found:
            state, error = power[s.name]
            hosts.append(HostStatus(s.name, s.esxi, s.group, None, None, None, str(state), error, draw.get(s.name)))
            if config.vcenter is not None and snap.hosts:  # otherwise the snapshot's notes say why no host is known
                notes.append(f"server {s.name}: no host named {s.esxi!r} in vCenter; check servers.esxi")
            elif config.proxmox is not None and snap.hosts:
                notes.append(f"server {s.name}: no node {s.esxi!r} in the cluster; check servers.node")
    with Journal.of(config) as journal:
        known = journal.vm_names() if snap.platform == "proxmox" else {}  # a name the API no longer gives: the journal's
        vms = tuple(
            VMStatus(
                known.get(vm.name, vm.name) if vm.name == vm.moid else vm.name,
                display.get(vm.host_moid or ""),
                vm.power_state,
                vm.tools_running,
                vm.tags,
                vm.system,
                vm.cpu_mhz,
                vm.vcls_embedded,
            )
            for vm in snap.vms
            if not vm.template
        )
        changes = tuple(ClusterChangeStatus(c.cluster_name, c.setting, c.previous, c.run_id, c.changed) for c in journal.pending_changes())
        pending = journal.pending_whole_lab() if vcenter_off else None
    if pending is not None:
        center: VCenterStatus | None = VCenterStatus("off", pending.vcenter[0], pending.server)
    else:
        center = _vcenter_up(config, snap, display)
    pve = tuple(
        ClusterStatus(
            c.name,
            c.quorate,
            sum(1 for h in snap.hosts_in(c.moid) if h.connection_state == "connected"),
            c.votes,
            dict(c.ha_resources),
            c.ceph,
            c.ceph_flags,
            c.ha_fencing,
        )
        for c in snap.clusters
        if c.votes
    )
    return StatusReport(
        hosts=tuple(hosts), vms=vms, notes=tuple(notes), cluster_changes=changes, vcenter=center, clusters=pve, platform=snap.platform
    )


def _vcenter_up(config: Config, snap: Snapshot, display: Mapping[str, str]) -> VCenterStatus | None:
    """vCenter answered: where its VM runs, if in this lab (None: a lab without vCenter)."""
    if config.vcenter is None:
        return None
    addresses = vcenter_addresses(config.vcenter.https_url)
    vm = next((v for v in snap.vms if is_vcenter_vm(v, config.vcenter.vm, addresses)), None)
    return VCenterStatus("up", vm.name if vm else None, display.get(vm.host_moid or "") if vm else None)


def readings(report: StatusReport, config: Config) -> dict[str, tuple[Power, float | None]]:
    """Each configured server's power and draw as a status(..., watts=True) read them."""
    names = {s.name for s in config.servers}
    return {h.name: (Power(h.bmc_power or "Unknown"), h.watts) for h in report.hosts if h.name in names}


def with_readings(
    config: Config, drivers: Mapping[str, Driver] | None = None
) -> tuple[StatusReport | None, dict[str, tuple[Power, float | None]], str | None]:
    """One pass for the service (its coordinator): the status with every server's power and draw; when vCenter
    cannot be read, no status (None), the BMCs' readings alone, and why."""
    try:
        report = status(config, watts=True, drivers=drivers)
    except LabswitchError as exc:
        return None, bmc.readings(config, drivers), str(exc)
    return report, readings(report, config), None


def as_json(report: StatusReport) -> dict[str, object]:
    """The report as `status --json` and the API give it."""
    hosts = []
    for h in report.hosts:
        entry = asdict(h)
        if entry["bmc_error"] is None:
            del entry["bmc_error"]
        if entry["watts"] is None:
            del entry["watts"]
        hosts.append(entry)
    vms = [{**asdict(v), "tags": list(v.tags)} for v in report.vms]
    changes = [asdict(c) for c in report.cluster_changes]
    center = asdict(report.vcenter) if report.vcenter else None
    out: dict[str, object] = {"hosts": hosts, "vms": vms, "cluster_changes": changes, "vcenter": center, "notes": list(report.notes)}
    if report.clusters:
        out["clusters"] = [{**asdict(c), "ceph_flags": list(c.ceph_flags)} for c in report.clusters]
    return out
