"""CBT + UNMAP backup growth (KB 59608), the CBT reset fix (KB 2139574), and extent intersection.

With changed block tracking on, thin disks and VM hardware version 11 or later, a guest's
UNMAP marks freed blocks as changed: the next incremental backup can grow to near the
disk's full size. Backup software that intersects QueryChangedDiskAreas with
QueryAllocatedBlocks (VDDK 6.7+) copies only what is both changed and allocated;
``intersect`` is that computation.
"""

from __future__ import annotations

from collections.abc import Iterable

from labswitch.audits.findings import Finding, Severity
from labswitch.snapshot import Snapshot

CHECK = "cbt-unmap"
FIRST_AFFECTED_HW = 11
WORKAROUNDS = (
    "disable UNMAP in the guest (Windows: fsutil behavior set DisableDeleteNotify 1; Linux: no 'discard' mount option, "
    "no scheduled fstrim), or make the disk thick, or use backup software that intersects QueryAllocatedBlocks with "
    "QueryChangedDiskAreas (VDDK 6.7+); after a UNMAP burst: labswitch fix cbt-reset VM"
)
RESET_SNAPSHOT = "labswitch-cbt-reset"

Extent = tuple[int, int]  # (start, length), as DiskChangeExtent and VDDK block lists give them


def check(snap: Snapshot) -> list[Finding]:
    findings = []
    for vm in snap.vms:
        if vm.template or not vm.cbt or (vm.hw_version or 0) < FIRST_AFFECTED_HW:
            continue
        for disk in vm.disks:
            if disk.thin:
                findings.append(
                    Finding(
                        CHECK,
                        Severity.MEDIUM,
                        f"{vm.name} / {disk.label}",
                        f"CBT on, thin disk {disk.file}, hardware version {vm.hw_version}: after the guest issues UNMAP, "
                        "incremental backups can grow to near the disk's full size (KB 59608)",
                        WORKAROUNDS,
                    )
                )
    return findings


def merge(extents: Iterable[Extent]) -> list[Extent]:
    """Sorted, with overlapping or touching extents joined and empty ones dropped."""
    out: list[Extent] = []
    for start, length in sorted(e for e in extents if e[1] > 0):
        if out and start <= out[-1][0] + out[-1][1]:
            last_start, last_len = out[-1]
            out[-1] = (last_start, max(last_start + last_len, start + length) - last_start)
        else:
            out.append((start, length))
    return out


def intersect(changed: Iterable[Extent], allocated: Iterable[Extent]) -> list[Extent]:
    """The extents both changed and allocated: what an incremental backup needs to copy."""
    a, b = merge(changed), merge(allocated)
    out: list[Extent] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][0] + a[i][1], b[j][0] + b[j][1])
        if start < end:
            out.append((start, end - start))
        if a[i][0] + a[i][1] < b[j][0] + b[j][1]:
            i += 1
        else:
            j += 1
    return out
