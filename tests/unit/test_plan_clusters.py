"""The planner's cluster rules (plan/clusters.py) on hand-built snapshots: HA, vCLS, vSAN."""

from __future__ import annotations

from typing import Any

from labswitch.bmc import Power
from labswitch.plan import Intent, Plan
from labswitch.snapshot import ClusterInfo, Snapshot
from tests.unit.test_plan import VMS, config, facts, host, plan, vm

V8 = "8.0.2.0"


def lab(api: str = V8, *, ha: bool = True, vsan: bool = False, vsan_power: str | None = None, hosts: int = 2, **cluster: Any) -> Snapshot:
    """esx1 (and esx2) in cluster C1 (moid c1); mgmt01 standalone; a vCLS agent on esx1 from 7.0.1."""
    members = tuple(host(f"esx{i}", cluster_moid="c1") for i in range(1, hosts + 1))
    agents = (vm("vCLS-1", "esx1", system="vcls"),) if api >= "7.0.1" else ()
    c1 = ClusterInfo("c1", "C1", ha=ha, vsan=vsan, vsan_power=vsan_power, **cluster)
    return Snapshot((host("mgmt01", cluster=None), *members), VMS + agents, api_version=api, clusters=(c1,))


def step(p: Plan, action: str, target: str) -> Any:
    return next(s for s in p.steps if s.action == action and s.target == target)


def actions(p: Plan) -> list[tuple[str, str]]:
    return [(s.action, s.target) for s in p.steps if not s.fallback_of]


def vm_steps(p: Plan) -> set[str]:
    return {s.id for s in p.steps if s.action == "shutdown-guest"}


def test_a_whole_cluster_turns_ha_off_and_retreats_vcls_at_the_start_and_each_host_goes_on_its_own() -> None:
    p = plan(Intent.DOWN, lab())
    ha, retreat = step(p, "disable-ha", "C1"), step(p, "vcls-retreat", "C1")
    assert ha.after == retreat.after == (), "with the guest shutdowns, not after them"
    assert ha.server is None and ha.endpoint == "vcenter"
    for name in ("esx1", "esx2"):
        maintenance = step(p, "enter-maintenance", name)
        assert {ha.id, retreat.id} == set(maintenance.settled)
        own = {s.id for s in p.steps if s.action == "shutdown-guest" and s.server == name}
        assert set(maintenance.after) == own, "its own VMs only: a slow guest elsewhere does not hold it"
    assert ("shutdown-guest", "vCLS-1") not in actions(p), "an agent is never workload"


def test_embedded_agents_on_8_0_3_hosts_need_no_retreat_mode() -> None:
    members = tuple(host(f"esx{i}", cluster_moid="c1", esxi_version="8.0.3") for i in (1, 2))
    agents = (vm("vCLS-1", "esx1", system="vcls", vcls_embedded=True),)
    c1 = ClusterInfo("c1", "C1", ha=True)
    snap = Snapshot((host("mgmt01", cluster=None), *members), VMS + agents, api_version="8.0.3.0", clusters=(c1,))
    assert ("vcls-retreat", "C1") not in actions(plan(Intent.DOWN, snap))
    hosts = (host("mgmt01", cluster=None), members[0], host("esx2", cluster_moid="c1", esxi_version="8.0.2"))
    older = Snapshot(hosts, snap.vms, api_version="8.0.3.0", clusters=(c1,))
    assert ("vcls-retreat", "C1") in actions(plan(Intent.DOWN, older)), "a host below 8.0.3: vCenter falls back to EAM's agents"
    eam = Snapshot(snap.hosts, (*VMS, vm("vCLS-2", "esx1", system="vcls")), api_version="8.0.3.0", clusters=(c1,))
    assert ("vcls-retreat", "C1") in actions(plan(Intent.DOWN, eam))


def test_a_vsan_cluster_goes_down_as_one_unit() -> None:
    p = plan(Intent.DOWN, lab(vsan=True, vsan_power="clusterPoweredOn"))
    assert set(step(p, "disable-ha", "C1").after) == vm_steps(p), "after every VM of the cluster"


def test_a_cluster_going_down_in_part_keeps_ha_and_vcls() -> None:
    cfg = config()
    p = plan(Intent.DOWN, lab(hosts=3), cfg)  # esx3 is in C1 but no server of the config
    assert not {a for a, _ in actions(p)} & {"disable-ha", "vcls-retreat"}
    assert set(step(p, "enter-maintenance", "esx1").after) == {"shutdown-guest:vm-app", "shutdown-guest:vm-dns"}, "its own VMs only"


def test_vsphere_6_7_has_no_cluster_steps_and_keeps_each_host_on_its_own() -> None:
    p = plan(Intent.DOWN, lab("6.7.3", ha=False))
    assert not any(s.phase == "cluster" for s in p.steps)
    assert "shutdown-guest:vm-scratch" not in step(p, "enter-maintenance", "esx1").after


def test_retreat_mode_already_set_and_no_agents_left_needs_no_step() -> None:
    snap = lab(vcls="false")
    snap = Snapshot(snap.hosts, VMS, api_version=V8, clusters=snap.clusters)
    assert ("vcls-retreat", "C1") not in actions(plan(Intent.DOWN, snap))


def test_vsan_with_the_power_action_replaces_maintenance() -> None:
    p = plan(Intent.DOWN, lab(vsan=True, vsan_power="clusterPoweredOn"))
    power = step(p, "vsan-power-off", "C1")
    assert {step(p, "disable-ha", "C1").id, step(p, "vcls-retreat", "C1").id} <= set(power.after)
    assert not any(s.action.startswith("enter-maintenance") for s in p.steps)
    assert step(p, "shutdown-host", "esx1").after == (power.id,)


def test_vsan_before_7_0_3_enters_maintenance_without_moving_data_and_says_so() -> None:
    p = plan(Intent.DOWN, lab("7.0.2.0", vsan=True))
    assert {("enter-maintenance-no-action", "esx1"), ("enter-maintenance-no-action", "esx2")} <= set(actions(p))
    assert any("7.0 U3" in n and "noAction" in n for n in p.notes)


def test_a_vsan_cluster_keeping_fewer_than_three_hosts_up_is_refused_unless_no_action() -> None:
    snap = lab(vsan=True, vsan_power="clusterPoweredOn", hosts=3)
    refused = plan(Intent.DOWN, snap)
    assert any("vSAN" in r and "--vsan-no-action" in r and "only 1 of its hosts" in r for r in refused.refusals)
    allowed = plan(Intent.DOWN, snap, vsan_no_action=True)
    assert not allowed.refusals
    assert ("enter-maintenance-no-action", "esx1") in actions(allowed)
    assert any("--vsan-no-action" in n for n in allowed.notes)


def test_up_powers_a_vsan_cluster_on_once_all_its_hosts_are_connected_then_restores_then_starts_vms() -> None:
    snap = lab(vsan=True, vsan_power="clusterPoweredOff")
    off = facts(
        bmc_power={"mgmt01": Power.ON, "esx1": Power.OFF, "esx2": Power.OFF}, changed={"c1": frozenset({"ha", "vcls", "vsan-power"})}
    )
    p = plan(Intent.UP, snap, f=off)
    power = step(p, "vsan-power-on", "C1")
    assert set(power.after) == {step(p, "wait-connected", n).id for n in ("esx1", "esx2")}
    for n in ("esx1", "esx2"):
        assert power.id in step(p, "exit-maintenance", n).after
    restores = {step(p, "restore-ha", "C1"), step(p, "vcls-restore", "C1")}
    exits = {step(p, "exit-maintenance", n).id for n in ("esx1", "esx2")}
    assert all(set(r.settled) == exits and not r.after for r in restores), "a host that never returns does not hold them"
    first = [s for s in p.steps if s.action == "power-on-vm"]
    assert first and all({r.id for r in restores} == set(s.settled) for s in first)


def test_up_starts_a_non_vsan_clusters_vms_as_soon_as_their_host_is_back() -> None:
    off = facts(bmc_power={"mgmt01": Power.ON, "esx1": Power.OFF, "esx2": Power.OFF}, changed={"c1": frozenset({"ha", "vcls"})})
    p = plan(Intent.UP, lab(), f=off)
    restores = {step(p, "restore-ha", "C1").id, step(p, "vcls-restore", "C1").id}
    starts = [s for s in p.steps if s.action == "power-on-vm"]
    assert starts and not any(set(s.settled) & restores or set(s.after) & restores for s in starts)
    for s in starts:
        assert set(s.after) <= {step(p, "exit-maintenance", s.server).id} | {w.id for w in p.steps if w.action == "wave-ready"}


def test_up_restores_only_what_a_down_changed() -> None:
    snap = lab(ha=False)
    p = plan(Intent.UP, snap, f=facts(changed={"c1": frozenset({"vcls"})}))
    assert ("vcls-restore", "C1") in actions(p) and ("restore-ha", "C1") not in actions(p)
    assert not any(a == "vcls-restore" for a, _ in actions(plan(Intent.UP, snap)))
