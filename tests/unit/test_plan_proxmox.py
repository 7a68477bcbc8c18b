"""The Proxmox VE planner's ordering and safety rules, on hand-built snapshots (pure, no I/O)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.plan import Action, Facts, Intent, Plan, make_proxmox_plan
from labswitch.snapshot import AutoStart, ClusterInfo, HostInfo, Snapshot, Startup, VMInfo
from tests.unit.graph import waits_for

CLUSTER = "cluster/lab"
NODES = ("pve1", "pve2", "pve3")


def config(**policy: Any) -> Config:
    return Config.model_validate(
        {
            "proxmox": {"url": "pve1.lab", "user": "root@pam", "password": "p"},
            "groups": {"mgmt": {"always_on": True}, "payload": {}},
            "servers": [
                {"name": n, "node": n, "group": g, "bmc": {"driver": "redfish", "address": f"{n}-oob", "user": "root", "password": "p"}}
                for n, g in (("pve1", "payload"), ("pve2", "payload"), ("pve3", "payload"))
            ],
            "policy": policy,
        }
    )


def node(name: str, online: bool = True, address: str | None = None) -> HostInfo:
    state = "connected" if online else "notResponding"
    return HostInfo(f"node/{name}", name, "lab", state, False, "poweredOn", cluster_moid=CLUSTER, address=address or f"10.0.0.{name[-1]}")


def guest(
    vmid: int, name: str, on: str, order: int | None = None, running: bool = True, kind: str = "qemu", onboot: bool | None = None
) -> VMInfo:
    """A guest with ``startup: order=N`` (None: no order); it starts at boot when it has an order, unless ``onboot``
    says otherwise."""
    boot = order is not None if onboot is None else onboot
    start = AutoStart(order if order is not None else 1 << 16, 0.0, False) if boot else None
    power = "poweredOn" if running else "poweredOff"
    return VMInfo(f"{kind}/{vmid}", name, f"node/{on}", power, True, autostart=start, startup=Startup(order))


def cluster(ceph: bool = True, ha: tuple[tuple[str, str], ...] = (("vm:100", "started"),)) -> ClusterInfo:
    return ClusterInfo(CLUSTER, "lab", ha=bool(ha), ceph=ceph, ha_resources=ha, votes=3)


GUESTS = (
    guest(100, "db", "pve1", 1),
    guest(101, "web", "pve1", 2, kind="lxc"),
    guest(102, "pbs", "pve2", 1),
    guest(103, "app", "pve2", 2),
    guest(104, "scratch", "pve3", None),
)


def snapshot(**kw: Any) -> Snapshot:
    base: dict[str, Any] = {
        "hosts": (node("pve1"), node("pve2"), node("pve3")),
        "vms": GUESTS,
        "clusters": (cluster(),),
        "platform": "proxmox",
    }
    return Snapshot(**{**base, **kw})


def facts(off: tuple[str, ...] = (), **kw: Any) -> Facts:
    power = {n: Power.OFF if n in off else Power.ON for n in ("pve1", "pve2", "pve3")}
    base: dict[str, Any] = {"vcenter_addresses": frozenset(), "self_addresses": frozenset({"workstation"}), "bmc_power": power}
    return Facts(**{**base, **kw})


def down(snap: Snapshot | None = None, cfg: Config | None = None, f: Facts | None = None, groups: tuple[str, ...] = ("payload",)) -> Plan:
    return make_proxmox_plan(snap or snapshot(), cfg or config(), f or facts(), Intent.DOWN, groups)


def step(plan: Plan, action: Action, target: str) -> Any:
    return next(s for s in plan.steps if s.action == action and s.target == target)


def test_ha_is_ignored_before_any_guest_stops_and_ceph_flagged_once_every_guest_is_off_and_ceph_healthy() -> None:
    # pveceph.adoc "Shutdown {pve} + Ceph HCI Cluster": clients off, `ceph -s` healthy, then noout, then the nodes
    plan = down()
    assert not plan.refusals
    ha = step(plan, Action.PVE_HA_IGNORE, "lab").id
    stops = {s.id for s in plan.steps if s.action == Action.SHUTDOWN_GUEST}
    assert all(ha in s.after for s in plan.steps if s.action == Action.SHUTDOWN_GUEST)
    healthy, flags = step(plan, Action.CEPH_READY, "lab"), step(plan, Action.CEPH_FLAGS_SET, "lab")
    assert stops <= set(healthy.after) and flags.after == (healthy.id,)
    assert all(waits_for(plan, s.id, flags.id) for s in plan.steps if s.action == Action.SHUTDOWN_HOST)


def test_on_ceph_no_node_shuts_down_before_every_guest_of_the_cluster_is_off() -> None:
    plan = down()
    every_guest = {s.id for s in plan.steps if s.action == Action.SHUTDOWN_GUEST}
    assert all(waits_for(plan, step(plan, Action.SHUTDOWN_HOST, "pve3").id, g) for g in every_guest), "pve3's own guest is not enough"
    without = down(snapshot(clusters=(cluster(ceph=False),)))
    own = {s.id for s in without.steps if s.action == Action.SHUTDOWN_GUEST and s.server == "pve3"}
    assert set(step(without, Action.SHUTDOWN_HOST, "pve3").after) - own <= {step(without, Action.PVE_HA_IGNORE, "lab").id}


def test_ceph_nodes_without_a_monitor_go_down_first_and_monitor_nodes_come_up_first() -> None:
    mons = replace(cluster(), ceph_monitors=("pve1", "pve2"))
    plan = down(snapshot(clusters=(mons,)))
    pve3_off = step(plan, Action.CONFIRM_OFF, "pve3").id
    assert all(waits_for(plan, step(plan, Action.SHUTDOWN_HOST, n).id, pve3_off) for n in ("pve1", "pve2")), "monitors last"
    assert not waits_for(plan, step(plan, Action.SHUTDOWN_HOST, "pve3").id, step(plan, Action.CONFIRM_OFF, "pve1").id)
    # up, while the cluster answers nothing: the monitors known from the journal (Facts.ceph_monitors)
    off = snapshot(hosts=(), vms=(), clusters=())
    up = make_proxmox_plan(off, config(), facts(off=NODES, ceph_monitors=frozenset({"pve1", "pve2"})), Intent.UP, ("payload",))
    on = {s.server: s for s in up.steps if s.action == Action.BMC_POWER_ON}
    assert on["pve1"].id in on["pve3"].settled and on["pve2"].id in on["pve3"].settled and not on["pve1"].settled


def test_guests_stop_group_by_group_in_reverse_start_order_across_nodes_and_stop_last_after_everyone() -> None:
    # PVE's stopall (pve-manager Nodes.pm): the highest order first, no order before every ordered guest, a group asked
    # only once every shutdown of the group before it ended. labswitch: the same across the nodes of the run.
    guests = (*GUESTS, guest(105, "worker", "pve3", 3, onboot=False))
    plan = down(snapshot(vms=guests), cfg=config(stop_last=["pbs*"]))
    stop = {s.target: s.id for s in plan.steps if s.action == Action.SHUTDOWN_GUEST}
    chain = ["scratch", "worker", "app", "db"]  # no order (pve3), order 3 (pve3), order 2 (pve2), order 1 (pve1)
    for earlier, later in itertools.pairwise(chain):
        assert waits_for(plan, stop[later], stop[earlier]), f"{later} is asked only after {earlier} ended"
        assert not waits_for(plan, stop[earlier], stop[later])
    assert waits_for(plan, stop["app"], stop["scratch"]) and waits_for(plan, stop["web"], stop["worker"])
    assert not waits_for(plan, stop["web"], stop["app"]) and not waits_for(plan, stop["app"], stop["web"]), "one order: together"
    pbs = step(plan, Action.SHUTDOWN_GUEST, "pbs")
    others = {i for name, i in stop.items() if name != "pbs"}
    assert others <= set(pbs.after), "the backup server goes last, after every other guest (hard: left on if one is left on)"
    barriers = [s for s in plan.steps if s.action == Action.SHUTDOWN_ORDER_ENDED]
    assert len(barriers) == 4 and all(not b.after for b in barriers), "barriers settle: a guest left on does not stop the order"


def test_a_guest_left_on_does_not_hold_the_next_order_back_but_its_node_stays() -> None:
    plan = down(cfg=config(hard_power_off=True))
    stop = {s.target: s for s in plan.steps if s.action == Action.SHUTDOWN_GUEST}
    fallback = {s.fallback_of for s in plan.steps if s.action == Action.POWER_OFF_VM}
    assert {s.id for s in stop.values()} == fallback
    assert waits_for(plan, stop["db"].id, stop["web"].id)
    assert all(not set(s.after) & {b.id for b in plan.steps if b.action == Action.SHUTDOWN_ORDER_ENDED} for s in stop.values())


def test_nodes_that_stay_up_keep_quorum_or_the_down_is_refused() -> None:
    cfg = Config.model_validate(
        {**config().model_dump(mode="json", exclude_none=True), "groups": {"mgmt": {"always_on": True}, "payload": {}}}
    )
    servers = [s.model_copy(update={"group": "mgmt" if s.name == "pve1" else "payload"}) for s in cfg.servers]
    lonely = down(cfg=cfg.model_copy(update={"servers": servers}))
    assert any("pve1 would stay up with 1 of 3 votes, without quorum" in r for r in lonely.refusals), lonely.refusals
    two_stay = [s.model_copy(update={"group": "mgmt" if s.name != "pve3" else "payload"}) for s in cfg.servers]
    assert not down(cfg=cfg.model_copy(update={"servers": two_stay})).refusals, "2 of 3 stay: quorate"


def test_the_node_running_labswitch_and_an_unreadable_cluster_are_refused() -> None:
    mine = down(f=facts(self_addresses=frozenset({"10.0.0.2"})))
    assert any("node pve2 runs labswitch itself" in r for r in mine.refusals), mine.refusals
    silent = down(snapshot(hosts=(), vms=(), clusters=()))
    assert any("no node's API answers" in r for r in silent.refusals), silent.refusals
    off = down(snapshot(hosts=(), vms=(), clusters=()), f=facts(off=("pve1", "pve2", "pve3")))
    assert not off.refusals and not off.steps, "already off: nothing to do, nothing refused"


def test_up_clears_flags_once_every_node_is_back_waits_for_ceph_then_ha_then_waves() -> None:
    snap = snapshot(hosts=(node("pve1", online=False), node("pve2", online=False), node("pve3", online=False)))
    snap = Snapshot(
        snap.hosts,
        tuple(v.__class__(**{**v.__dict__, "power_state": "unknown"}) for v in snap.vms),
        clusters=snap.clusters,
        platform="proxmox",
    )
    changed = {CLUSTER: frozenset({"ceph-flags", "pve-ha"})}
    plan = make_proxmox_plan(snap, config(), facts(off=("pve1", "pve2", "pve3"), changed=changed), Intent.UP, ("payload",))
    connected = {s.id for s in plan.steps if s.action == Action.WAIT_CONNECTED}
    services, clear = step(plan, Action.CEPH_SERVICES, "lab"), step(plan, Action.CEPH_FLAGS_CLEAR, "lab")
    assert set(services.after) == connected and clear.after == (services.id,), "every node back, Ceph's services up, then the flags"
    ready = step(plan, Action.CEPH_READY, "lab")
    ha = step(plan, Action.PVE_HA_RESTORE, "lab")
    assert ready.after == (clear.id,) and ready.id in ha.settled
    started = [s for s in plan.steps if s.action == Action.POWER_ON_VM]
    assert {s.target for s in started} == {"web", "pbs", "app"}, "onboot guests; db is HA's; scratch does not start at boot"
    assert all(ready.id in s.after and ha.id in s.settled for s in started)
    waves = {s.target: s.wave for s in started}
    assert waves["pbs"] < waves["web"] == waves["app"], waves


def _stopped(*guests: VMInfo) -> tuple[VMInfo, ...]:
    return tuple(VMInfo(**{**g.__dict__, "power_state": "poweredOff"}) for g in guests)


def test_up_starts_every_selected_guest_by_its_startup_order_not_only_those_that_start_at_boot() -> None:
    # PVE's startall: order groups increasing, each after the previous group's starts; --restore and --tag likewise
    guests = _stopped(
        guest(100, "db", "pve1", 1, onboot=False),
        guest(101, "app", "pve2", 2, onboot=False),
        guest(102, "worker", "pve3", 3, onboot=False),
        guest(103, "scratch", "pve3", None),
    )
    snap = snapshot(vms=guests, clusters=(cluster(ha=()),))
    plan = make_proxmox_plan(snap, config(), facts(restore=frozenset(g.moid for g in guests)), Intent.UP, ("payload",))
    start = {s.target: s for s in plan.steps if s.action == Action.POWER_ON_VM}
    assert set(start) == {"db", "app", "worker", "scratch"}
    chain = ["db", "app", "worker", "scratch"]
    for earlier, later in itertools.pairwise(chain):
        assert waits_for(plan, start[later].id, start[earlier].id), f"{later} starts after {earlier}"
    assert [w.name for w in plan.waves] == ["order 1", "order 2", "order 3"]
    tagged = tuple(VMInfo(**{**g.__dict__, "tags": ("lab",)}) for g in guests)
    plan = make_proxmox_plan(snapshot(vms=tagged, clusters=(cluster(ha=()),)), config(), facts(), Intent.UP, ("payload",), tag="lab")
    start = {s.target: s for s in plan.steps if s.action == Action.POWER_ON_VM}
    assert waits_for(plan, start["worker"].id, start["app"].id) and waits_for(plan, start["app"].id, start["db"].id)


def test_up_never_starts_an_ha_resource_guest_itself_on_any_path() -> None:
    # HA's guests are HA's (qemu-server turns a start of one into `ha-manager set --state started`): not on --restore,
    # not with --tag, not when no down changed HA; only a resource an admin set ignored is an ordinary guest
    guests = _stopped(*GUESTS)
    restore = facts(restore=frozenset(g.moid for g in guests))
    for ha in ((("vm:100", "started"),), (("vm:100", "stopped"),)):
        plan = make_proxmox_plan(snapshot(vms=guests, clusters=(cluster(ha=ha),)), config(), restore, Intent.UP, ("payload",))
        assert "db" not in {s.target for s in plan.steps if s.action == Action.POWER_ON_VM}
    plan = make_proxmox_plan(
        snapshot(vms=guests, clusters=(cluster(ha=(("vm:100", "ignored"),)),)), config(), restore, Intent.UP, ("payload",)
    )
    assert "db" in {s.target for s in plan.steps if s.action == Action.POWER_ON_VM}, "ignored by the admin: not HA's"


def test_a_cluster_that_can_disarm_ha_is_disarmed_on_the_way_down_and_armed_on_the_way_up() -> None:
    # pve-ha-manager 5.1.3 (PVE 9.2): disarm-ha with resource mode ignore, the cluster-wide way; older: each resource ignored
    armed = replace(cluster(), ha_fencing="armed")
    plan = down(snapshot(clusters=(armed,)))
    disarm = step(plan, Action.PVE_HA_DISARM, "lab")
    assert not [s for s in plan.steps if s.action == Action.PVE_HA_IGNORE]
    assert all(disarm.id in s.after for s in plan.steps if s.action == Action.SHUTDOWN_GUEST)
    assert not [s for s in down(snapshot(clusters=(replace(cluster(), ha_fencing="disarmed"),))).steps if s.action.startswith("ha-")]
    changed = {CLUSTER: frozenset({"pve-ha-armed"})}
    guests = _stopped(*GUESTS)
    up = make_proxmox_plan(snapshot(vms=guests, clusters=(armed,)), config(), facts(changed=changed), Intent.UP, ("payload",))
    arm = step(up, Action.PVE_HA_ARM, "lab")
    started = [s for s in up.steps if s.action == Action.POWER_ON_VM]
    assert started and all(arm.id in s.settled for s in started), "HA's guests first: HA starts them once armed"
    assert "db" not in {s.target for s in started}, "db is an HA resource: HA starts it"
