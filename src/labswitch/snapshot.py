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
    cluster: str | None  # None for a standalone host
    connection_state: str  # connected | disconnected | notResponding
    in_maintenance: bool
    power_state: str  # poweredOn | poweredOff | standBy | unknown
    # Read only for audits:
    options: Mapping[str, object] = field(default_factory=dict, compare=False)  # advanced settings
    cpu_model: str | None = None
    sgx_state: str | None = None  # vSphere 7.0+: notPresent | enabled | disabledBIOS | ...; None: not reported


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
    system: str | None = None  # "vcls": a vSphere Cluster Services agent (vCenter's EAM runs it), never workload
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


def reports_sgx(api_version: str) -> bool:
    """vSphere reports SGX (hardware.sgxInfo, config.sgxInfo) from API 7.0 on."""
    try:
        return tuple(int(x) for x in api_version.split(".")[:2]) >= (7, 0)
    except ValueError:
        return False
