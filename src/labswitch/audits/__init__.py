"""The audits: one module per check, each a PURE function from a snapshot to findings.

Fixes are planned as power cycles are (labswitch.plan.fix) and carried out by labswitch.usecases.fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from labswitch.audits import cbt_unmap, l1tf, multiwriter, sgx
from labswitch.audits.findings import Finding, Severity
from labswitch.errors import UnknownName
from labswitch.snapshot import Snapshot

CHECKS: dict[str, Callable[[Snapshot], list[Finding]]] = {
    l1tf.CHECK: l1tf.check,
    cbt_unmap.CHECK: cbt_unmap.check,
    multiwriter.CHECK: multiwriter.check,
    sgx.CHECK: sgx.check,
}

__all__ = ["CHECKS", "Finding", "Severity", "run", "select"]


def select(names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        if name not in CHECKS:
            raise UnknownName(f"audit check {name!r}: no such check (checks: {', '.join(CHECKS)})")
    return tuple(dict.fromkeys(names)) or tuple(CHECKS)


def run(snap: Snapshot, checks: Sequence[str]) -> list[Finding]:
    """Every finding of the checks, most severe first."""
    findings = [f for name in select(checks) for f in CHECKS[name](snap)]
    return sorted(findings, key=lambda f: (-f.severity, f.check, f.target))
