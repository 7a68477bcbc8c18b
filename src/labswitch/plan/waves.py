"""Start-up waves (PURE): which wave a VM belongs to (tags, autostart order) and the up's wave steps with
their barriers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from labswitch.config import Server, Wave
from labswitch.plan.model import Action, Step
from labswitch.snapshot import Snapshot, VMInfo


def has_tag(vm: VMInfo, wanted: str) -> bool:
    """``wanted`` is "Category/Tag" (exact) or "Tag" (in any category)."""
    if "/" in wanted:
        return wanted in vm.tags
    return any(t.split("/", 1)[-1] == wanted for t in vm.tags)


def autostart_waves(snap: Snapshot) -> tuple[Wave, ...]:
    """The hosts' autostart orders as start-up waves: one per place in the order, across the hosts. A wave
    waits for its VMs' heartbeats where the host says so (at most their start delay), else for the delay."""
    orders = sorted({vm.autostart.order for vm in snap.vms if vm.autostart is not None})
    waves = []
    for order in orders:
        infos = [vm.autostart for vm in snap.vms if vm.autostart is not None and vm.autostart.order == order]
        delay = max(a.delay for a in infos)
        if all(a.heartbeat for a in infos):
            waves.append(Wave(name=f"autostart {order}", wait="heartbeat", timeout=max(delay, 1.0)))
        else:
            waves.append(Wave(name=f"autostart {order}", wait="none", delay=delay))
    return tuple(waves)


def wave_of(vm: VMInfo, waves: Sequence[Wave]) -> int:
    """The first wave naming the VM (by glob or tag); len(waves) when none does."""
    for i, wave in enumerate(waves):
        if any(fnmatchcase(vm.name, g) for g in wave.vms) or any(has_tag(vm, t) for t in wave.tags):
            return i
    return len(waves)


def _wave_steps(
    start: list[tuple[int, VMInfo, Server]],
    ready: Mapping[str, tuple[str, ...]],
    waves: Sequence[Wave],
    settled: Mapping[str, tuple[str, ...]] | None = None,
) -> list[Step]:
    """Each VM starts once its host is up and the previous wave is ready; a wave-ready step waits for
    the wave's condition (tools, heartbeat) before the next wave, across the lab. ``settled``: server ->
    steps its VMs wait for, done or not (its cluster's restores)."""
    settled = settled or {}
    start.sort(key=lambda t: (t[0], t[1].name))
    indexes = list(dict.fromkeys(i for i, _, _ in start))
    steps: list[Step] = []
    barrier: tuple[str, ...] = ()
    for n, index in enumerate(indexes):
        phase = wave_phase(index, waves)
        members = [
            Step(
                phase,
                Action.POWER_ON_VM,
                vm.name,
                vm.moid,
                server.name,
                wave=index,
                after=ready[server.name] + barrier,
                settled=settled.get(server.name, ()),
            )
            for i, vm, server in start
            if i == index
        ]
        steps += members
        if n < len(indexes) - 1:  # the last wave is not waited for
            name = waves[index].name or str(index + 1) if index < len(waves) else "remaining"
            gate = Step(phase, Action.WAVE_READY, name, None, None, wave=index, after=tuple(m.id for m in members))
            steps.append(gate)
            barrier = (gate.id,)
    return steps


def wave_phase(index: int, waves: Sequence[Wave]) -> str:
    if index >= len(waves):
        return "start:remaining"
    return f"start:{waves[index].name or index + 1}"
