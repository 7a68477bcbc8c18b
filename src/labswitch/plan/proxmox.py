"""The plan of a Proxmox VE lab (PURE): the same graph of steps as vSphere's, in Proxmox's terms, after Proxmox's own
whole-cluster procedure (ha-manager.adoc; pveceph.adoc "Shutdown {pve} + Ceph HCI Cluster"; pve-manager Nodes.pm's
startall/stopall order).

down: HA out of the way before the first guest stops (disarmed with resource mode ignore on PVE 9.2+, else each
      resource set to "ignored"; journaled); the guests group by startup order (plan.order: no order first, the
      highest order next ...; policy.stop_last's after every other), across the nodes of the run; on Ceph, once every
      guest of the cluster is off, Ceph verified healthy, then its flags set (journaled); then the nodes, each once
      its own guests are off (on Ceph: once the flags are set, the nodes without a monitor first), confirmed off by
      their BMCs.
up:   per node: the BMC powers it on (a Ceph cluster's monitor nodes first), then until it is back in the cluster
      with its API answering; once every node of a Ceph cluster is back, its monitors in quorum with no warning but
      the flags', the flags labswitch set are cleared (those set before stay), and its placement groups waited for,
      active, before any guest starts; HA given back (armed, or the resources' states) and HA's own start of its
      guests waited for (labswitch never starts an HA resource's guest); then the other guests by startup order.

Refused, with nothing changed: a down of the node that runs labswitch, of an always_on group, of nodes whose
going would leave the nodes that stay up without quorum, or of nodes that are on while no node's API answers
(neither their guests nor Ceph could be taken care of)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase

from labswitch.bmc import Power
from labswitch.config import Config, Server, Wave
from labswitch.plan.model import VCENTER, Action, Facts, Intent, Plan, Step, bmc
from labswitch.plan.off import confirm_off, off_fallbacks
from labswitch.plan.order import in_groups
from labswitch.plan.safety import protected
from labswitch.plan.waves import _wave_steps, has_tag, wave_of
from labswitch.snapshot import ClusterInfo, HostInfo, Snapshot, VMInfo

API = "proxmox"  # the endpoint of every step through the cluster's API
PHASE = "cluster"
NO_ORDER = 1 << 63  # PVE's order for a guest without one (LONG_MAX): the last to start, the first to stop
CEPH_DOWN_FLAGS = ("noout", "norebalance", "nobackfill", "norecover")  # what a down sets, as Ceph's shutdown procedure says


def make_plan(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    intent: Intent,
    groups: Sequence[str],
    servers: Sequence[Server],
    refusals: list[str],
    notes: list[str],
    tag: str | None = None,
) -> Plan:
    """``servers``: the groups' servers whose BMCs answer (or all, refused elsewhere); ``refusals`` and ``notes``: what
    the caller found already, added to. ``tag``: up starts the guests with it instead of those that start at boot."""
    hosts = {s.name: snap.host_by_name(s.esxi) for s in servers}
    unknown = [s for s in servers if hosts[s.name] is None] if snap.hosts else []  # the cluster answered: each names a node of it
    known = ", ".join(sorted(h.name for h in snap.hosts))
    refusals += [f"server {s.name}: no node {s.esxi!r} in the cluster (nodes: {known}); check servers.node" for s in unknown]
    waves: tuple[Wave, ...] = tuple(config.startup.waves)
    if intent is Intent.DOWN and not unknown:  # with a node unknown, what stays up (quorum) is not known either
        refusals += _safety(snap, config, facts, servers, hosts)
        steps = _down(snap, config, facts, servers, hosts, notes)
    else:
        refusals += _wakers(snap, facts, servers)
        steps, waves = _up(snap, config, facts, servers, hosts, waves, tag)
    steps = [replace(s, endpoint=API) if s.endpoint == VCENTER else s for s in steps]  # every call goes to the cluster's API
    return Plan(intent, tuple(groups), tuple(s.name for s in servers), tuple(steps), tuple(refusals), tuple(notes), waves)


# -- safety ------------------------------------------------------------------------------------------------
def _safety(snap: Snapshot, config: Config, facts: Facts, servers: Sequence[Server], hosts: Mapping[str, HostInfo | None]) -> list[str]:
    refusals = []
    me = {a.lower() for a in facts.self_addresses}
    readable = any(h.connection_state == "connected" for h in snap.hosts)
    for server in servers:
        host = hosts[server.name]
        on = facts.bmc_power.get(server.name) is not Power.OFF
        if host is not None and (host.name.lower() in me or (host.address or "").lower() in me):
            refusals.append(f"node {host.name} runs labswitch itself; run labswitch elsewhere (a node that stays on, or another machine)")
        if on and not readable:
            refusals.append(
                f"server {server.name} is on but no node's API answers: its guests could not be stopped nor Ceph's flags set; "
                "check the cluster ([proxmox] url, the nodes' proxmox_url), or shut it down by hand"
            )
        if host is not None:
            for vm in snap.workload_on(host.moid):
                if vm.power_state == "poweredOn":
                    refusals += protected(config, vm, f"guest {vm.name} on {server.name}")
    return refusals + _quorum(snap, hosts)


def _quorum(snap: Snapshot, hosts: Mapping[str, HostInfo | None]) -> list[str]:
    """The nodes that stay up keep quorum (more than half of the votes), or every node goes down."""
    out = []
    leaving = {h.moid for h in hosts.values() if h is not None}
    for cluster in snap.clusters:
        members = snap.hosts_in(cluster.moid)
        staying = [h.name for h in members if h.moid not in leaving and h.connection_state == "connected"]
        if staying and cluster.votes and 2 * len(staying) <= cluster.votes:
            out.append(
                f"cluster {cluster.name}: {', '.join(staying)} would stay up with {len(staying)} of {cluster.votes} votes, without "
                "quorum (they could not start, stop or change anything); take the whole cluster down, or fewer nodes"
            )
    return out


def _wakers(snap: Snapshot, facts: Facts, servers: Sequence[Server]) -> list[str]:
    """A node woken by a peer (bmc.via = "proxmox") needs a node up, or one this up powers on by its BMC."""
    off = [s for s in servers if facts.bmc_power.get(s.name) is Power.OFF]
    by_peer = [s.name for s in off if s.woken_by_peer]
    if not by_peer or any(h.connection_state == "connected" for h in snap.hosts) or len(by_peer) < len(off):
        return []
    return [
        f'{", ".join(by_peer)}: woken by a peer node (bmc.via = "proxmox"), but no node of the cluster is up or powered on '
        "by its BMC in this up: give one node a BMC or Wake-on-LAN of its own, or power one on first"
    ]


# -- down --------------------------------------------------------------------------------------------------
def _down(
    snap: Snapshot, config: Config, facts: Facts, servers: Sequence[Server], hosts: Mapping[str, HostInfo | None], notes: list[str]
) -> list[Step]:
    live = {s.name: hosts[s.name] for s in servers if facts.bmc_power.get(s.name) is not Power.OFF}
    clusters = [c for c in snap.clusters if any(h is not None and h.cluster_moid == c.moid for h in live.values())]
    ha = {c.moid: _ha_down(c) for c in clusters}
    guests: list[tuple[VMInfo, str, bool]] = []  # (guest, server, stops last)
    for name, host in live.items():
        if host is None or host.connection_state != "connected":
            continue
        for vm in snap.workload_on(host.moid):
            if vm.power_state == "poweredOn":
                guests.append((vm, name, _stops_last(vm, config)))
    gates: dict[str | None, tuple[str, ...]] = {moid: tuple(s.id for s in steps) for moid, steps in ha.items()}  # before its guests
    guest_steps = _guest_stops(config, guests, hosts, gates)
    stopped_by_server: dict[str, list[str]] = {}
    for step in guest_steps:
        if step.action == Action.SHUTDOWN_GUEST:
            stopped_by_server.setdefault(step.server or "", []).append(step.id)
    ceph = {  # a Ceph cluster: every guest of it off, Ceph healthy, its flags set, before any of its nodes shuts down
        c.moid: _ceph_down(
            c, tuple(s.id for s in guest_steps if s.action == Action.SHUTDOWN_GUEST and _cluster_of(hosts, s.server) == c.moid)
        )
        for c in clusters
        if c.ceph
    }
    shutdown: list[Step] = []
    for name, host in live.items():
        if host is None or host.connection_state != "connected":
            if host is not None:  # a node the cluster sees offline while its BMC says on: its BMC shuts it down
                by_bmc = Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, name, host.moid, name, endpoint=bmc(name))
                shutdown += [by_bmc, *confirm_off(config, by_bmc)]
            continue
        stops = tuple(stopped_by_server.get(name, []))
        flagged = tuple(s.id for s in ceph.get(host.cluster_moid or "", [])[-1:])  # Ceph's flags set (or its health seen)
        after = tuple(dict.fromkeys(stops + flagged + gates.get(host.cluster_moid, ())))
        off = Step("host-shutdown", Action.SHUTDOWN_HOST, name, host.moid, name, after=after, endpoint=API)
        shutdown += [off, *off_fallbacks(config, off)]
    shutdown = _monitors_last(shutdown, snap, facts, hosts)
    if ceph:
        notes.append("Ceph (pveceph.adoc): its guests off, Ceph healthy, its flags set; then nodes without a monitor, monitors last")
    return [s for c in clusters for s in ha[c.moid]] + guest_steps + [s for steps in ceph.values() for s in steps] + shutdown


def _ha_down(cluster: ClusterInfo) -> list[Step]:
    """HA out of the way before the first guest stops (journaled by its step): disarmed cluster-wide with resource mode
    ignore where the cluster can (pve-ha-manager 5.1.3+, PVE 9.2: the way to keep HA from fencing or recovering while a
    whole cluster goes down), else each resource set to ignored."""
    if not any(state != "ignored" for _, state in cluster.ha_resources):
        return []
    if cluster.ha_fencing is None:
        return [Step(PHASE, Action.PVE_HA_IGNORE, cluster.name, cluster.moid, None, endpoint=API)]
    if cluster.ha_fencing != "disarmed":  # disarmed by an admin already: left as it is
        return [Step(PHASE, Action.PVE_HA_DISARM, cluster.name, cluster.moid, None, endpoint=API)]
    return []


def _ceph_down(cluster: ClusterInfo, guests: tuple[str, ...]) -> list[Step]:
    """pveceph.adoc "Shutdown {pve} + Ceph HCI Cluster": its clients (the guests) stopped, Ceph verified healthy, then
    the flags set (the flags there before, journaled) before the first node goes."""
    healthy = Step(PHASE, Action.CEPH_READY, cluster.name, cluster.moid, None, after=guests, endpoint=API)
    if set(CEPH_DOWN_FLAGS) <= set(cluster.ceph_flags):
        return [healthy]
    return [healthy, Step(PHASE, Action.CEPH_FLAGS_SET, cluster.name, cluster.moid, None, after=(healthy.id,), endpoint=API)]


def _monitors_last(shutdown: list[Step], snap: Snapshot, facts: Facts, hosts: Mapping[str, HostInfo | None]) -> list[Step]:
    """A Ceph cluster's nodes with a monitor shut down once every node of it without one is off (by its BMC)."""
    monitors = {n for c in snap.clusters for n in c.ceph_monitors} or facts.ceph_monitors
    ceph = {c.moid for c in snap.clusters if c.ceph}
    others: dict[str | None, tuple[str, ...]] = {}
    for step in shutdown:
        host = hosts.get(step.server or "")
        if step.action == Action.CONFIRM_OFF and host is not None and host.cluster_moid in ceph and host.name not in monitors:
            others[host.cluster_moid] = (*others.get(host.cluster_moid, ()), step.id)
    if not monitors or not others:
        return shutdown
    out = []
    for step in shutdown:
        host = hosts.get(step.server or "")
        if step.action == Action.SHUTDOWN_HOST and host is not None and host.name in monitors and others.get(host.cluster_moid):
            step = replace(step, after=tuple(dict.fromkeys(step.after + others[host.cluster_moid])))
        out.append(step)
    return out


def _guest_stops(
    config: Config,
    guests: list[tuple[VMInfo, str, bool]],
    hosts: Mapping[str, HostInfo | None],
    gates: Mapping[str | None, tuple[str, ...]],
) -> list[Step]:
    """The guests' shutdowns, after their cluster's steps, group by startup order as PVE's stopall takes them (the
    highest order first, guests without an order before every ordered one; plan.order), across every node of the run;
    policy.stop_last's guests after every other one, in their own order. With policy.hard_power_off, a stop when a
    guest does not shut down; a guest's own ``down=`` bounds its shutdown as in PVE."""
    groups: dict[tuple[bool, int], list[Step]] = {}
    for vm, server, last in sorted(guests, key=lambda g: g[0].name):
        gate = gates.get(_cluster_of(hosts, server), ())
        step = Step("guest-shutdown", Action.SHUTDOWN_GUEST, vm.name, vm.moid, server, after=gate, endpoint=API)
        members = groups.setdefault((last, -shutdown_rank(vm)), [])
        members.append(step)
        if config.policy.hard_power_off:
            members.append(Step("guest-shutdown", Action.POWER_OFF_VM, vm.name, vm.moid, server, endpoint=API, fallback_of=step.id))
    first = tuple(s.id for (last, _), members in groups.items() if not last for s in members if not s.fallback_of)
    ordered = []
    for key in sorted(groups):
        last, rank = key
        members = groups[key] if not last else [s if s.fallback_of else replace(s, after=s.after + first) for s in groups[key]]
        ordered.append((_group_name(-rank, last), members))
    return in_groups(ordered)


def shutdown_rank(vm: VMInfo) -> int:
    """Its startup order (PVE's LONG_MAX when it has none: stopped first, started last)."""
    order = vm.startup.order if vm.startup is not None else None
    return order if order is not None else NO_ORDER


def _group_name(rank: int, last: bool) -> str:
    name = "no order" if rank == NO_ORDER else f"order {rank}"
    return f"{name} (policy.stop_last)" if last else name


def _stops_last(vm: VMInfo, config: Config) -> bool:
    """policy.stop_last names it: a guest the others need, stopped after them and started before them."""
    return any(fnmatchcase(vm.name.lower(), g.lower()) for g in config.policy.stop_last)


def _cluster_of(hosts: Mapping[str, HostInfo | None], server: str | None) -> str | None:
    host = hosts.get(server or "")
    return host.cluster_moid if host is not None else None


# -- up ----------------------------------------------------------------------------------------------------
def _up(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    servers: Sequence[Server],
    hosts: Mapping[str, HostInfo | None],
    waves: tuple[Wave, ...],
    tag: str | None,
) -> tuple[list[Step], tuple[Wave, ...]]:
    back: dict[str, tuple[str, ...]] = {}  # server -> the steps after which its node is back in the cluster
    nodes: list[Step] = []
    for server in servers:
        host = hosts[server.name]
        last: tuple[str, ...] = ()
        moid = host.moid if host else f"node/{server.node or server.esxi}"
        if facts.bmc_power.get(server.name) is Power.OFF:
            on = Step("power-on", Action.BMC_POWER_ON, server.name, moid, server.name, endpoint=bmc(server.name))
            nodes.append(on)
            last = (on.id,)
        if host is None or host.connection_state != "connected" or last:
            wait = Step("connect", Action.WAIT_CONNECTED, server.name, moid, server.name, after=last)
            nodes.append(wait)
            last = (wait.id,)
        back[server.name] = last
    if not any(h.connection_state == "connected" for h in snap.hosts):
        # a node woken by a peer waits for the nodes powered on by their BMCs to be back (no wait when one is up already)
        peers = {s.name for s in servers if s.woken_by_peer}
        by_bmc = {s.server for s in nodes if s.action == Action.BMC_POWER_ON and s.server not in peers}
        waits = tuple(s.id for s in nodes if s.action == Action.WAIT_CONNECTED and s.server in by_bmc)
        nodes = [replace(s, settled=waits) if s.action == Action.BMC_POWER_ON and s.server in peers else s for s in nodes]
    nodes = _monitors_first(nodes, snap, facts, servers)
    cluster_steps, ready, restore = _cluster_up(snap, facts, hosts, back)
    restores: dict[str, list[Step]] = {}  # cluster moid -> HA given back (armed, its states) before the other guests start
    for moid, (cluster, actions) in restore.items():
        gate = tuple(
            dict.fromkeys([i for s in servers if _cluster_of(hosts, s.name) == moid for i in back[s.name]] + list(ready.get(moid, ())))
        )
        restores[moid] = [Step("restore", action, cluster.name, moid, None, settled=gate) for action in actions]
    managed = _ha_managed(snap, facts)  # HA starts those, by their states: labswitch never does
    chosen = [(vm, server) for server in servers for vm in _to_start(snap, facts, hosts[server.name], tag) if _sid(vm) not in managed]
    if not config.startup.waves:
        waves = order_waves([vm for vm, _ in chosen if not _stops_last(vm, config)])
    start = [(-1 if _stops_last(vm, config) else _place(vm, waves, config), vm, server) for vm, server in chosen]
    if any(place < 0 for place, _, _ in start):  # policy.stop_last's guests start first, in a wave of their own
        waves = (Wave(name="first (policy.stop_last)", wait="none"), *waves)
        start = [(place + 1, vm, server) for place, vm, server in start]
    guest_ready = {s.name: back[s.name] + ready.get(_cluster_of(hosts, s.name), ()) for s in servers}
    after_ha = {s.name: tuple(r.id for r in restores.get(_cluster_of(hosts, s.name) or "", [])) for s in servers}
    guests = _wave_steps(start, guest_ready, waves, after_ha)
    return nodes + cluster_steps + [r for steps in restores.values() for r in steps] + guests, waves


def _monitors_first(nodes: list[Step], snap: Snapshot, facts: Facts, servers: Sequence[Server]) -> list[Step]:
    """pveceph.adoc: "When powering on the cluster, start the nodes with monitors (MONs) first": the other nodes'
    power-on is sent once the monitor nodes' is (their boots overlap; the monitors are up first)."""
    monitors = {n for c in snap.clusters for n in c.ceph_monitors} or facts.ceph_monitors
    node = {s.name: s.node or s.esxi for s in servers}
    first = tuple(s.id for s in nodes if s.action == Action.BMC_POWER_ON and node.get(s.server or "") in monitors)
    if not first:
        return nodes
    return [
        replace(s, settled=tuple(dict.fromkeys(s.settled + first)))
        if s.action == Action.BMC_POWER_ON and node.get(s.server or "") not in monitors
        else s
        for s in nodes
    ]


def _sid(vm: VMInfo) -> str:
    """A guest's HA resource id: vm:100 for a QEMU VM, ct:101 for a container."""
    kind, _, vmid = vm.moid.partition("/")
    return f"{'ct' if kind == 'lxc' else 'vm'}:{vmid}"


def _ha_managed(snap: Snapshot, facts: Facts) -> set[str]:
    """The HA resources whose guests HA starts and stops: every one, but those an admin set ignored (a down's own
    ignored states are given back before any guest starts)."""
    return {
        sid
        for c in snap.clusters
        for sid, state in c.ha_resources
        if state != "ignored" or "pve-ha" in facts.changed.get(c.moid, frozenset())
    }


def _to_start(snap: Snapshot, facts: Facts, host: HostInfo | None, tag: str | None) -> list[VMInfo]:
    """The guests of a node an up starts: --restore's, --tag's, or those Proxmox itself starts at boot (onboot)."""
    if host is None:
        return []
    out = []
    for vm in snap.workload_on(host.moid):
        if vm.power_state == "poweredOn":
            continue
        if facts.restore is not None:
            chosen = vm.moid in facts.restore
        elif tag is not None:
            chosen = has_tag(vm, tag)
        else:
            chosen = vm.autostart is not None
        if chosen:
            out.append(vm)
    return out


def order_waves(guests: Sequence[VMInfo]) -> tuple[Wave, ...]:
    """The start-up waves of these guests, as PVE's startall takes them (pve-manager Nodes.pm): one per startup order,
    increasing, each after the previous one's guests run and the longest ``up=`` pause among them; guests without an
    order start last ("remaining"), whatever selected them (onboot, --tag, --restore)."""
    orders: dict[int, float] = {}
    for vm in guests:
        rank = shutdown_rank(vm)
        if rank != NO_ORDER:
            orders[rank] = max(orders.get(rank, 0.0), (vm.startup.up if vm.startup else None) or 0.0)
    return tuple(Wave(name=f"order {o}", wait="none", delay=up) for o, up in sorted(orders.items()))


def _place(vm: VMInfo, waves: Sequence[Wave], config: Config) -> int:
    """A guest's wave: the configured waves' first that names it, else its startup order's, else the last."""
    if config.startup.waves:
        return wave_of(vm, waves)
    name = f"order {shutdown_rank(vm)}"
    return next((i for i, w in enumerate(waves) if w.name == name), len(waves))


def _cluster_up(
    snap: Snapshot, facts: Facts, hosts: Mapping[str, HostInfo | None], back: Mapping[str, tuple[str, ...]]
) -> tuple[list[Step], dict[str | None, tuple[str, ...]], dict[str, tuple[ClusterInfo, tuple[Action, ...]]]]:
    """Per cluster: Ceph's flags cleared once all its target nodes are back (then its placement groups waited for);
    what its guests wait for; the clusters whose HA a down changed, with the steps that give it back (HA armed again,
    the resources' states back) before the other guests start."""
    steps: list[Step] = []
    ready: dict[str | None, tuple[str, ...]] = {}
    later: dict[str, tuple[ClusterInfo, tuple[Action, ...]]] = {}
    for cluster in snap.clusters:
        servers = [name for name, h in hosts.items() if h is not None and h.cluster_moid == cluster.moid]
        if not servers:
            continue
        gate = tuple(i for name in servers for i in back.get(name, ()))
        changed = facts.changed.get(cluster.moid, frozenset())
        if cluster.ceph:
            if "ceph-flags" in changed:  # pveceph.adoc: every Ceph service up, only the flags' warning left, then unset
                services = Step("ceph", Action.CEPH_SERVICES, cluster.name, cluster.moid, None, after=gate, endpoint=API)
                clear = Step("ceph", Action.CEPH_FLAGS_CLEAR, cluster.name, cluster.moid, None, after=(services.id,), endpoint=API)
                steps += [services, clear]
                gate = (clear.id,)
            healthy = Step("ceph", Action.CEPH_READY, cluster.name, cluster.moid, None, after=gate, endpoint=API)
            steps.append(healthy)
            ready[cluster.moid] = (healthy.id,)
        actions = tuple(a for setting, a in (("pve-ha-armed", Action.PVE_HA_ARM), ("pve-ha", Action.PVE_HA_RESTORE)) if setting in changed)
        if actions:
            later[cluster.moid] = (cluster, actions)
    return steps, ready, later
