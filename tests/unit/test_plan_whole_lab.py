"""The planner's whole-lab rules (plan/whole_lab.py) on hand-built snapshots: vCenter's host goes last, through itself."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from labswitch.bmc import Power
from labswitch.plan import Intent, Plan
from labswitch.plan.whole_lab import boot
from labswitch.snapshot import ClusterInfo, Snapshot
from tests.unit.test_plan import config, host, plan, vm

ESXI = {"user": "root", "password": "p"}
HOSTS = (host("mgmt01", cluster=None), host("esx1", cluster_moid="c1"), host("esx2", cluster_moid="c1"))
VMS = (
    vm("vcsa", "esx1", guest_ip="10.0.0.5", uuid="u-vcsa"),
    vm("dns01", "esx1", uuid="u-dns"),
    vm("app", "esx1", uuid="u-app", tags=("Lab/StartUp",)),
    vm("web", "esx2", uuid="u-web"),
)
C1 = ClusterInfo("c1", "C1", ha=True)


def snap(vms: tuple[Any, ...] = VMS, cluster: ClusterInfo = C1) -> Snapshot:
    return Snapshot(HOSTS, vms, api_version="7.0.3.0", clusters=(cluster,))


def whole(**policy: Any) -> Any:
    return config(esxi=ESXI, policy={"vcenter_dependencies": ["dns*"], **policy})


def by(p: Plan, action: str, target: str, endpoint: str | None = None) -> Any:
    return next(s for s in p.steps if s.action == action and s.target == target and endpoint in (None, s.endpoint))


def test_without_whole_lab_vcenter_on_a_target_host_is_refused_and_the_refusal_says_how() -> None:
    p = plan(Intent.DOWN, snap(), whole())
    assert any("vcsa is the vCenter" in r and "--whole-lab" in r for r in p.refusals)
    assert p.vcenter_host is None


def test_vcenters_host_goes_last_through_itself() -> None:
    p = plan(Intent.DOWN, snap(), whole(), whole_lab=True)
    assert not p.refusals
    assert p.vcenter_host is not None and p.vcenter_host.server == "esx1"
    assert p.vcenter_host.vcenter == ("vcsa", "u-vcsa") and p.vcenter_host.dependencies == (("dns01", "u-dns"),)
    direct = [(s.action, s.target, s.moid) for s in p.steps if s.endpoint == "esxi:esx1"]
    assert direct == [
        ("shutdown-guest", "vcsa", "uuid:u-vcsa"),
        ("shutdown-guest", "dns01", "uuid:u-dns"),
        ("enter-maintenance", "esx1", "host-esx1"),
        ("shutdown-host", "esx1", "host-esx1"),
    ]
    vcsa = by(p, "shutdown-guest", "vcsa")
    assert vcsa.after == (by(p, "shutdown-guest", "app").id,), "vCenter stops once its host's other VMs are off"
    others = {s.id for s in p.steps if s.endpoint != "esxi:esx1" and s.server != "esx1" and not s.fallback_of}
    assert others <= set(vcsa.settled), "and once everything else has settled (esx2 confirmed off, the cluster's steps)"
    assert by(p, "confirm-off", "esx2").id in vcsa.settled and by(p, "disable-ha", "C1").id in vcsa.settled
    assert by(p, "shutdown-guest", "dns01").after == (vcsa.id,), "dependencies after vCenter"
    assert not [s for s in p.steps if s.server == "esx1" and s.action == "enter-maintenance" and s.endpoint == "vcenter"]
    confirm = by(p, "confirm-off", "esx1")
    assert confirm.moid is None and confirm.endpoint == "bmc:esx1", "vCenter is off by then: the BMC alone confirms"


def test_vcenter_on_vsan_every_host_of_the_cluster_goes_last_through_itself_without_moving_data() -> None:
    vsan = ClusterInfo("c1", "C1", ha=True, vsan=True, vsan_power="clusterPoweredOn")
    p = plan(Intent.DOWN, snap(cluster=vsan), whole(), whole_lab=True)
    assert not p.refusals and p.vcenter_host is not None and p.vcenter_host.peers == ("esx2",)
    assert "vsan-power-off" not in {s.action for s in p.steps}, "vSAN's power action would take vCenter's storage away under it"
    assert not [s for s in p.steps if s.action.startswith("enter-maintenance") and s.endpoint == "vcenter"]
    last = by(p, "shutdown-guest", "dns01").id
    for name in ("esx1", "esx2"):
        enter = by(p, "enter-maintenance-no-action", name)
        assert enter.endpoint == f"esxi:{name}" and enter.after == (last,), "once vCenter and what it needs are off"
        assert by(p, "shutdown-host", name).endpoint == f"esxi:{name}"
    assert by(p, "shutdown-guest", "web").id in by(p, "shutdown-guest", "vcsa").after, "the peers' VMs stop first, through vCenter"


def test_holds_vcenter_on_a_group_asks_for_the_whole_lab() -> None:
    cfg = config(esxi=ESXI, groups={"mgmt": {"always_on": True}, "payload": {"holds_vcenter": True}})
    p = plan(Intent.DOWN, snap(), cfg)
    assert not p.refusals and p.vcenter_host is not None


def test_whole_lab_refusals() -> None:
    no_esxi = plan(Intent.DOWN, snap(), config(policy={"vcenter_dependencies": ["dns*"]}), whole_lab=True)
    assert any("add [esxi]" in r for r in no_esxi.refusals)
    elsewhere = (*VMS[:1], vm("dns01", "esx2", uuid="u-dns"), *VMS[2:])
    moved = plan(Intent.DOWN, snap(elsewhere), whole(), whole_lab=True)
    assert any("dns01 (policy.vcenter_dependencies) runs on esx2" in r for r in moved.refusals)
    vsan_whole = plan(Intent.DOWN, snap(cluster=ClusterInfo("c1", "C1", vsan=True)), whole(), whole_lab=True, groups=["payload"])
    assert not vsan_whole.refusals, "the whole vSAN cluster goes down: allowed"
    hosts = (*HOSTS, host("esx3", cluster_moid="c1"))  # a host of the cluster that is no server of the config: it stays up
    partial = plan(
        Intent.DOWN, Snapshot(hosts, VMS, api_version="7.0.3.0", clusters=(ClusterInfo("c1", "C1", vsan=True),)), whole(), whole_lab=True
    )
    assert any("vSAN cluster C1, and esx3.lab of it would stay up" in r for r in partial.refusals)
    protected = plan(Intent.DOWN, snap(), whole(protect=["app"]), whole_lab=True)
    assert any("app on esx1 matches policy.protect" in r for r in protected.refusals), "every other safety rule still holds"


def test_no_vcenter_on_a_target_host_is_an_ordinary_down() -> None:
    vms = (vm("vcsa", "mgmt01", guest_ip="10.0.0.5", uuid="u-vcsa"), *VMS[1:])
    p = plan(Intent.DOWN, snap(vms), whole(), whole_lab=True)
    assert not p.refusals and p.vcenter_host is None
    assert not [s for s in p.steps if s.endpoint.startswith("esxi:")]


def test_the_way_up_starts_vcenter_on_its_host_first() -> None:
    cfg = whole()
    servers = [s for s in cfg.servers if s.group == "payload"]
    steps = boot(servers, "esx1", ("vcsa", "u-vcsa"), (("dns01", "u-dns"),), {"esx1": Power.OFF, "esx2": Power.ON})
    assert [(s.action, s.target, s.endpoint) for s in steps] == [
        ("bmc-power-on", "esx1", "bmc:esx1"),
        ("exit-maintenance", "esx1", "esxi:esx1"),
        ("power-on-vm", "dns01", "esxi:esx1"),
        ("wait-tools", "dns01", "esxi:esx1"),
        ("power-on-vm", "vcsa", "esxi:esx1"),
        ("wait-vcenter", "vCenter", "vcenter"),
    ]
    assert all(s.after == (prev.id,) for prev, s in itertools.pairwise(steps)), "one chain, each after the last"
    peers = boot(servers, "esx1", ("vcsa", "u-vcsa"), (), {"esx1": Power.OFF, "esx2": Power.OFF}, peers=("esx2",))
    leave = [s for s in peers if s.action == "exit-maintenance"]
    assert [(s.target, s.endpoint) for s in leave] == [("esx1", "esxi:esx1"), ("esx2", "esxi:esx2")]
    assert set(next(s for s in peers if s.target == "vcsa").after) == {s.id for s in leave}, "vCenter starts once its vSAN is whole"


def test_without_vcenter_the_waves_name_globs_select_what_starts() -> None:
    cfg = config(
        vcenter=None,
        esxi=ESXI,
        startup={"waves": [{"name": "infra", "vms": ["dns*"]}, {"name": "apps", "vms": ["app", "web"]}]},
    )
    vms = tuple(replace(v, power_state="poweredOff") for v in VMS[1:])
    p = plan(Intent.UP, Snapshot(HOSTS, vms), cfg)
    started = [(s.target, s.phase) for s in p.steps if s.action == "power-on-vm"]
    assert started == [("dns01", "start:infra"), ("app", "start:apps"), ("web", "start:apps")], "no tags: the globs select, in wave order"


def test_vcenters_cluster_is_retreated_even_with_embedded_agents() -> None:
    """8.0 U3's embedded agents need no retreat mode where vCenter stops them; vCenter's own host leaves after vCenter."""
    hosts = tuple(replace(h, esxi_version="8.0.3") for h in HOSTS)
    agent = vm("vCLS-1", "esx1", system="vcls", vcls_embedded=True)
    embedded = Snapshot(hosts, (*VMS, agent), api_version="8.0.3.0", clusters=(C1,))
    assert ("vcls-retreat", "C1") in {(s.action, s.target) for s in plan(Intent.DOWN, embedded, whole(), whole_lab=True).steps}
    ordinary = Snapshot(hosts, (vm("web", "esx2"), agent), api_version="8.0.3.0", clusters=(C1,))
    assert ("vcls-retreat", "C1") not in {(s.action, s.target) for s in plan(Intent.DOWN, ordinary, whole()).steps}
