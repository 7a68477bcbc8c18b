"""labsim's vCLS (labsim/vcls.go) behaves as vSphere 7/8's: read and driven through pyVmomi only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyVmomi import vim, vmodl

from tests.conftest import wait_until
from tests.labsim import Lab

FAST = ("--vsphere", "8.0.2", "--vcls", "--vcls-delay", "300ms", "--vcls-repower-delay", "300ms", "--vms-per-host", "1")


def agents(content: Any) -> dict[str, Any]:
    """The VMs EAM manages, by name (a VM deleted while they are read is left out)."""
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    found = {}
    for vm in view.view:
        try:
            if vm.config.managedBy and vm.config.managedBy.extensionKey == "com.vmware.vim.eam":
                found[vm.name] = vm
        except vmodl.fault.ManagedObjectNotFound:
            continue
    view.DestroyView()
    return found


def clusters(content: Any) -> dict[str, Any]:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ClusterComputeResource], True)
    found = {c.name: c for c in view.view}
    view.DestroyView()
    return found


def test_each_cluster_runs_its_agents_and_eam_restarts_a_stopped_one(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*FAST, "--clusters", "2", "--hosts-per-cluster", "4")
    with lab.vsphere() as content:
        found = agents(content)
        assert len(found) == 6  # min(3, hosts) per cluster
        assert all(name.startswith("vCLS-") and vm.config.managedBy.type == "cluster-agent" for name, vm in found.items())
        assert all(vm.runtime.powerState == "poweredOn" and vm.guest.toolsRunningStatus == "guestToolsRunning" for vm in found.values())
        vm = next(iter(found.values()))
        vm.ShutdownGuest()
        wait_until(lambda: vm.runtime.powerState == "poweredOff", 10, "the agent off")
        wait_until(lambda: vm.runtime.powerState == "poweredOn", 10, "EAM powering the agent back on")


def test_retreat_mode_deletes_the_agents_and_leaving_it_recreates_them(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*FAST, "--clusters", "2", "--hosts-per-cluster", "2")
    with lab.vsphere() as content:
        cluster = clusters(content)["Cluster1"]
        mine = {n for n, vm in agents(content).items() if vm.runtime.host.parent == cluster}
        assert len(mine) == 2
        key = f"config.vcls.clusters.{cluster._moId}.enabled"
        content.setting.UpdateOptions(changedValue=[vim.option.OptionValue(key=key, value="false")])
        wait_until(lambda: not mine & set(agents(content)), 10, "Cluster1's agents deleted")
        assert len(agents(content)) == 2, "the other cluster keeps its agents"
        assert [o.value for o in content.setting.QueryOptions(key)] == ["false"]
        content.setting.UpdateOptions(changedValue=[vim.option.OptionValue(key=key, value="true")])
        wait_until(lambda: len(agents(content)) == 4, 10, "Cluster1's agents recreated")
        wait_until(lambda: all(vm.runtime.powerState == "poweredOn" for vm in agents(content).values()), 10, "the new agents running")


def test_maintenance_moves_an_agent_until_no_host_is_left(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*FAST, "--clusters", "1", "--hosts-per-cluster", "2")
    with lab.vsphere() as content:
        hosts = {h.name: h for h in clusters(content)["Cluster1"].host}
        first, second = hosts["esx11.lab.local"], hosts["esx12.lab.local"]
        workload = [vm for h in (first, second) for vm in h.vm if not vm.name.startswith("vCLS-")]
        for vm in workload:
            if vm.runtime.powerState == "poweredOn":
                vm.PowerOffVM_Task()
        wait_until(lambda: all(vm.runtime.powerState == "poweredOff" for vm in workload), 10, "the workload off")
        task = first.EnterMaintenanceMode_Task(timeout=0)
        wait_until(lambda: task.info.state in ("success", "error"), 10, "esx11 into maintenance")
        assert task.info.state == "success"
        assert all(vm.runtime.host == second for vm in agents(content).values()), "the agent moved to esx12"
        try:
            second.EnterMaintenanceMode_Task(timeout=0)
            blocked = False
        except vim.fault.InvalidState:
            blocked = True
        assert blocked, "the last host's running agents block maintenance mode"
