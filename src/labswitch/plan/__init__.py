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

from collections.abc import Sequence
from dataclasses import replace

from labswitch.bmc import Power
from labswitch.bmc.grouped import grouped
from labswitch.config import Config, Server
from labswitch.errors import UnknownName, shown
from labswitch.plan import clusters, proxmox
from labswitch.plan import servers as plain
from labswitch.plan.actions import REGISTRY, VM_ACTIONS, Effect, Spec, Subject, slow_after, spec
from labswitch.plan.down import _down
from labswitch.plan.model import VCENTER, Action, Facts, Intent, Plan, Status, Step, VCenterHost, bmc, direct, esxi
from labswitch.plan.reboot import make_reboot_plan
from labswitch.plan.safety import _safety, _vcenter_vm, is_vcenter_vm
from labswitch.plan.up import _up
from labswitch.plan.waves import autostart_waves
from labswitch.plan.whole_lab import find_holder
from labswitch.snapshot import HostInfo, Snapshot

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
    "is_vcenter_vm",
    "make_plan",
    "make_proxmox_plan",
    "make_reboot_plan",
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
            raise UnknownName(f"--group {shown(name)}: no such group (groups: {known}); see [groups.NAME] in the config")
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
    refusals += _always_on(config, groups, intent)
    every = _reachable(config, facts, groups, skip_unreachable, refusals, notes)
    servers = [s for s in every if not s.plain]  # the plain ones: plan.servers
    hosts = {s.name: snap.host_by_name(s.esxi) for s in servers}
    for s in servers:
        if hosts[s.name] is None:
            notes.append(f"server {s.name}: no host {s.esxi!r} in vCenter; only its BMC is used")
    if intent is Intent.DOWN:
        steps, vcenter_host = _down_of(
            snap, config, facts, groups, servers, hosts, refusals, notes, whole_lab, vsan_no_action, cluster_barrier
        )
    else:
        steps = _up(snap, config, facts, servers, hosts, cluster_barrier)
        if config.policy.startup_from_autostart:
            waves = autostart_waves(snap)
    steps += plain.steps(config, facts, intent, [s for s in every if s.plain])
    if not pipeline:
        steps = _phase_barriers(steps)
    return Plan(
        intent=intent,
        groups=tuple(groups),
        servers=tuple(s.name for s in every),
        steps=tuple(steps),
        refusals=tuple(refusals),
        notes=tuple(notes),
        waves=waves,
        vcenter_host=vcenter_host,
    )


def make_proxmox_plan(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    intent: Intent,
    groups: Sequence[str],
    skip_unreachable: bool = False,
    tag: str | None = None,
) -> Plan:
    """A Proxmox VE lab's plan (plan.proxmox), with the refusals every platform shares: always_on groups, BMCs that
    do not answer."""
    refusals = _always_on(config, groups, intent)
    notes: list[str] = []
    every = _reachable(config, facts, groups, skip_unreachable, refusals, notes)
    made = proxmox.make_plan(snap, config, facts, intent, groups, [s for s in every if not s.plain], refusals, notes, tag)
    own = plain.steps(config, facts, intent, [s for s in every if s.plain])
    return replace(made, servers=tuple(s.name for s in every), steps=made.steps + tuple(own)) if own else made


def _always_on(config: Config, groups: Sequence[str], intent: Intent) -> list[str]:
    """A down of an always_on group is refused, on every platform."""
    if intent is not Intent.DOWN:
        return []
    return [
        f"group {name} is always_on; it is never switched off (set always_on = false to allow it)"
        for name in groups
        if config.groups[name].always_on
    ]


def _reachable(
    config: Config, facts: Facts, groups: Sequence[str], skip_unreachable: bool, refusals: list[str], notes: list[str]
) -> list[Server]:
    """The groups' servers; one whose BMC did not answer is refused, or left out with --skip-unreachable."""
    servers: list[Server] = []
    unreachable: dict[str, str] = {}
    for server in (s for s in config.servers if s.group in groups):
        if facts.bmc_power.get(server.name, Power.UNKNOWN) is Power.UNKNOWN:
            unreachable[server.name] = facts.bmc_errors.get(server.name, f"server {server.name}: BMC unreachable")
            if skip_unreachable:
                continue
        servers.append(server)
    if skip_unreachable:  # many servers, one cause: one line (bmc.grouped)
        notes += grouped(unreachable, "; left out (--skip-unreachable)")
    else:
        refusals += grouped(unreachable, "; fix it or pass --skip-unreachable to leave the server out")
    return servers


def _down_of(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    groups: Sequence[str],
    servers: list[Server],
    hosts: dict[str, HostInfo | None],
    refusals: list[str],
    notes: list[str],
    whole_lab: bool,
    vsan_no_action: bool,
    cluster_barrier: bool,
) -> tuple[list[Step], VCenterHost | None]:
    """A down's steps, its safety refusals, and where vCenter runs when it goes down too (a whole-lab down)."""
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
    if holder is None:
        return steps, None
    return steps, VCenterHost(
        holder.server,
        (holder.vcenter.name, holder.vcenter.uuid or ""),
        tuple((vm.name, vm.uuid or "") for vm in holder.dependencies),
        tuple(name for name, _ in holder.peers),
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
