"""This machine's CPUID registers, for `labswitch sgx local`: raw from /dev/cpu/0/cpuid where
readable (root and the cpuid module), else None and the caller falls back to /proc/cpuinfo."""

from __future__ import annotations

import os
from pathlib import Path

from labswitch.audits.sgx import Registers
from labswitch.errors import LabswitchError

DEVICE = Path("/dev/cpu/0/cpuid")
LEAVES = [(1, 0), (7, 0)] + [(0x12, sub) for sub in range(0, 10)]


def read_leaves(device: Path = DEVICE) -> dict[tuple[int, int], Registers] | None:
    """Leaves 1, 7 and 0x12 (sub-leaves 0-9); None when the device cannot be read."""
    try:
        fd = os.open(device, os.O_RDONLY)
    except OSError:
        return None
    try:
        out: dict[tuple[int, int], Registers] = {}
        max_leaf = int.from_bytes(os.pread(fd, 16, 0)[:4], "little")
        for leaf, sub in LEAVES:
            if leaf > max_leaf:
                out[(leaf, sub)] = (0, 0, 0, 0)
                continue
            raw = os.pread(fd, 16, leaf | sub << 32)
            regs = tuple(int.from_bytes(raw[i : i + 4], "little") for i in range(0, 16, 4))
            out[(leaf, sub)] = (regs[0], regs[1], regs[2], regs[3])
        return out
    except OSError:
        return None
    finally:
        os.close(fd)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text()
    except OSError as exc:
        raise LabswitchError(f"SGX: neither raw CPUID (/dev/cpu/0/cpuid) nor {cpuinfo} can be read here ({exc.strerror})") from exc
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()
