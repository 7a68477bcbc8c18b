"""L1 Terminal Fault, CVE-2018-3646 (VMSA-2018-0020, KB 55806): the ESXi side-channel-aware scheduler.

A host is mitigated when ``VMkernel.Boot.hyperthreadingMitigation`` is true (after a reboot).
``UserVars.SuppressHyperthreadWarning = 1`` hides the vSphere Client warning: on an
unmitigated host that hides the exposure, the worse case.
"""

from __future__ import annotations

from labswitch.audits.findings import Finding, Severity
from labswitch.snapshot import HostInfo, Snapshot

CHECK = "l1tf"
MITIGATION = "VMkernel.Boot.hyperthreadingMitigation"
SUPPRESS = "UserVars.SuppressHyperthreadWarning"


def truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def affected(host: HostInfo) -> bool:
    """L1TF is an Intel flaw: a host whose CPU model names another vendor is not affected."""
    return host.cpu_model is None or "intel" in host.cpu_model.lower()


def check(snap: Snapshot) -> list[Finding]:
    findings = []
    for host in snap.hosts:
        if not affected(host):
            continue
        if not host.options:
            findings.append(
                Finding(CHECK, Severity.INFO, host.name, f"not checked: host is {host.connection_state}, its options cannot be read", "")
            )
            continue
        if MITIGATION not in host.options:
            findings.append(
                Finding(
                    CHECK,
                    Severity.HIGH,
                    host.name,
                    f"no option {MITIGATION}: this ESXi build predates the L1TF fix (VMSA-2018-0020)",
                    "patch ESXi (VMSA-2018-0020 or later), then: labswitch fix l1tf --mitigate " + host.name,
                )
            )
            continue
        if truthy(host.options[MITIGATION]):
            continue
        fix = f"labswitch fix l1tf --mitigate {host.name} --reboot (side-channel-aware scheduler; can cost CPU capacity on busy hosts)"
        if truthy(host.options.get(SUPPRESS, 0)):
            findings.append(
                Finding(
                    CHECK,
                    Severity.CRITICAL,
                    host.name,
                    f"unmitigated ({MITIGATION} = false) and the vSphere Client warning is hidden ({SUPPRESS} = 1): "
                    "CVE-2018-3646 exposure nobody sees",
                    fix,
                )
            )
        else:
            findings.append(
                Finding(
                    CHECK,
                    Severity.HIGH,
                    host.name,
                    f"unmitigated: {MITIGATION} = false (CVE-2018-3646, KB 55806); the vSphere Client shows the warning",
                    fix + f", or accept the risk: labswitch fix l1tf --suppress-warning {host.name}",
                )
            )
    return findings
