"""Multi-writer VMDKs (KB 1034165): at most 8 hosts may have one shared disk open, eager-zeroed
thick only, and no snapshots, CBT or suspend on the VMs that share it.

A shared VMDK is any file that some VM attaches with multi-writer sharing; every VM that
attaches the file counts. "Open on a host" means a VM attaching it is powered on there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from labswitch.audits.findings import Finding, Severity
from labswitch.errors import ConfigError
from labswitch.snapshot import MULTI_WRITER, Disk, Snapshot, VMInfo

CHECK = "multiwriter"
HOST_LIMIT = 8


def shared_files(snap: Snapshot) -> dict[str, list[tuple[VMInfo, Disk]]]:
    """VMDK file -> every (VM, disk) attaching it, for files some VM shares multi-writer."""
    users: dict[str, list[tuple[VMInfo, Disk]]] = defaultdict(list)
    for vm in snap.vms:
        for disk in vm.disks:
            if disk.file:
                users[disk.file].append((vm, disk))
    return {f: u for f, u in sorted(users.items()) if any(d.sharing == MULTI_WRITER for _, d in u)}


def open_on(users: list[tuple[VMInfo, Disk]], except_vm: str | None = None) -> set[str]:
    """Host moids on which a VM attaching the file is powered on."""
    return {vm.host_moid for vm, _ in users if vm.power_state == "poweredOn" and vm.host_moid and vm.moid != except_vm}


def check(snap: Snapshot) -> list[Finding]:
    findings = []
    sharing_vms: dict[str, VMInfo] = {}
    for file, users in shared_files(snap).items():
        hosts = open_on(users)
        if len(hosts) > HOST_LIMIT:
            names = ", ".join(sorted(snap.host_name(h) or h for h in hosts))
            findings.append(
                Finding(
                    CHECK,
                    Severity.HIGH,
                    file,
                    f"open on {len(hosts)} hosts ({names}); multi-writer allows at most {HOST_LIMIT} (KB 1034165): "
                    "VMs beyond the limit fail to power on or lose access",
                    f"power off or move VMs so that at most {HOST_LIMIT} hosts run a VM attaching it; "
                    "check a move first with: labswitch check placement VM --host HOST",
                )
            )
        for vm, disk in users:
            sharing_vms[vm.moid] = vm
            findings += _disk_findings(file, vm, disk)
    for vm in sorted(sharing_vms.values(), key=lambda v: v.name):
        findings += _vm_findings(vm)
    return findings


def _disk_findings(file: str, vm: VMInfo, disk: Disk) -> list[Finding]:
    """One VM's attachment of a shared file: its sharing mode and its provisioning."""
    where = f"{vm.name} / {disk.label}"
    out = []
    if disk.sharing != MULTI_WRITER:
        out.append(
            Finding(
                CHECK,
                Severity.HIGH,
                where,
                f"attaches {file} without multi-writer sharing while other VMs share it multi-writer",
                "set Sharing = Multi-Writer on this disk, or detach it",
            )
        )
    if not disk.eager_zeroed_thick:
        kind = "thin" if disk.thin else "lazy-zeroed thick"
        out.append(
            Finding(
                CHECK,
                Severity.MEDIUM,
                where,
                f"shared disk {file} is {kind}; multi-writer needs eager-zeroed thick (KB 1034165)",
                "inflate or convert it to eager-zeroed thick (vmkfstools --inflatedisk / -k, or Storage vMotion to EZT) "
                "with every VM sharing it powered off",
            )
        )
    return out


def _vm_findings(vm: VMInfo) -> list[Finding]:
    """What a VM sharing a multi-writer disk must not have."""
    present = (("snapshots", vm.has_snapshots), ("changed block tracking", vm.cbt), ("suspended", vm.power_state == "suspended"))
    unsupported = [what for what, yes in present if yes]
    if not unsupported:
        return []
    return [
        Finding(
            CHECK,
            Severity.MEDIUM,
            vm.name,
            f"shares a multi-writer disk and has {', '.join(unsupported)}: unsupported with multi-writer (KB 1034165)",
            "remove the snapshots, turn CBT off, resume or power off the VM",
        )
    ]


@dataclass(frozen=True)
class DiskPlacement:
    file: str
    hosts_now: int  # hosts with the file open, counting the VM where it runs now
    hosts_after: int  # hosts with the file open if the VM runs on the target host
    ok: bool


@dataclass(frozen=True)
class Placement:
    vm: str
    host: str
    disks: tuple[DiskPlacement, ...]

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.disks)


def placement(snap: Snapshot, vm_name: str, host_name: str) -> Placement:
    """Would powering ``vm_name`` on (or vMotioning it) to ``host_name`` take a shared VMDK past the limit?"""
    vm = snap.vm_by_name(vm_name)
    if vm is None:
        raise ConfigError(f"VM {vm_name!r}: not in vCenter; give the VM's name as vCenter shows it")
    host = snap.host_by_name(host_name)
    if host is None:
        raise ConfigError(f"--host {host_name}: not in vCenter; give a host's vCenter name")
    shared: Mapping[str, list[tuple[VMInfo, Disk]]] = shared_files(snap)
    disks = []
    for file in dict.fromkeys(d.file for d in vm.disks if d.file in shared):
        others = open_on(shared[file], except_vm=vm.moid)
        now = len(open_on(shared[file]))
        after = len(others | {host.moid})
        disks.append(DiskPlacement(file, now, after, after <= HOST_LIMIT))
    return Placement(vm.name, host.name, tuple(disks))
