"""The down of a set of hosts (PURE): per host its guests stopped (with fallbacks), maintenance, shutdown,
confirmed off by the BMC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from labswitch.bmc import Power
from labswitch.config import Config, Server, Wave
from labswitch.plan import clusters
from labswitch.plan.model import Action, Facts, Step, bmc
from labswitch.plan.off import confirm_off, off_fallbacks
from labswitch.plan.order import in_groups
from labswitch.plan.waves import wave_of
from labswitch.plan.whole_lab import Holder, down_tail
from labswitch.snapshot import ClusterInfo, HostInfo, Snapshot, VMInfo


def _down(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    servers: list[Server],
    hosts: Mapping[str, HostInfo | None],
    notes: list[str],
    whole: Mapping[str, ClusterInfo],
    no_action: frozenset[str] = frozenset(),
    holder: Holder | None = None,
    barrier: bool = False,
) -> list[Step]:
    """Per host: VMs off -> maintenance -> shutdown -> confirmed off; a whole cluster's hosts (``whole``:
    plan.clusters.whole) also wait for its cluster steps. ``no_action``: host moids entering vSAN
    maintenance with noAction. ``holder``: vCenter's host in a whole-lab down: its other VMs stop
    through vCenter, the rest of it goes last, through the host (plan.whole_lab.down_tail)."""
    whole = dict(whole)  # less any cluster a host of which stays on
    last = frozenset(vm.moid for vm in (holder.vcenter, *holder.dependencies)) if holder else frozenset()
    last_hosts = {holder.server, *(name for name, _ in holder.peers)} if holder else set()  # they go down through themselves
    emptied = _empty(snap, config, facts, servers, hosts, notes, whole, last, last_hosts)
    guest, hard, shutdown, members, tail_after = emptied.guest, emptied.hard, emptied.shutdown, emptied.members, emptied.tail_after
    maintenance: list[Step] = []
    cluster_steps: list[Step] = []
    waits: dict[str, tuple[tuple[str, ...], tuple[str, ...], HostInfo]] = {}  # server -> (its shutdown's after, settled, its host)
    by_cluster: dict[str, list[clusters.Member]] = {}
    for m in members:
        if m.host.cluster_moid in whole:
            by_cluster.setdefault(m.host.cluster_moid or "", []).append(m)
            continue
        action = Action.ENTER_MAINTENANCE_NO_ACTION if m.host.moid in no_action else Action.ENTER_MAINTENANCE
        chain = [Step("maintenance", action, m.server, m.host.moid, m.server, after=m.emptied)] if not m.host.in_maintenance else []
        maintenance += chain
        waits[m.server] = (tuple(s.id for s in chain) or m.emptied, (), m.host)
    holds = {holder.host.cluster_moid} if holder is not None and holder.vsan else set()
    for moid, cluster_members in by_cluster.items():
        inside = holder is not None and holder.host.cluster_moid == moid  # its last host goes down through itself
        own, entering, before = clusters.down(
            snap, whole[moid], cluster_members, notes, power_action=moid not in holds, vcenter_inside=inside, barrier=barrier
        )
        cluster_steps += own
        maintenance += entering
        waits.update({m.server: (*before[m.server], m.host) for m in cluster_members})
    for name in last_hosts:  # their maintenance and shutdown go through the hosts themselves, last
        waits.pop(name, None)
    maintenance = [s for s in maintenance if s.server not in last_hosts]
    for name, (after, settled, host) in waits.items():
        off = Step("host-shutdown", Action.SHUTDOWN_HOST, name, host.moid, name, after=after, settled=settled)
        shutdown += [off, *off_fallbacks(config, off)]
    steps = _guest_steps(guest, config.startup.waves, config) + hard + cluster_steps + maintenance + shutdown
    if holder is None:
        return steps
    return steps + down_tail(config, holder, steps, tail_after)


@dataclass
class _Emptied:
    """What stops each host's VMs, and the hosts left to enter maintenance and shut down."""

    guest: list[tuple[VMInfo, str]] = field(default_factory=list)  # (VM, the server it is on): guest shutdowns
    hard: list[Step] = field(default_factory=list)  # hard power-offs planned as such (no fallback of a guest shutdown)
    shutdown: list[Step] = field(default_factory=list)  # servers vCenter cannot reach: shut down by their BMC
    members: list[clusters.Member] = field(default_factory=list)  # the hosts to empty and shut down
    tail_after: tuple[str, ...] = ()  # a whole-lab down: what vCenter's host(s) stop through vCenter first


def _empty(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    servers: list[Server],
    hosts: Mapping[str, HostInfo | None],
    notes: list[str],
    whole: dict[str, ClusterInfo],
    last: frozenset[str],
    last_hosts: set[str],
) -> _Emptied:
    """Each server's VMs stopped (but ``last``: vCenter and its dependencies); a server already off is left out,
    one vCenter cannot reach goes down by its BMC, one whose VMs cannot all stop stays on (its cluster then is
    not ``whole``: removed from it)."""
    out = _Emptied()
    for server in servers:
        host = hosts[server.name]
        if facts.bmc_power.get(server.name) is Power.OFF:
            continue  # already down: nothing to do
        if host is None or host.connection_state != "connected":
            moid = host.moid if host else None
            by_bmc = Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, server.name, moid, server.name, endpoint=bmc(server.name))
            out.shutdown += [by_bmc, *confirm_off(config, by_bmc)]
            continue
        first = len(out.guest), len(out.hard)
        blocked = _stop_vms(snap, config, host, server.name, out.guest, out.hard, exclude=last)
        emptied = tuple(_guest_id(vm) for vm, _ in out.guest[first[0] :]) + tuple(h.id for h in out.hard[first[1] :])
        if server.name in last_hosts:
            out.tail_after += emptied
        if blocked:
            notes.append(f"server {server.name}: VMs without VMware Tools stay on (policy.hard_power_off = false); the host stays on")
            whole.pop(host.cluster_moid or "", None)  # the cluster does not go down entirely
            continue
        out.members.append(clusters.Member(server.name, host, emptied))
    return out


def _stop_vms(
    snap: Snapshot,
    config: Config,
    host: HostInfo,
    label: str,
    guest: list[tuple[VMInfo, str]],
    hard: list[Step],
    exclude: frozenset[str] = frozenset(),
) -> bool:
    """Add the steps that stop the powered-on VMs of ``host`` (but the moids ``exclude``d); True when one
    must stay on (the host too)."""
    blocked = False
    for vm in snap.workload_on(host.moid):
        if vm.power_state != "poweredOn" or vm.moid in exclude:
            continue
        if vm.tools_running:
            guest.append((vm, label))
        elif config.policy.hard_power_off:
            hard.append(Step("power-off", Action.POWER_OFF_VM, vm.name, vm.moid, label))
        else:
            hard.append(Step("power-off", Action.LEAVE_RUNNING, vm.name, vm.moid, label))
            blocked = True
    return blocked


def _guest_id(vm: VMInfo) -> str:
    return f"{Action.SHUTDOWN_GUEST}:{vm.moid}"


def _guest_steps(guest: list[tuple[VMInfo, str]], waves: Sequence[Wave], config: Config) -> list[Step]:
    """Guest shutdowns in reverse start-up order: the last wave's VMs (or the last place of the hosts' autostart
    order) first, each group once every shutdown of the group before it ended (plan.order: edges, not the order of
    the requests); each followed, with policy.hard_power_off, by the hard power-off that runs only if the guest is
    still on."""

    def rank(vm: VMInfo) -> int:  # its start-up place: the hosts' autostart order, or the waves
        if config.policy.startup_from_autostart:
            return vm.autostart.order if vm.autostart is not None else 1 << 16
        return wave_of(vm, waves)

    def name(place: int) -> str:
        if config.policy.startup_from_autostart:
            return f"autostart {place}" if place != 1 << 16 else "no autostart"
        return (waves[place].name or f"wave {place + 1}") if place < len(waves) else "remaining"

    groups: dict[int, list[Step]] = {}
    for vm, label in sorted(guest, key=lambda pair: pair[0].name):
        step = Step("guest-shutdown", Action.SHUTDOWN_GUEST, vm.name, vm.moid, label)
        members = groups.setdefault(rank(vm), [])
        members.append(step)
        if config.policy.hard_power_off:
            members.append(Step("guest-shutdown", Action.POWER_OFF_VM, vm.name, vm.moid, label, fallback_of=step.id))
    return in_groups([(name(place), groups[place]) for place in sorted(groups, reverse=True)])
