"""What a power cycle does to a cluster as a whole (PURE): vSphere HA, vCLS retreat mode, vSAN.

A cluster whose every host is a target goes down as one unit: once all its workload VMs are off,
HA is turned off and vCLS put in retreat mode where its agents would otherwise be powered back on
and keep the last host out of maintenance mode (EAM's agents: 7.0 U1 - 8.0 U2, and 8.0 U3 on a
cluster with a host of an older release; 8.0 U3's embedded agents stop by themselves); a vSAN cluster then takes vSAN's own cluster power
action (7.0 U3+), or, before that, each host enters maintenance mode without moving data
(objectAction noAction). A cluster going down only in part keeps HA and vCLS (maintenance mode
moves the agents to the hosts that stay up); a vSAN one is refused when fewer than three of its
hosts would stay up, unless the user accepts noAction.

On the way up, a vSAN cluster waits for all its hosts to be connected before its power-on action
(or before leaving maintenance mode), and every setting a down changed (the journal's facts) is
restored once the cluster's hosts are back; a vSAN cluster's VMs start after that, any other
cluster's as soon as their own host is out of maintenance mode (HA protects them once it is back on;
a power-on needs neither HA nor vCLS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labswitch.plan.actions import REGISTRY
from labswitch.plan.model import Action, Facts, Step
from labswitch.snapshot import ClusterInfo, HostInfo, Snapshot, has_vcls, needs_retreat

PHASE = "cluster"
POWERED_OFF = "clusterPoweredOff"
SETTINGS_RESTORED = {"ha": Action.RESTORE_HA, "vcls": Action.VCLS_RESTORE}  # "vsan-power": the power-on action


@dataclass(frozen=True)
class Member:
    """A target host of a cluster, as the down plan leaves it: the steps that stopped its VMs."""

    server: str
    host: HostInfo
    emptied: tuple[str, ...]


def whole(snap: Snapshot, targets: Mapping[str, HostInfo | None]) -> dict[str, ClusterInfo]:
    """The clusters every one of whose hosts is a target: cluster moid -> cluster."""
    target_moids = {h.moid for h in targets.values() if h is not None}
    out = {}
    for cluster in snap.clusters:
        hosts = snap.hosts_in(cluster.moid)
        if hosts and all(h.moid in target_moids for h in hosts):
            out[cluster.moid] = cluster
    return out


def vsan_action(snap: Snapshot, cluster: ClusterInfo) -> bool:
    """vSAN's cluster power action is offered for this cluster (7.0 U3+, its status readable)."""
    return cluster.vsan and cluster.vsan_power is not None


def step(action: Action, cluster: ClusterInfo, after: Sequence[str], phase: str = PHASE, settled: Sequence[str] = ()) -> Step:
    return Step(phase, action, cluster.name, cluster.moid, None, after=tuple(dict.fromkeys(after)), settled=tuple(dict.fromkeys(settled)))


# -- down ------------------------------------------------------------------------------
def down(
    snap: Snapshot,
    cluster: ClusterInfo,
    members: Sequence[Member],
    notes: list[str],
    power_action: bool = True,
    vcenter_inside: bool = False,
    barrier: bool = False,
) -> tuple[list[Step], list[Step], dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]:
    """A whole cluster going down: its cluster steps, its hosts' maintenance steps, and for each
    member server what its host shutdown waits for: (done, settled).

    Any cluster but vSAN pipelines as a partial one: HA off and retreat mode (where EAM's agents could
    block the last host) start with the cluster's guest shutdowns, and each host enters maintenance
    mode as soon as its own VMs are off and those cluster steps have settled (seconds, overlapping the
    guests'), so one slow guest keeps only its own host on. A vSAN cluster stays one unit: HA and
    retreat once every VM of the cluster is off, then vSAN's power action (waited for done: a vSAN host
    is never shut down outside maintenance mode), or noAction maintenance for every host.
    ``power_action = False``: never vSAN's action (vCenter runs on the cluster: a whole-lab down), noAction.
    ``vcenter_inside``: the cluster holds vCenter (a whole-lab down): retreat mode whatever its agents.
    ``barrier``: one unit whatever the cluster (the design before 2026-12, for the benchmark's comparison)."""
    stopped = [i for m in members for i in m.emptied]
    one_unit = cluster.vsan or barrier  # vSAN: its power action (or noAction maintenance) needs every VM of the cluster off
    first = stopped if one_unit else []  # any other cluster: HA and retreat mode at the very start of its down
    settings = []
    if cluster.ha:
        settings.append(step(Action.DISABLE_HA, cluster, first))
    # vCenter's own host leaves last, through its own API: vCenter is gone by then and an agent (embedded ones
    # too) would keep it out of maintenance mode.
    if has_vcls(snap.api_version) and (needs_retreat(snap, cluster.moid) or (vcenter_inside and snap.agents_in(cluster.moid))):
        settings.append(step(Action.VCLS_RETREAT, cluster, first))
    gate = tuple(s.id for s in settings)
    maintenance: list[Step] = []
    before_shutdown: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    if power_action and vsan_action(snap, cluster):
        power = [step(Action.VSAN_POWER_OFF, cluster, stopped + list(gate))] if cluster.vsan_power != POWERED_OFF else []
        settings += power
        for m in members:
            before_shutdown[m.server] = (tuple(s.id for s in power) or gate or m.emptied, ())
        return settings, maintenance, before_shutdown
    enter = Action.ENTER_MAINTENANCE
    if cluster.vsan:
        enter = Action.ENTER_MAINTENANCE_NO_ACTION
    if cluster.vsan and power_action:
        notes.append(
            f"cluster {cluster.name}: vSAN's cluster power action needs vSphere 7.0 U3 or later (vCenter API "
            f"{snap.api_version or 'unknown'}); its hosts enter maintenance mode without moving data (noAction) instead"
        )
    hard = cluster.vsan  # noAction maintenance: never for a vSAN cluster that is not going down entirely
    for m in members:
        after, settled = (m.emptied + gate, ()) if hard else (m.emptied, gate)
        chain = [Step("maintenance", enter, m.server, m.host.moid, m.server, after=after, settled=settled)]
        if m.host.in_maintenance:
            chain = []
        maintenance += chain
        before_shutdown[m.server] = ((chain[0].id,), ()) if chain else (after, settled)
    return settings, maintenance, before_shutdown


def partial_vsan(
    snap: Snapshot, targets: Mapping[str, HostInfo | None], whole_clusters: Mapping[str, ClusterInfo], no_action: bool, notes: list[str]
) -> tuple[list[str], set[str]]:
    """vSAN clusters going down in part: refusals when fewer than 3 hosts would stay up, and the host
    moids that enter maintenance with noAction instead (``no_action``: the user's --vsan-no-action)."""
    refusals: list[str] = []
    hosts_no_action: set[str] = set()
    target_moids = {h.moid for h in targets.values() if h is not None}
    for cluster in snap.clusters:
        if not cluster.vsan or cluster.moid in whole_clusters:
            continue
        hosts = snap.hosts_in(cluster.moid)
        leaving = [h for h in hosts if h.moid in target_moids and h.connection_state == "connected" and not h.in_maintenance]
        if not leaving:
            continue
        staying = [h for h in hosts if h.moid not in target_moids and h.connection_state == "connected" and not h.in_maintenance]
        if len(staying) >= 3:
            continue
        if no_action:
            hosts_no_action |= {h.moid for h in leaving}
            notes.append(
                f"cluster {cluster.name}: vSAN data is not moved off {len(leaving)} host(s) (--vsan-no-action); "
                "objects with a copy only there are unavailable until they are back"
            )
        else:
            refusals.append(
                f"cluster {cluster.name} is a vSAN cluster and only {len(staying)} of its hosts would stay up; vSAN needs 3 to keep "
                "its data accessible: take the whole cluster down (all its groups), or pass --vsan-no-action to enter maintenance "
                "mode without moving data, at your own risk"
            )
    return refusals, hosts_no_action


def privileges_needed(steps: Sequence[Step]) -> dict[str, dict[str, set[str]]]:
    """entity ("vcenter" or a cluster moid) -> privilege -> the steps' targets that need it."""
    out: dict[str, dict[str, set[str]]] = {}
    for s in steps:
        if (needs := REGISTRY[s.action].privileges) is not None:
            on, privs = needs
            entity = "vcenter" if on == "vcenter" else s.moid or ""
            for p in privs:
                out.setdefault(entity, {}).setdefault(p, set()).add(f"{s.action} {s.target}")
    return out


# -- up --------------------------------------------------------------------------------
def _by_cluster(targets: Mapping[str, HostInfo | None]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for server, host in targets.items():
        if host is not None and host.cluster_moid:
            out.setdefault(host.cluster_moid, []).append(server)
    return out


def up_gates(
    snap: Snapshot, facts: Facts, targets: Mapping[str, HostInfo | None], connected: Mapping[str, tuple[str, ...]]
) -> tuple[list[Step], dict[str, tuple[str, ...]]]:
    """A whole vSAN cluster comes back together: its power-on action (7.0 U3+) once all its hosts are
    connected; each host leaves maintenance mode after that (or, without the action, once all are
    connected). Returns those steps and what each server's exit from maintenance waits for.

    ``connected``: server -> the steps after which its host is connected."""
    steps: list[Step] = []
    exit_after: dict[str, tuple[str, ...]] = {}
    whole_clusters = whole(snap, targets)
    for moid, servers in _by_cluster(targets).items():
        cluster = snap.cluster(moid)
        if cluster is None or not cluster.vsan or moid not in whole_clusters:
            continue
        gate = tuple(i for s in servers for i in connected.get(s, ()))
        if vsan_action(snap, cluster) and (cluster.vsan_power == POWERED_OFF or "vsan-power" in facts.changed.get(moid, ())):
            power = step(Action.VSAN_POWER_ON, cluster, gate, phase="vsan")
            steps.append(power)
            gate = (power.id,)
        for s in servers:
            exit_after[s] = gate
    return steps, exit_after


def restores(
    snap: Snapshot, facts: Facts, targets: Mapping[str, HostInfo | None], back: Mapping[str, tuple[str, ...]], barrier: bool = False
) -> tuple[list[Step], dict[str, tuple[str, ...]]]:
    """Every setting a down changed on a cluster of the targets, restored once its target hosts are
    back (``back``: server -> the steps after which its host is out of maintenance mode) or failed to
    come back (a host that never reconnects does not keep the others' cluster as it was). Returns the
    steps and what each server's VMs wait to settle besides their host (a vSAN cluster's: its restores)."""
    steps: list[Step] = []
    vms_after: dict[str, tuple[str, ...]] = {}
    for moid, servers in _by_cluster(targets).items():
        cluster = snap.cluster(moid)
        changed = facts.changed.get(moid, frozenset())
        if cluster is None or not changed:
            continue
        after = [i for s in servers for i in back.get(s, ())]
        mine = [step(SETTINGS_RESTORED[name], cluster, (), "restore", after) for name in sorted(changed) if name in SETTINGS_RESTORED]
        steps += mine
        if cluster.vsan or barrier:  # a vSAN cluster comes back as one unit: its VMs after HA and vCLS are back
            for s in servers:
                vms_after[s] = tuple(r.id for r in mine)
    return steps, vms_after
