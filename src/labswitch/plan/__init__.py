"""The planner. PURE: (snapshot, config, facts, intent) -> Plan. No I/O, so every ordering
and safety rule is a fast unit test on a hand-built snapshot.

A plan is a graph: each step names the steps it waits for (``after``) and the endpoint it goes
through. Every host is its own chain, so a host goes down (or comes up) as soon as its own steps
allow, whatever the other hosts do:

down, per host: its VMs' guest shutdowns -> maintenance -> ESXi shutdown -> confirmed off by the BMC
up,   per host: BMC power-on -> connected -> out of maintenance -> its VMs of each start-up wave
Waves are barriers across the lab: wave N+1 starts after wave N's VMs are up (its wait condition).

Every step a run can take is planned, fallbacks included: a step with ``fallback_of`` runs only
when that step did not work (a guest shutdown -> hard power-off; vSphere's host shutdown -> the
BMC's GracefulShutdown; the BMC's confirm-off -> ForceOff).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase

from labswitch.bmc import Power
from labswitch.config import Config, Server, Wave
from labswitch.errors import UnknownName
from labswitch.hostnet import is_ip
from labswitch.plan import clusters
from labswitch.plan.actions import REGISTRY, VM_ACTIONS, Effect, Spec, Subject, slow_after, spec
from labswitch.plan.model import VCENTER, Action, Facts, Intent, Plan, Status, Step, VCenterHost, bmc, direct, esxi
from labswitch.plan.off import confirm_off, off_fallbacks
from labswitch.plan.whole_lab import Holder, down_tail, find_holder
from labswitch.snapshot import ClusterInfo, HostInfo, Snapshot, VMInfo

__all__ = [
    "REGISTRY",
    "VCENTER",
    "VM_ACTIONS",
    "Action",
    "Effect",
    "Facts",
    "Intent",
    "Plan",
    "Spec",
    "Status",
    "Step",
    "Subject",
    "VCenterHost",
    "bmc",
    "direct",
    "esxi",
    "make_plan",
    "slow_after",
    "spec",
    "target_groups",
    "through_hosts",
]


def target_groups(config: Config, requested: Sequence[str], intent: Intent) -> tuple[str, ...]:
    """The groups a command acts on: those named, or every group that is not always_on."""
    for name in requested:
        if name not in config.groups:
            known = ", ".join(sorted(config.groups)) or "none"
            raise UnknownName(f"--group {name}: no such group (groups: {known}); see [groups.NAME] in the config")
    if requested:
        return tuple(dict.fromkeys(requested))
    return tuple(name for name, group in config.groups.items() if not group.always_on)


def make_plan(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    intent: Intent,
    groups: Sequence[str],
    skip_unreachable: bool = False,
    pipeline: bool = True,
    vsan_no_action: bool = False,
    whole_lab: bool = False,
    cluster_barrier: bool = False,
) -> Plan:
    """``whole_lab``: vCenter's own host may go down too, last, through its own API (plan.whole_lab);
    a target group with holds_vcenter asks for it too. ``vsan_no_action``: a vSAN cluster going down in
    part enters maintenance without moving data
    instead of being refused (--vsan-no-action). ``pipeline = False`` adds the old global phase barriers
    (every step waits for the whole previous phase, lab-wide): only for measuring what the per-host
    chains save (`--no-pipeline`, hidden). ``cluster_barrier``: every cluster going down entirely is one unit
    and its VMs start after its restores, the design before 2026-12 (`--cluster-barrier`, hidden; the benchmark)."""
    refusals: list[str] = []
    notes: list[str] = []
    vcenter_host = None
    waves = tuple(config.startup.waves)
    if intent is Intent.DOWN:
        for name in groups:
            if config.groups[name].always_on:
                refusals.append(f"group {name} is always_on; it is never switched off (set always_on = false to allow it)")
    servers: list[Server] = []
    for server in (s for s in config.servers if s.group in groups):
        if facts.bmc_power.get(server.name, Power.UNKNOWN) is Power.UNKNOWN:
            reason = facts.bmc_errors.get(server.name, f"server {server.name}: BMC unreachable")
            if skip_unreachable:
                notes.append(f"{reason}; left out (--skip-unreachable)")
                continue
            refusals.append(f"{reason}; fix it or pass --skip-unreachable to leave the server out")
        servers.append(server)
    hosts = {s.name: snap.host_by_name(s.esxi) for s in servers}
    for s in servers:
        if hosts[s.name] is None:
            notes.append(f"server {s.name}: no host {s.esxi!r} in vCenter; only its BMC is used")
    if intent is Intent.DOWN:
        holder = None
        if whole_lab or any(config.groups[g].holds_vcenter for g in groups):
            live_hosts = {n: h for n, h in hosts.items() if facts.bmc_power.get(n) is not Power.OFF}
            holder = find_holder(
                snap, config, live_hosts, lambda vm: is_vcenter_vm(vm, _vcenter_vm(config), facts.vcenter_addresses), refusals, notes
            )
        refusals += _safety(snap, config, facts, servers, hosts, holder)
        live = {name: h for name, h in hosts.items() if facts.bmc_power.get(name) is not Power.OFF}
        whole = clusters.whole(snap, hosts)
        vsan_refusals, no_action = clusters.partial_vsan(snap, live, whole, vsan_no_action, notes)
        refusals += vsan_refusals
        steps = _down(snap, config, facts, servers, hosts, notes, whole, frozenset(no_action), holder, cluster_barrier)
        if holder is not None:
            vcenter_host = VCenterHost(
                holder.server,
                (holder.vcenter.name, holder.vcenter.uuid or ""),
                tuple((vm.name, vm.uuid or "") for vm in holder.dependencies),
                tuple(name for name, _ in holder.peers),
            )
    else:
        steps = _up(snap, config, facts, servers, hosts, cluster_barrier)
        if config.policy.startup_from_autostart:
            waves = autostart_waves(snap)
    if not pipeline:
        steps = _phase_barriers(steps)
    return Plan(
        intent=intent,
        groups=tuple(groups),
        servers=tuple(s.name for s in servers),
        steps=tuple(steps),
        refusals=tuple(refusals),
        notes=tuple(notes),
        waves=waves,
        vcenter_host=vcenter_host,
    )


def through_hosts(plan: Plan) -> Plan:
    """A lab without vCenter: each step that would go through vCenter goes through its server's host."""
    return replace(plan, steps=tuple(replace(s, endpoint=esxi(s.server)) if s.endpoint == VCENTER and s.server else s for s in plan.steps))


def _phase_barriers(steps: list[Step]) -> list[Step]:
    """Every step (but a fallback) also waits for every step of the phase before it."""
    phases = list(dict.fromkeys(s.phase for s in steps))
    by_phase = {p: tuple(s.id for s in steps if s.phase == p and not s.fallback_of) for p in phases}
    out = []
    for step in steps:
        index = phases.index(step.phase)
        if index == 0 or step.fallback_of:
            out.append(step)
        else:
            out.append(replace(step, after=tuple(dict.fromkeys(step.after + by_phase[phases[index - 1]]))))
    return out


# -- safety ------------------------------------------------------------------------------
def _safety(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    servers: list[Server],
    hosts: Mapping[str, HostInfo | None],
    holder: Holder | None,
) -> list[str]:
    refusals = []
    for server in servers:
        host = hosts[server.name]
        if host is not None:
            refusals += _host_safety(snap, config, facts, host, server.name, holder.vcenter if holder else None)
    return refusals


def _host_safety(snap: Snapshot, config: Config, facts: Facts, host: HostInfo, label: str, last: VMInfo | None = None) -> list[str]:
    """Why the VMs on ``host`` must not be stopped: the vCenter (unless it is ``last``: a whole-lab down
    stops it last, through its host), labswitch's own machine, protected VMs."""
    refusals = []
    self_ids = {a for a in facts.self_addresses if not _loopback(a)}
    for vm in snap.vms_on(host.moid):
        ids = _identities(vm)
        if vm != last and is_vcenter_vm(vm, _vcenter_vm(config), facts.vcenter_addresses):
            refusals.append(
                f"VM {vm.name} is the vCenter and runs on {label}; move it to an always-on host, "
                "or take the whole lab down with --whole-lab (vCenter last, through its host)"
            )
        if ids & _with_short_names(self_ids):
            refusals.append(f"VM {vm.name} is the machine running labswitch and runs on {label}; run labswitch elsewhere")
        if any(fnmatchcase(vm.name.lower(), glob.lower()) for glob in config.policy.protect):
            refusals.append(f"VM {vm.name} on {label} matches policy.protect; move it or change the policy")
        if config.policy.protect_tag and has_tag(vm, config.policy.protect_tag):
            refusals.append(f"VM {vm.name} on {label} carries the protect tag {config.policy.protect_tag}")
    return refusals


def _vcenter_vm(config: Config) -> str | None:
    return config.vcenter.vm if config.vcenter is not None else None


def is_vcenter_vm(vm: VMInfo, configured_name: str | None, vcenter_addresses: Iterable[str]) -> bool:
    """The one rule for "this VM is the vCenter": ``vcenter.vm`` names it, or its guest IP or host
    name (short names too) is the vCenter URL's host or one of its addresses."""
    if configured_name and vm.name == configured_name:
        return True
    return bool(_identities(vm) & _with_short_names(vcenter_addresses))


def _identities(vm: VMInfo) -> set[str]:
    ids = {x.lower() for x in (vm.guest_ip, vm.guest_hostname) if x}
    return _with_short_names(ids)


def _with_short_names(names: Iterable[str]) -> set[str]:
    out = set(names)
    out |= {n.split(".", 1)[0] for n in out if "." in n and not is_ip(n)}
    return out


def _loopback(text: str) -> bool:
    return text == "localhost" or (is_ip(text) and ipaddress.ip_address(text).is_loopback)


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


# -- down ------------------------------------------------------------------------------
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
    waves = config.startup.waves
    guest: list[tuple[VMInfo, str]] = []
    hard: list[Step] = []
    maintenance: list[Step] = []
    shutdown: list[Step] = []
    cluster_steps: list[Step] = []
    whole = dict(whole)  # less any cluster a host of which stays on
    members: list[clusters.Member] = []  # the hosts to empty and shut down
    waits: dict[str, tuple[tuple[str, ...], tuple[str, ...], HostInfo]] = {}  # server -> (its shutdown's after, settled, its host)
    last = frozenset(vm.moid for vm in (holder.vcenter, *holder.dependencies)) if holder else frozenset()
    last_hosts = {holder.server, *(name for name, _ in holder.peers)} if holder else set()  # they go down through themselves
    tail_after: tuple[str, ...] = ()
    for server in servers:
        host = hosts[server.name]
        if facts.bmc_power.get(server.name) is Power.OFF:
            continue  # already down: nothing to do
        if host is None or host.connection_state != "connected":
            moid = host.moid if host else None
            by_bmc = Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, server.name, moid, server.name, endpoint=bmc(server.name))
            shutdown += [by_bmc, *confirm_off(config, by_bmc)]
            continue
        first = len(guest), len(hard)
        blocked = _stop_vms(snap, config, host, server.name, guest, hard, exclude=last)
        emptied = tuple(_guest_id(vm) for vm, _ in guest[first[0] :]) + tuple(h.id for h in hard[first[1] :])
        if holder is not None and server.name in last_hosts:
            tail_after += emptied
        if blocked:
            notes.append(f"server {server.name}: VMs without VMware Tools stay on (policy.hard_power_off = false); the host stays on")
            whole.pop(host.cluster_moid or "", None)  # the cluster does not go down entirely
            continue
        members.append(clusters.Member(server.name, host, emptied))
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
    steps = _guest_steps(guest, waves, config) + hard + cluster_steps + maintenance + shutdown
    if holder is None:
        return steps
    return steps + down_tail(config, holder, steps, tail_after)


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
    """Guest shutdowns in reverse start-up order (the last wave's VMs are asked first); each followed,
    with policy.hard_power_off, by the hard power-off that runs only if the guest is still on."""

    def rank(vm: VMInfo) -> int:  # its start-up place: the hosts' autostart order, or the waves
        if config.policy.startup_from_autostart:
            return vm.autostart.order if vm.autostart is not None else 1 << 16
        return wave_of(vm, waves)

    guest.sort(key=lambda pair: (-rank(pair[0]), pair[0].name))
    steps = []
    for vm, label in guest:
        step = Step("guest-shutdown", Action.SHUTDOWN_GUEST, vm.name, vm.moid, label)
        steps.append(step)
        if config.policy.hard_power_off:
            steps.append(Step("guest-shutdown", Action.POWER_OFF_VM, vm.name, vm.moid, label, fallback_of=step.id))
    return steps


# -- reboot ------------------------------------------------------------------------------
def make_reboot_plan(snap: Snapshot, config: Config, facts: Facts, host: HostInfo) -> Plan:
    """One host of a rolling reboot: its running VMs stopped, maintenance, reboot through vSphere,
    reconnected, out of maintenance, and the same VMs started again."""
    label = host.name
    refusals = _host_safety(snap, config, facts, host, label)
    if host.connection_state != "connected":
        refusals.append(f"host {label} is {host.connection_state}; it cannot be rebooted through vCenter")
    guest: list[tuple[VMInfo, str]] = []
    hard: list[Step] = []
    notes = []
    if _stop_vms(snap, config, host, label, guest, hard):
        refusals.append(f"host {label} runs VMs without VMware Tools and policy.hard_power_off is false; it cannot be emptied")
    running = [vm for vm in snap.workload_on(host.moid) if vm.power_state == "poweredOn"]
    steps = _guest_steps(guest, config.startup.waves, config) + hard
    last = tuple(s.id for s in steps if not s.fallback_of)
    chain: list[tuple[str, Action]] = []
    if not host.in_maintenance:
        chain.append(("maintenance", Action.ENTER_MAINTENANCE))
    else:
        notes.append(f"host {label} is in maintenance mode already; it is left in it after the reboot")
    chain += [("reboot", Action.REBOOT_HOST), ("connect", Action.WAIT_CONNECTED)]
    if not host.in_maintenance:
        chain.append(("maintenance-exit", Action.EXIT_MAINTENANCE))
    for phase, action in chain:
        step = Step(phase, action, label, host.moid, label, after=last)
        steps.append(step)
        last = (step.id,)
    steps += [
        Step("start:restore", Action.POWER_ON_VM, vm.name, vm.moid, label, after=last) for vm in sorted(running, key=lambda v: v.name)
    ]
    groups = tuple(dict.fromkeys(s.group for s in config.servers if s.esxi == host.name))  # none: a host labswitch does not manage
    return Plan(Intent.REBOOT, groups, (label,), tuple(steps), tuple(refusals), tuple(notes))


# -- up ----------------------------------------------------------------------------------
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
