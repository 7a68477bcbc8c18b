"""Intel SGX: as vSphere reports it (hosts and vSGX VMs, vSphere 7.0+), and as the CPU reports it.

The CPU side follows the test-sgx program: CPUID leaf 7 sub-leaf 0 EBX bit 2 (SGX),
ECX bit 30 (launch control); leaf 0x12 sub-leaf 0 EAX bits 0 and 1 (SGX1, SGX2) and
EDX bits 0-7 and 8-15 (MaxEnclaveSize_Not64, MaxEnclaveSize_64); leaf 1 ECX bit 31
says a hypervisor is present.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from labswitch.audits.findings import Finding, Severity
from labswitch.snapshot import Snapshot, reports_sgx

CHECK = "sgx"

HOST_STATES = {
    "enabled": "SGX enabled",
    "disabledBIOS": "SGX in the CPU but disabled in the BIOS",
    "disabledCFW101": "SGX disabled: CPU microcode/firmware erratum CFW101",
    "disabledCPUMismatch": "SGX disabled: the host's CPUs do not match",
    "disabledNoFLC": "SGX disabled: the CPU lacks flexible launch control",
    "disabledNUMAUnsup": "SGX disabled: NUMA configuration not supported",
    "disabledMaxEPCRegs": "SGX disabled: too many EPC regions",
    "disabled": "SGX disabled",
}


def check(snap: Snapshot) -> list[Finding]:
    if not reports_sgx(snap.api_version):
        return [
            Finding(
                CHECK, Severity.INFO, "vCenter", f"API {snap.api_version or 'unknown'} does not report SGX (vSphere 7.0 and later do)", ""
            )
        ]
    findings = []
    hosts = {h.moid: h for h in snap.hosts}
    for host in snap.hosts:
        state = host.sgx_state
        if state in (None, "notPresent"):
            continue
        text = HOST_STATES.get(state or "", f"SGX state {state}")
        if state == "enabled":
            findings.append(Finding(CHECK, Severity.INFO, host.name, text, ""))
        else:
            findings.append(
                Finding(CHECK, Severity.LOW, host.name, f"{text} ({state})", "enable SGX in the server's BIOS/UEFI setup, then reboot")
            )
    for vm in snap.vms:
        if vm.sgx_epc_mb is None:
            continue
        on = hosts.get(vm.host_moid or "")
        if on is not None and on.sgx_state != "enabled":
            findings.append(
                Finding(
                    CHECK,
                    Severity.HIGH,
                    vm.name,
                    f"virtual SGX ({vm.sgx_epc_mb} MB EPC) on host {on.name}, whose SGX state is {on.sgx_state}: "
                    "the VM cannot power on there",
                    "move the VM to a host with SGX enabled, or remove its vSGX device",
                )
            )
        else:
            findings.append(
                Finding(
                    CHECK,
                    Severity.INFO,
                    vm.name,
                    f"virtual SGX, {vm.sgx_epc_mb} MB EPC: no vMotion, suspend, memory snapshots or Fault Tolerance",
                    "",
                )
            )
    return findings


# -- the CPU, as test-sgx reads it ----------------------------------------------------------
Registers = tuple[int, int, int, int]  # eax, ebx, ecx, edx
Leaves = Mapping[tuple[int, int], Registers]  # (leaf, sub-leaf) -> registers


@dataclass(frozen=True)
class CpuSgx:
    source: str  # "cpuid" (raw registers), "dump FILE", or "/proc/cpuinfo" (flags only)
    outcome: str  # enabled | disabled-in-bios | masked-by-hypervisor | not-in-cpu | absent-or-disabled | absent-or-masked
    explanation: str
    hypervisor: bool
    sgx_available: bool | None = None  # leaf 7 EBX bit 2
    launch_control: bool | None = None  # leaf 7 ECX bit 30
    sgx1: bool | None = None
    sgx2: bool | None = None
    max_enclave_size_not64: int | None = None  # log2 bytes
    max_enclave_size_64: int | None = None
    epc_mb: int | None = None  # sum of the EPC sections (leaf 0x12 sub-leaves 2+)


EXPLAIN = {
    "enabled": "SGX is in the CPU and enabled: enclaves can run",
    "disabled-in-bios": "SGX is in the CPU but not enabled in the BIOS: set Software Guard Extensions to Enabled (not Software Controlled)",
    "masked-by-hypervisor": "running in a VM whose hypervisor does not expose SGX: on vSphere 7.0+, add virtual SGX to the VM "
    "(hardware version 17, on a host with SGX enabled)",
    "not-in-cpu": "this CPU has no SGX",
    "absent-or-disabled": "no 'sgx' CPU flag: the CPU has no SGX, or it is disabled in the BIOS "
    "(flags cannot tell which; as root, 'modprobe cpuid' gives labswitch the raw registers)",
    "absent-or-masked": "no 'sgx' CPU flag in a VM: the hypervisor masks SGX, or the host CPU has none",
}


def decode(leaves: Leaves, source: str) -> CpuSgx:
    """What the CPUID registers say about SGX, with the outcome explained."""
    hypervisor = bool(leaves.get((1, 0), (0, 0, 0, 0))[2] >> 31 & 1)
    _, ebx7, ecx7, _ = leaves[(7, 0)]
    available, lc = bool(ebx7 >> 2 & 1), bool(ecx7 >> 30 & 1)
    eax12, _, _, edx12 = leaves.get((0x12, 0), (0, 0, 0, 0))
    sgx1, sgx2 = bool(eax12 & 1), bool(eax12 >> 1 & 1)
    epc = 0
    for sub in range(2, 34):
        eax, _, ecx, edx = leaves.get((0x12, sub), (0, 0, 0, 0))
        if eax & 0xF != 1:  # sub-leaf type 1: a valid EPC section
            break
        epc += ((edx & 0xFFFFF) << 32) | (ecx & 0xFFFFF000)
    if available and sgx1:
        outcome = "enabled"
    elif available:
        outcome = "disabled-in-bios"
    elif hypervisor:
        outcome = "masked-by-hypervisor"
    else:
        outcome = "not-in-cpu"
    return CpuSgx(
        source,
        outcome,
        EXPLAIN[outcome],
        hypervisor,
        available,
        lc,
        sgx1,
        sgx2,
        edx12 & 0xFF,
        edx12 >> 8 & 0xFF,
        epc >> 20 if available and sgx1 and epc else None,
    )


def from_flags(flags: set[str]) -> CpuSgx:
    """From /proc/cpuinfo flags, when raw CPUID is not readable: the kernel shows 'sgx' only when usable."""
    hypervisor = "hypervisor" in flags
    outcome = "enabled" if "sgx" in flags else "absent-or-masked" if hypervisor else "absent-or-disabled"
    return CpuSgx("/proc/cpuinfo", outcome, EXPLAIN[outcome], hypervisor, "sgx" in flags, "sgx_lc" in flags)


_HEADER = re.compile(r"EAX\s*=\s*(?:0x)?([0-9A-Fa-f]+)H?\s*,\s*ECX\s*=\s*(?:0x)?([0-9A-Fa-f]+)H?")
_REGS = re.compile(r"eax:\s*([0-9a-fA-F]+)\s+ebx:\s*([0-9a-fA-F]+)\s+ecx:\s*([0-9a-fA-F]+)\s+edx:\s*([0-9a-fA-F]+)")


def parse_dump(text: str) -> dict[tuple[int, int], Registers]:
    """Registers from a saved test-sgx run: 'eax: .. ebx: .. ecx: .. edx: ..' lines, each after
    a '(EAX=07H, ECX=0H)' style header; the first, header-less line is leaf 1."""
    leaves: dict[tuple[int, int], Registers] = {}
    current = (1, 0)
    for line in text.splitlines():
        header = _HEADER.search(line)
        if header:
            current = (int(header.group(1), 16), int(header.group(2), 16))
            continue
        regs = _REGS.search(line)
        if regs and current not in leaves:
            leaves[current] = (int(regs.group(1), 16), int(regs.group(2), 16), int(regs.group(3), 16), int(regs.group(4), 16))
    return leaves
