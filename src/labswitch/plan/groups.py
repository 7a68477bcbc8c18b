"""Groups that depend on groups (PURE): ``[groups.payload] after = ["storage"]``.

A down of both takes payload down whole (every payload server confirmed off by its BMC) before the first step of
storage; an up brings storage up and ready (every storage host step done: powered on, back, out of maintenance, its
cluster's settings given back) before the first step of payload. Edges of the graph, not phases: each step of the
dependent group waits only for the other group. A down of storage alone while a payload server is on is refused, so
is an up of payload alone while a storage server is off: nothing is changed, and the line says what to run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.plan.actions import VM_ACTIONS
from labswitch.plan.model import Action, Facts, Intent, Plan, Step
from labswitch.snapshot import Snapshot


def in_order(plan: Plan, config: Config, facts: Facts, snap: Snapshot) -> Plan:
    """``plan`` with the edges and refusals its groups' ``after`` call for (unchanged when no group names any)."""
    pairs = [(g, needed) for g in config.groups for needed in config.groups[g].after]
    if not pairs:
        return plan
    refusals = list(plan.refusals)
    steps = list(plan.steps)
    group_of = _step_groups(plan.steps, config, snap)
    for dependent, needed in pairs:
        both = dependent in plan.groups and needed in plan.groups
        if both and plan.intent is Intent.DOWN:
            steps = _before(steps, group_of, first=dependent, then=needed, done=lambda s: s.action == Action.CONFIRM_OFF)
        elif both:
            steps = _before(steps, group_of, first=needed, then=dependent, done=lambda s: s.action not in VM_ACTIONS)
        elif plan.intent is Intent.DOWN and needed in plan.groups:
            on = _servers(config, dependent, facts, lambda p: p is not Power.OFF)
            if on:
                refusals.append(
                    f"group {needed}: group {dependent} needs it and is on ({', '.join(on)}); take {dependent} down first, "
                    f"or both: labswitch down --group {dependent} --group {needed}"
                )
        elif plan.intent is Intent.UP and dependent in plan.groups:
            off = _servers(config, needed, facts, lambda p: p is Power.OFF)
            if off:
                refusals.append(
                    f"group {dependent} needs group {needed}, which is off ({', '.join(off)}); bring both up: "
                    f"labswitch up --group {needed} --group {dependent}"
                )
    return replace(plan, steps=tuple(steps), refusals=tuple(refusals))


def linked(config: Config, groups: Sequence[str]) -> set[str]:
    """The groups a run of ``groups`` must know the power of: those they need and those that need them, transitively."""
    needs = {g: set(config.groups[g].after) for g in config.groups}
    out: set[str] = set()
    todo = list(groups)
    while todo:
        group = todo.pop()
        for other in needs.get(group, set()) | {g for g, wanted in needs.items() if group in wanted}:
            if other not in out and other not in groups:
                out.add(other)
                todo.append(other)
    return out


def _before(steps: list[Step], group_of: Mapping[str, str], first: str, then: str, done: Callable[[Step], bool]) -> list[Step]:
    """Every step of group ``then`` that waits for nothing else waits for the steps of group ``first`` that ``done``
    picks (the rest of ``then`` follows them through its own edges)."""
    gate = tuple(s.id for s in steps if group_of.get(s.id) == first and not s.fallback_of and done(s))
    if not gate:
        return steps
    out = []
    for s in steps:
        root = group_of.get(s.id) == then and not (s.after or s.settled or s.fallback_of)
        out.append(replace(s, after=(*s.after, *gate)) if root else s)
    return out


def _step_groups(steps: Sequence[Step], config: Config, snap: Snapshot) -> dict[str, str]:
    """step id -> its group: its server's, or for a cluster's own step the group of the cluster's servers."""
    server_group = {s.name: s.group for s in config.servers}
    by_host = {s.esxi: s.group for s in config.servers}
    cluster_group: dict[str, set[str]] = {}
    for host in snap.hosts:
        if host.cluster_moid and host.name in by_host:
            cluster_group.setdefault(host.cluster_moid, set()).add(by_host[host.name])
    out = {}
    for step in steps:
        if step.server in server_group:
            out[step.id] = server_group[step.server or ""]
        elif step.moid in cluster_group and len(cluster_group[step.moid or ""]) == 1:
            out[step.id] = next(iter(cluster_group[step.moid or ""]))
    return out


def _servers(config: Config, group: str, facts: Facts, power: Callable[[Power | None], bool]) -> list[str]:
    return sorted(s.name for s in config.servers if s.group == group and power(facts.bmc_power.get(s.name)))
