"""What every audit returns: plain values, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    check: str  # l1tf | cbt-unmap | multiwriter | sgx
    severity: Severity
    target: str  # a host, a VM and disk, or a VMDK file
    message: str  # the risk and the evidence
    fix: str  # what to do, with the labswitch command where there is one
