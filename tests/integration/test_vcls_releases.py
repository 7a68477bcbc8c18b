"""vCLS as each vSphere release ships it, cycled against labsim: 8.0 U3's embedded agents (never touched,
no retreat mode needed), 9.0 with retreat mode already set (left so), and a mixed cluster whose older host
would run EAM's agents once its 8.0 U3 host is in maintenance (retreat mode, restored). Every effect is read
back through pyVmomi and Redfish, not from labswitch's report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyVmomi import vim

from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, Run, configure, payload, run
from tests.integration.test_labsim_vcls import clusters
from tests.labsim import Lab, bmc_power, vm_power

SERVERS = ("esx11", "esx12", "esx13")


def vcls(lab: Lab) -> dict[str, tuple[str, str, str]]:
    """Every vCLS agent VM: name -> (managedBy extension, host, power state), read with pyVmomi."""
    with lab.vsphere() as content:
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        found = {}
        for vm in view.view:
            try:
                marks = {o.key: o.value for o in vm.config.extraConfig or []}
                if marks.get("HDCS.agent") == "true":
                    found[vm.name] = (vm.config.managedBy.extensionKey, vm.runtime.host.name.split(".")[0], vm.runtime.powerState)
            except vim.fault.ManagedObjectNotFound:  # an agent deleted while it is read
                continue
        view.Destroy()
        return found


def cluster_state(lab: Lab, name: str = "Cluster1") -> tuple[bool, str | None, str | None]:
    """(HA on, systemVMsConfig.deploymentMode, its vCenter retreat option), read with pyVmomi."""
    with lab.vsphere() as content:
        cluster: Any = clusters(content)[name]
        key = f"config.vcls.clusters.{cluster._moId}.enabled"
        option = next((str(o.value) for o in content.setting.setting if o.key == key), None)
        mode = cluster.configurationEx.systemVMsConfig.deploymentMode
        return bool(cluster.configurationEx.dasConfig.enabled), mode, option


def one_cluster(*extra: str) -> tuple[str, ...]:
    return (*FAST, "--ha", "--clusters", "1", "--hosts-per-cluster", str(len(SERVERS)), "--vms-per-host", "2", *extra)


def test_vsphere_8_0_3_embedded_agents_are_never_touched_and_need_no_retreat_mode(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab = lab_factory(*one_cluster("--vsphere", "8.0.3"))
    config = configure(lab)
    agents = vcls(lab)
    assert len(agents) == 2 and {ext for ext, _, _ in agents.values()} == {"VirtualCenter"}, agents
    assert cluster_state(lab) == (True, "SYSTEM_MANAGED", None)

    status = run(cli, lab, state_dir, config, "status", "--json")
    marked = {vm["name"]: vm for vm in status.json()["vms"] if vm["system"] == "vcls"}
    assert set(marked) == set(agents) and all(vm["embedded"] for vm in marked.values())

    plan = run(cli, lab, state_dir, config, "plan", "down", "--json")
    steps = plan.json()["steps"]
    assert not [s for s in steps if s["action"].startswith("vcls")], "embedded agents stop by themselves: no retreat mode"
    assert not [s for s in steps if s["target"] in agents], "no step acts on an agent"
    assert ("disable-ha", "Cluster1") in {(s["action"], s["target"]) for s in steps}

    down = run(cli, lab, state_dir, config, "down", "--yes")
    assert down.code == 0, down.stderr
    assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}
    assert cluster_state(lab) == (False, "SYSTEM_MANAGED", None), "only HA changed"
    changes = run(cli, lab, state_dir, config, "status", "--json").json()["cluster_changes"]
    assert {(c["cluster"], c["setting"]) for c in changes} == {("Cluster1", "ha")}

    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert cluster_state(lab) == (True, "SYSTEM_MANAGED", None)
    wait_until(lambda: sum(1 for _, _, p in vcls(lab).values() if p == "poweredOn") == 2, 15, "vCenter running its 2 agents again")


def test_vsphere_9_retreat_mode_already_set_is_left_as_it_was(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*one_cluster("--vsphere", "9.0", "--vcls-retreat"))
    config = configure(lab)
    assert vcls(lab) == {} and cluster_state(lab) == (True, "ABSENT", "false")
    plan = run(cli, lab, state_dir, config, "plan", "down", "--json")
    assert not [s for s in plan.json()["steps"] if s["action"].startswith("vcls")]
    down = run(cli, lab, state_dir, config, "down", "--yes")
    assert down.code == 0, down.stderr
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}
    up = run(cli, lab, state_dir, config, "up", "--restore", "--yes")
    assert up.code == 0, up.stderr
    assert cluster_state(lab) == (True, "ABSENT", "false"), "never restored out of retreat mode"
    assert vcls(lab) == {}
    assert set(payload(vm_power(lab)).values()) == {"poweredOn"}


def test_a_mixed_cluster_is_put_in_retreat_mode_and_restored(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    """esx13 runs ESXi 8.0.2: with esx11 and esx12 in maintenance vCenter falls back to EAM's agents there."""
    lab = lab_factory(*one_cluster("--vsphere", "8.0.3", "--esxi-versions", "esx13=8.0.2"))
    config = configure(lab)
    assert {host for _, host, _ in vcls(lab).values()} == {"esx11", "esx12"}, "embedded agents on the 8.0.3 hosts only"
    plan = run(cli, lab, state_dir, config, "plan", "down", "--json")
    assert ("vcls-retreat", "Cluster1") in {(s["action"], s["target"]) for s in plan.json()["steps"]}
    down = run(cli, lab, state_dir, config, "down", "--yes")
    assert down.code == 0, down.stderr
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}
    assert cluster_state(lab) == (False, "ABSENT", None), "retreat mode through systemVMsConfig (8.0 U2+)"
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert cluster_state(lab) == (True, "SYSTEM_MANAGED", None)
    wait_until(lambda: {e for e, _, p in vcls(lab).values() if p == "poweredOn"} == {"VirtualCenter"}, 15, "embedded agents back")
