"""The Proxmox VE planner's ordering and safety rules, on hand-built snapshots (pure, no I/O)."""

from __future__ import annotations

from typing import Any

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.plan import Action, Facts, Intent, Plan, make_proxmox_plan
from labswitch.snapshot import AutoStart, ClusterInfo, HostInfo, Snapshot, VMInfo

CLUSTER = "cluster/lab"


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


def guest(vmid: int, name: str, on: str, order: int | None = None, running: bool = True, kind: str = "qemu") -> VMInfo:
    start = AutoStart(order, 0.0, False) if order is not None else None
    power = "poweredOn" if running else "poweredOff"
    return VMInfo(f"{kind}/{vmid}", name, f"node/{on}", power, True, autostart=start)


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


def test_ha_is_ignored_and_ceph_flagged_before_any_guest_stops() -> None:
    plan = down()
    assert not plan.refusals
    gates = {step(plan, Action.PVE_HA_IGNORE, "lab").id, step(plan, Action.CEPH_FLAGS_SET, "lab").id}
    for s in plan.steps:
        if s.action == Action.SHUTDOWN_GUEST:
            assert gates <= set(s.after), s


def test_on_ceph_no_node_shuts_down_before_every_guest_of_the_cluster_is_off() -> None:
    plan = down()
    every_guest = {s.id for s in plan.steps if s.action == Action.SHUTDOWN_GUEST}
    assert every_guest <= set(step(plan, Action.SHUTDOWN_HOST, "pve3").after), "pve3's own guest is not enough"
    without = down(snapshot(clusters=(cluster(ceph=False),)))
    own = {s.id for s in without.steps if s.action == Action.SHUTDOWN_GUEST and s.server == "pve3"}
    assert set(step(without, Action.SHUTDOWN_HOST, "pve3").after) - own <= {step(without, Action.PVE_HA_IGNORE, "lab").id}


def test_guests_stop_in_reverse_start_order_and_stop_last_after_everyone() -> None:
    plan = down(cfg=config(stop_last=["pbs*"]))
    order = [s.target for s in plan.steps if s.action == Action.SHUTDOWN_GUEST]
    assert order.index("scratch") < order.index("web") < order.index("db"), order
    pbs = step(plan, Action.SHUTDOWN_GUEST, "pbs")
    others = {s.id for s in plan.steps if s.action == Action.SHUTDOWN_GUEST and s.target != "pbs"}
    assert others <= set(pbs.after), "the backup server goes last, after every other guest"


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
    clear = step(plan, Action.CEPH_FLAGS_CLEAR, "lab")
    assert set(clear.after) == connected, "the flags wait for every node"
    ready = step(plan, Action.CEPH_READY, "lab")
    ha = step(plan, Action.PVE_HA_RESTORE, "lab")
    assert ready.after == (clear.id,) and ready.id in ha.settled
    started = [s for s in plan.steps if s.action == Action.POWER_ON_VM]
    assert {s.target for s in started} == {"web", "pbs", "app"}, "onboot guests; db is HA's; scratch does not start at boot"
    assert all(ready.id in s.after and ha.id in s.settled for s in started)
    waves = {s.target: s.wave for s in started}
    assert waves["pbs"] < waves["web"] == waves["app"], waves
