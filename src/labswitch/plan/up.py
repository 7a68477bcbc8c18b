"""The up of a set of hosts (PURE): per host BMC power-on, connected, out of maintenance, its VMs by wave."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from labswitch.bmc import Power
from labswitch.config import Config, Server, Wave
from labswitch.plan import clusters
from labswitch.plan.model import Action, Facts, Step, bmc
from labswitch.plan.waves import _wave_steps, autostart_waves, has_tag, wave_of
from labswitch.snapshot import HostInfo, Snapshot, VMInfo


def _up(
    snap: Snapshot, config: Config, facts: Facts, servers: list[Server], hosts: Mapping[str, HostInfo | None], barrier: bool = False
) -> list[Step]:
    power_on, connect, maintenance = [], [], []
    connected: dict[str, tuple[str, ...]] = {}  # server -> the steps after which its host is connected
    start: list[tuple[int, VMInfo, Server]] = []
    waves: Sequence[Wave] = config.startup.waves
    orders = sorted({vm.autostart.order for vm in snap.vms if vm.autostart is not None})
    if config.policy.startup_from_autostart:  # the hosts' own orders: a VM's place in them is its wave
        waves = autostart_waves(snap)

    def place(vm: VMInfo) -> int:
        if config.policy.startup_from_autostart:
            return orders.index(vm.autostart.order) if vm.autostart is not None else len(waves)
        return wave_of(vm, waves)

    for server in servers:
        host = hosts[server.name]
        off = facts.bmc_power.get(server.name) is Power.OFF
        last: tuple[str, ...] = ()
        if off:
            step = Step("power-on", Action.BMC_POWER_ON, server.name, host.moid if host else None, server.name, endpoint=bmc(server.name))
            power_on.append(step)
            last = (step.id,)
        if host is None:
            continue
        if off or host.connection_state != "connected":
            step = Step("connect", Action.WAIT_CONNECTED, server.name, host.moid, server.name, after=last)
            connect.append(step)
            last = (step.id,)
        connected[server.name] = last
        for vm in snap.workload_on(host.moid):
            if vm.power_state == "poweredOn":
                continue
            if facts.restore is not None:
                selected = vm.moid in facts.restore
            elif config.policy.startup_from_autostart:
                selected = vm.autostart is not None
            elif config.vcenter is None:  # a host has no tags: the waves' name globs select
                selected = wave_of(vm, waves) < len(waves)
            else:
                selected = has_tag(vm, config.policy.startup_tag)
            if selected:
                start.append((place(vm), vm, server))
    targets = {name: hosts[name] for name in connected}
    vsan_steps, exit_after = clusters.up_gates(snap, facts, targets, connected)
    ready: dict[str, tuple[str, ...]] = {}  # server -> the steps after which its VMs may start
    for name, last in connected.items():
        host = hosts[name]
        assert host is not None
        if name in exit_after or last or host.in_maintenance:
            step = Step(
                "maintenance", Action.EXIT_MAINTENANCE, name, host.moid, name, after=tuple(dict.fromkeys(last + exit_after.get(name, ())))
            )
            maintenance.append(step)
            last = (step.id,)
        ready[name] = last
    restore_steps, vms_after = clusters.restores(snap, facts, targets, ready, barrier)
    return power_on + connect + vsan_steps + maintenance + restore_steps + _wave_steps(start, ready, waves, vms_after)
