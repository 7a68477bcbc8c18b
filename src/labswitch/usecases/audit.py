"""`labswitch audit` and `labswitch check placement`: one bulk read, then the pure checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labswitch import audits, vsphere
from labswitch.audits import Finding, multiwriter
from labswitch.config import Config
from labswitch.platform import need_vsphere


@dataclass(frozen=True)
class AuditReport:
    checks: tuple[str, ...]
    findings: tuple[Finding, ...]
    hosts: int
    vms: int


def audit(config: Config, checks: Sequence[str]) -> AuditReport:
    need_vsphere(config, "labswitch audit (L1TF, CBT + UNMAP, multi-writer, SGX)")
    selected = audits.select(checks)  # a bad check name fails before any connection
    with vsphere.lab(config) as vc:
        snap = vc.audit_snapshot()
    return AuditReport(selected, tuple(audits.run(snap, selected)), len(snap.hosts), len(snap.vms))


def placement(config: Config, vm: str, host: str) -> multiwriter.Placement:
    need_vsphere(config, "labswitch check placement")
    with vsphere.lab(config) as vc:
        snap = vc.audit_snapshot()
    return multiwriter.placement(snap, vm, host)
