"""The planner's ordering and safety rules, on hand-built snapshots (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.errors import ConfigError
from labswitch.plan import Action, Facts, Intent, make_plan, target_groups
from labswitch.snapshot import HostInfo, Snapshot, VMInfo
from tests.unit.graph import waits_for


def config(**overrides: Any) -> Config:
    data: dict[str, Any] = {
        "vcenter": {"url": "vcsa.lab.local", "user": "u", "password": "p"},
        "groups": {"mgmt": {"always_on": True}, "payload": {}},
        "servers": [
            {
                "name": n,
                "esxi": f"{n}.lab",
                "group": g,
                "bmc": {"driver": "redfish", "address": f"{n}-oob", "user": "root", "password": "p"},
            }
            for n, g in (("mgmt01", "mgmt"), ("esx1", "payload"), ("esx2", "payload"))
        ],
    }
    for key, value in overrides.items():
        data[key] = value
    return Config.model_validate(data)


def host(name: str, **kw: Any) -> HostInfo:
    defaults: dict[str, Any] = {"cluster": "C1", "connection_state": "connected", "in_maintenance": False, "power_state": "poweredOn"}
    return HostInfo(moid=f"host-{name}", name=f"{name}.lab", **{**defaults, **kw})


def vm(name: str, on: str, **kw: Any) -> VMInfo:
    defaults: dict[str, Any] = {"power_state": "poweredOn", "tools_running": True}
    return VMInfo(moid=f"vm-{name}", name=name, host_moid=f"host-{on}", **{**defaults, **kw})


def facts(**kw: Any) -> Facts:
    power = {"mgmt01": Power.ON, "esx1": Power.ON, "esx2": Power.ON}
    base: dict[str, Any] = {
        "vcenter_addresses": frozenset({"vcsa.lab.local", "10.0.0.5"}),
        "self_addresses": frozenset(),
        "bmc_power": power,
    }
    return Facts(**{**base, **kw})


HOSTS = (host("mgmt01", cluster=None), host("esx1"), host("esx2"))
VMS = (
    vm("vcsa", "mgmt01", guest_ip="10.0.0.5"),
    vm("dns", "esx1", tags=("Lab/StartUp",)),
    vm("app", "esx1", tags=("Lab/StartUp", "Lab/Web")),
    vm("scratch", "esx2"),
    vm("old", "esx2", power_state="poweredOff", tags=("Lab/StartUp",)),
)


def plan(intent: Intent, snap: Snapshot | None = None, cfg: Config | None = None, f: Facts | None = None, **kw: Any) -> Any:
    cfg = cfg or config()
    return make_plan(snap or Snapshot(HOSTS, VMS), cfg, f or facts(), intent, target_groups(cfg, kw.pop("groups", []), intent), **kw)


def rows(p: Any) -> list[tuple[str, str, str]]:
    return [(s.phase, s.action, s.target) for s in p.steps]


def test_down_order_and_default_groups() -> None:
    p = plan(Intent.DOWN)
    assert p.groups == ("payload",) and p.servers == ("esx1", "esx2") and not p.refusals
    assert rows(p) == [
        ("guest-shutdown", "shutdown-guest", "app"),
        ("guest-shutdown", "shutdown-guest", "dns"),
        ("guest-shutdown", "shutdown-guest", "scratch"),
        ("maintenance", "enter-maintenance", "esx1"),
        ("maintenance", "enter-maintenance", "esx2"),
        ("host-shutdown", "shutdown-host", "esx1"),
        ("host-shutdown", "bmc-graceful-shutdown", "esx1"),  # only if vSphere's shutdown does not work
        ("host-shutdown", "confirm-off", "esx1"),
        ("host-shutdown", "shutdown-host", "esx2"),
        ("host-shutdown", "bmc-graceful-shutdown", "esx2"),
        ("host-shutdown", "confirm-off", "esx2"),
    ]


def test_down_guest_shutdown_in_reverse_wave_order() -> None:
    waves = {"waves": [{"name": "infra", "vms": ["dns"]}, {"name": "web", "tags": ["Web"]}]}
    p = plan(Intent.DOWN, cfg=config(startup=waves))
    # unassigned (scratch) first, then wave "web" (app), then wave "infra" (dns): each group asked only once every
    # shutdown of the group before it ended, as edges of the graph (not merely the order the requests go out in)
    stops = {s.target: s.id for s in p.steps if s.action == Action.SHUTDOWN_GUEST}
    assert [s.target for s in p.steps if s.action == Action.SHUTDOWN_GUEST] == ["scratch", "app", "dns"]
    assert waits_for(p, stops["app"], stops["scratch"]) and waits_for(p, stops["dns"], stops["app"])
    assert not waits_for(p, stops["scratch"], stops["app"]) and not waits_for(p, stops["app"], stops["dns"])
    barriers = [s for s in p.steps if s.action == Action.SHUTDOWN_ORDER_ENDED]
    assert [b.target for b in barriers] == ["remaining", "web"], "one barrier between two groups, none after the last"


def test_toolless_vm_hard_power_off_or_host_left_running() -> None:
    snap = Snapshot(HOSTS, (*VMS, vm("legacy", "esx2", tools_running=False)))
    soft = plan(Intent.DOWN, snap)
    assert ("power-off", "leave-running", "legacy") in rows(soft)
    assert ("host-shutdown", "shutdown-host", "esx2") not in rows(soft)
    assert ("maintenance", "enter-maintenance", "esx2") not in rows(soft)
    assert any("esx2" in n and "hard_power_off" in n for n in soft.notes)
    hard = plan(Intent.DOWN, snap, cfg=config(policy={"hard_power_off": True}))
    assert ("power-off", "power-off-vm", "legacy") in rows(hard)
    assert ("host-shutdown", "shutdown-host", "esx2") in rows(hard)


def test_down_of_a_lab_already_down_plans_nothing() -> None:
    f = facts(bmc_power={"mgmt01": Power.ON, "esx1": Power.OFF, "esx2": Power.OFF})
    hosts = (HOSTS[0], host("esx1", connection_state="notResponding"), host("esx2", connection_state="notResponding"))
    assert plan(Intent.DOWN, Snapshot(hosts, VMS), f=f).steps == ()


def test_host_already_in_maintenance_is_not_entered_again() -> None:
    hosts = (HOSTS[0], host("esx1", in_maintenance=True), HOSTS[2])
    snap = Snapshot(hosts, tuple(v for v in VMS if v.host_moid != "host-esx1"))
    assert ("maintenance", "enter-maintenance", "esx1") not in rows(plan(Intent.DOWN, snap))


@pytest.mark.parametrize(
    ("extra_vm", "cfg_kw", "fact_kw", "fragment"),
    [
        (vm("vc", "esx1", guest_ip="10.0.0.5"), {}, {}, "VM vc is the vCenter"),
        (vm("vc", "esx1", guest_hostname="vcsa.lab.local"), {}, {}, "VM vc is the vCenter"),
        (vm("vc", "esx1", guest_hostname="vcsa"), {}, {}, "VM vc is the vCenter"),
        (
            vm("appliance", "esx1"),
            {"vcenter": {"url": "vc", "user": "u", "password": "p", "vm": "appliance"}},
            {},
            "VM appliance is the vCenter",
        ),
        (vm("me", "esx2", guest_hostname="jump.lab"), {}, {"self_addresses": frozenset({"jump.lab"})}, "machine running labswitch"),
        (vm("db01", "esx2"), {"policy": {"protect": ["DB*"]}}, {}, "matches policy.protect"),
        (vm("keep", "esx2", tags=("Lab/Keep",)), {"policy": {"protect_tag": "Keep"}}, {}, "carries the protect tag"),
    ],
)
def test_safety_refusals(extra_vm: VMInfo, cfg_kw: dict[str, Any], fact_kw: dict[str, Any], fragment: str) -> None:
    p = plan(Intent.DOWN, Snapshot(HOSTS, (*VMS, extra_vm)), cfg=config(**cfg_kw), f=facts(**fact_kw))
    assert any(fragment in r for r in p.refusals), p.refusals


def test_loopback_is_never_taken_for_this_machine() -> None:
    p = plan(Intent.DOWN, Snapshot(HOSTS, (*VMS, vm("x", "esx1", guest_ip="127.0.0.1"))), f=facts(self_addresses=frozenset({"127.0.0.1"})))
    assert not p.refusals


def test_vcenter_on_an_always_on_host_is_fine_and_always_on_groups_are_refused() -> None:
    assert not plan(Intent.DOWN).refusals
    p = plan(Intent.DOWN, groups=["mgmt"])
    assert any("always_on" in r for r in p.refusals)
    vcenter = next(r for r in p.refusals if "is the vCenter" in r)
    assert "a host of the always-on group mgmt; leave mgmt on" in vcenter and "move it to an always-on host" not in vcenter


def test_unreachable_bmc_refused_or_skipped() -> None:
    f = facts(bmc_power={"mgmt01": Power.ON, "esx1": Power.UNKNOWN, "esx2": Power.ON}, bmc_errors={"esx1": "server esx1 BMC: timed out"})
    assert any("server esx1 BMC: timed out" in r and "--skip-unreachable" in r for r in plan(Intent.DOWN, f=f).refusals)
    skipped = plan(Intent.DOWN, f=f, skip_unreachable=True)
    assert skipped.servers == ("esx2",) and not skipped.refusals
    assert all(s.server != "esx1" for s in skipped.steps)
    assert any("left out" in n for n in skipped.notes)


def test_unknown_group_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--group nope: no such group"):
        target_groups(config(), ["nope"], Intent.DOWN)


def down_lab() -> tuple[Snapshot, Facts]:
    hosts = (HOSTS[0], host("esx1", connection_state="notResponding", in_maintenance=True), host("esx2", connection_state="notResponding"))
    vms = tuple(v if v.host_moid == "host-mgmt01" else VMInfo(**{**v.__dict__, "power_state": "poweredOff"}) for v in VMS)
    return Snapshot(hosts, vms), facts(bmc_power={"mgmt01": Power.ON, "esx1": Power.OFF, "esx2": Power.OFF})


def test_up_order_and_startup_tag() -> None:
    snap, f = down_lab()
    p = plan(Intent.UP, snap, f=f)
    assert rows(p) == [
        ("power-on", "bmc-power-on", "esx1"),
        ("power-on", "bmc-power-on", "esx2"),
        ("connect", "wait-connected", "esx1"),
        ("connect", "wait-connected", "esx2"),
        ("maintenance", "exit-maintenance", "esx1"),
        ("maintenance", "exit-maintenance", "esx2"),
        ("start:remaining", "power-on-vm", "app"),
        ("start:remaining", "power-on-vm", "dns"),
        ("start:remaining", "power-on-vm", "old"),
    ]


def test_up_waves_and_category_tag() -> None:
    snap, f = down_lab()
    cfg = config(policy={"startup_tag": "Lab/StartUp"}, startup={"waves": [{"name": "infra", "vms": ["dns"]}, {"tags": ["Lab/Web"]}]})
    starts = [(s.phase, s.target) for s in plan(Intent.UP, snap, cfg=cfg, f=f).steps if s.action == "power-on-vm"]
    assert starts == [("start:infra", "dns"), ("start:2", "app"), ("start:remaining", "old")]
    assert not [
        s for s in plan(Intent.UP, snap, cfg=config(policy={"startup_tag": "Other/StartUp"}), f=f).steps if s.action == "power-on-vm"
    ]


def test_up_restore_starts_exactly_the_recorded_vms() -> None:
    snap, f = down_lab()
    p = plan(Intent.UP, snap, f=Facts(**{**f.__dict__, "restore": frozenset({"vm-scratch"})}))
    assert [s.target for s in p.steps if s.action == "power-on-vm"] == ["scratch"]


def test_up_of_a_lab_already_up_plans_nothing() -> None:
    vms = tuple(VMInfo(**{**v.__dict__, "power_state": "poweredOn"}) for v in VMS)
    assert plan(Intent.UP, Snapshot(HOSTS, vms)).steps == ()


def test_one_rule_for_failure_and_for_the_vcenter_vm() -> None:
    from labswitch.plan import Status, is_vcenter_vm

    assert [s for s in Status if s.is_failure] == [Status.FAILED, Status.SKIPPED]
    vcsa = vm("vcsa", "esx11", guest_ip="10.0.0.5", guest_hostname="vcsa.lab.local")
    assert is_vcenter_vm(vcsa, None, {"vcsa.lab.local"})
    assert is_vcenter_vm(vcsa, None, {"10.0.0.5"})
    assert is_vcenter_vm(vcsa, None, {"vcsa"})  # short names match too
    assert not is_vcenter_vm(vcsa, None, {"other.lab.local"})
    assert is_vcenter_vm(vcsa, "vcsa", set())  # vcenter.vm names it


def test_every_host_is_its_own_chain_unless_asked_for_the_old_phase_barriers() -> None:
    p = plan(Intent.DOWN)
    ids = {s.id: s for s in p.steps}
    maintenance = {s.target: s for s in p.steps if s.action == "enter-maintenance"}
    assert {ids[d].target for d in maintenance["esx1"].after} == {"app", "dns"}  # only its own VMs
    assert {ids[d].target for d in maintenance["esx2"].after} == {"scratch"}
    old = plan(Intent.DOWN, pipeline=False)
    barrier = next(s for s in old.steps if s.action == "enter-maintenance" and s.target == "esx2")
    assert {old.steps[[s.id for s in old.steps].index(d)].target for d in barrier.after} == {"app", "dns", "scratch"}
    assert all(s.after == () for s in old.steps if s.fallback_of)  # a fallback follows only its own step


def test_vcls_agents_are_never_workload() -> None:
    agent = vm("vCLS-1a2b", "esx1", system="vcls")
    stopped_agent = vm("vCLS-3c4d", "esx2", system="vcls", power_state="poweredOff")
    snap = Snapshot(HOSTS, (*VMS, agent, stopped_agent))
    down = plan(Intent.DOWN, snap)
    assert rows(down) == rows(plan(Intent.DOWN)), "an agent is neither shut down nor powered off"
    assert not down.refusals
    off = Snapshot(HOSTS, tuple(replace(v, power_state="poweredOff") for v in snap.vms))
    every = facts(restore=frozenset(v.moid for v in snap.vms))
    without_agents = Snapshot(HOSTS, off.vms[: len(VMS)])
    assert rows(plan(Intent.UP, off, f=every)) == rows(plan(Intent.UP, without_agents, f=every)), "up starts no agent, even restoring"
    assert rows(plan(Intent.UP, off)) == rows(plan(Intent.UP, without_agents))
    assert snap.workload_on("host-esx1") == tuple(v for v in VMS if v.host_moid == "host-esx1" and not v.template)
