"""An immutable picture of the lab, read in bulk: what the planner and audits reason about."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MULTI_WRITER = "sharingMultiWriter"


@dataclass(frozen=True)
class Disk:
    """A virtual disk as the audits see it (read only with ``audit=True``)."""

    label: str  # "Hard disk 1"
    file: str  # "[datastore1] vm/vm.vmdk"
    thin: bool
    eager_zeroed: bool
    sharing: str = "sharingNone"  # sharingNone | sharingMultiWriter

    @property
    def eager_zeroed_thick(self) -> bool:
        return self.eager_zeroed and not self.thin


@dataclass(frozen=True)
class HostInfo:
    moid: str
    name: str
    cluster: str | None  # the cluster's name; None for a standalone host
    connection_state: str  # connected | disconnected | notResponding
    in_maintenance: bool
    power_state: str  # poweredOn | poweredOff | standBy | unknown
    # Read only for audits:
    options: Mapping[str, object] = field(default_factory=dict, compare=False)  # advanced settings
    cpu_model: str | None = None
    sgx_state: str | None = None  # vSphere 7.0+: notPresent | enabled | disabledBIOS | ...; None: not reported
    cluster_moid: str | None = None
    esxi_version: str | None = None  # config.product.version, "8.0.3"; None: not reported
    address: str | None = None  # Proxmox VE: the node's cluster address (corosync ring 0)


@dataclass(frozen=True)
class ClusterInfo:
    """What a power cycle changes on a cluster, and must give back."""

    moid: str
    name: str
    ha: bool = False  # configurationEx.dasConfig.enabled
    vsan: bool = False  # configurationEx.vsanConfigInfo.enabled
    vcls: str | None = None  # vCenter option config.vcls.clusters.<moid>.enabled as set ("true"/"false"); None: not set (enabled)
    vsan_power: str | None = None  # vSAN's cluster power status (clusterPoweredOn | clusterPoweredOff ...); None: not read
    # Proxmox VE:
    ceph: bool = False  # the cluster runs Ceph
    ceph_flags: tuple[str, ...] = ()  # the OSD flags set now (noout, ...)
    ceph_monitors: tuple[str, ...] = ()  # the nodes with a Ceph monitor (pveceph names a monitor after its node)
    ha_resources: tuple[tuple[str, str], ...] = ()  # (sid "vm:100", requested state: started | stopped | disabled | ignored)
    ha_fencing: str | None = None  # pve-ha-manager 5.1.3+ (disarm-ha): armed | standby | disarming | disarmed; None: no such
    votes: int = 0  # corosync's expected votes (one per node); 0: not a Proxmox VE cluster
    quorate: bool = True


@dataclass(frozen=True)
class AutoStart:
    """A VM's place in its host's autostart order (the ESXi AutoStartManager, as set in the host client)."""

    order: int  # 1 starts first
    delay: float  # seconds before the next one starts (unless heartbeat comes first)
    heartbeat: bool  # the next one may start as soon as this one's heartbeat is seen


@dataclass(frozen=True)
class Startup:
    """A Proxmox VE guest's ``startup: order=N,up=S,down=S`` (qm.adoc "Start and Shutdown Order"), whether or not it
    starts at boot: PVE's startall and stopall order every guest by it (no order: after every ordered guest at a
    start, before them at a stop)."""

    order: int | None = None
    up: float | None = None  # seconds to wait after it started, before the next one starts
    down: float | None = None  # seconds its shutdown may take (PVE's stopall timeout for it)


@dataclass(frozen=True)
class VMInfo:
    moid: str
    name: str
    host_moid: str | None
    power_state: str  # poweredOn | poweredOff | suspended
    tools_running: bool
    guest_ip: str | None = None
    guest_hostname: str | None = None
    template: bool = False
    tags: tuple[str, ...] = ()  # "Category/Tag"
    system: str | None = None  # "vcls": a vSphere Cluster Services agent (EAM's or vCenter's own), never workload
    vcls_embedded: bool = False  # an embedded vCLS agent (8.0 U3+): vCenter stops and restarts it, never blocks maintenance
    uuid: str | None = None  # config.instanceUuid: the same through vCenter and through its host (moids are not)
    autostart: AutoStart | None = None  # read from standalone hosts only (labs without vCenter)
    cpu_mhz: int | None = None  # summary.quickStats.overallCpuUsage now (None: not reported)
    startup: Startup | None = None  # Proxmox VE: its startup order, onboot or not (None: not read, a node offline)
    # Read only for audits:
    hw_version: int | None = None  # 13 for vmx-13
    cbt: bool = False  # changed block tracking
    has_snapshots: bool = False
    disks: tuple[Disk, ...] = ()
    sgx_epc_mb: int | None = None  # virtual SGX enclave page cache; None: no vSGX


@dataclass(frozen=True)
class Snapshot:
    hosts: tuple[HostInfo, ...]
    vms: tuple[VMInfo, ...]
    notes: tuple[str, ...] = field(default=())  # what could not be read, said once
    api_version: str = ""  # vCenter's API version, e.g. "7.0.3.0"
    clusters: tuple[ClusterInfo, ...] = ()
    platform: str = "vsphere"  # vsphere | proxmox

    def host_by_name(self, name: str) -> HostInfo | None:
        """By vCenter name, or by short name when unambiguous ("esx11" for "esx11.lab.local")."""
        exact = next((h for h in self.hosts if h.name == name), None)
        if exact is not None:
            return exact
        short = [h for h in self.hosts if h.name.split(".", 1)[0] == name]
        return short[0] if len(short) == 1 else None

    def vm_by_name(self, name: str) -> VMInfo | None:
        return next((vm for vm in self.vms if vm.name == name), None)

    def host_name(self, moid: str | None) -> str | None:
        return next((h.name for h in self.hosts if h.moid == moid), None)

    def vms_on(self, host_moid: str) -> tuple[VMInfo, ...]:
        return tuple(vm for vm in self.vms if vm.host_moid == host_moid)

    def workload_on(self, host_moid: str) -> tuple[VMInfo, ...]:
        """The VMs a power cycle stops, records and starts: not templates, not vSphere's own agents."""
        return tuple(vm for vm in self.vms_on(host_moid) if not vm.template and vm.system is None)

    def cluster(self, moid: str | None) -> ClusterInfo | None:
        return next((c for c in self.clusters if c.moid == moid), None)

    def hosts_in(self, cluster_moid: str) -> tuple[HostInfo, ...]:
        return tuple(h for h in self.hosts if h.cluster_moid == cluster_moid)

    def agents_in(self, cluster_moid: str) -> tuple[VMInfo, ...]:
        """The cluster's vCLS agent VMs (on its hosts)."""
        hosts = {h.moid for h in self.hosts_in(cluster_moid)}
        return tuple(vm for vm in self.vms if vm.system == "vcls" and vm.host_moid in hosts)


def _api(api_version: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in api_version.split(".")[:3])
    except ValueError:
        return ()


def reports_sgx(api_version: str) -> bool:
    """vSphere reports SGX (hardware.sgxInfo, config.sgxInfo) from API 7.0 on."""
    return _api(api_version)[:2] >= (7, 0)


def has_vcls(api_version: str) -> bool:
    """vSphere Cluster Services agents exist from vSphere 7.0 U1 (API 7.0.1) on."""
    return _api(api_version) >= (7, 0, 1)


def has_system_vms_config(api_version: str) -> bool:
    """Retreat mode is also ClusterConfigSpecEx.systemVMsConfig.deploymentMode from vSphere 8.0 U2 (API 8.0.2) on."""
    return _api(api_version) >= (8, 0, 2)


def runs_embedded_vcls(version: str | None) -> bool:
    """vCenter (its API version) or an ESXi host (its release) of 8.0 U3 or later: embedded vCLS agents."""
    return version is not None and _api(version) >= (8, 0, 3)


def needs_retreat(snap: Snapshot, cluster_moid: str) -> bool:
    """A cluster going down entirely needs vCLS retreat mode when agents could keep its last host out of
    maintenance: EAM's agents (before 8.0 U3, and 8.0 U3's fallback on a host of an older release). Embedded
    agents stop by themselves when their host enters maintenance mode and start again when one leaves it."""
    agents = snap.agents_in(cluster_moid)
    if not agents:
        return False  # retreat mode already (9.0's recommended state), or no vCLS: nothing to change or restore
    if not runs_embedded_vcls(snap.api_version) or any(not vm.vcls_embedded for vm in agents):
        return True
    return any(not runs_embedded_vcls(h.esxi_version) for h in snap.hosts_in(cluster_moid))


def has_vsan_power_action(api_version: str) -> bool:
    """vSAN's cluster power action (VsanClusterPowerSystem) exists from vSphere 7.0 U3 (API 7.0.3) on."""
    return _api(api_version) >= (7, 0, 3)


UUID = "uuid:"
HOST = "host:"


def vm_key(uuid: str) -> str:
    """How a step names a VM it reaches through an ESXi host directly: by instance UUID, the same through
    vCenter and the host (their moids differ); vsphere.esxi translates."""
    return f"{UUID}{uuid}"


def host_key(server: str) -> str:
    """How a lab without vCenter names a server's host: by the server (each host calls itself ha-host)."""
    return f"{HOST}{server}"
