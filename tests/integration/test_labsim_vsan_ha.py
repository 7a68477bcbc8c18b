"""labsim's vSAN (labsim/vsan.go) and HA (labsim/ha.go) behave as vSphere's: driven and read through pyVmomi
and its vSAN bindings only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pyVmomi import SoapStubAdapter, vim, vmodl

from tests.conftest import wait_until
from tests.integration.test_labsim_vcls import clusters
from tests.labsim import Lab

VSAN = ("--vsphere", "8.0.2", "--vsan-clusters", "1", "--vms-per-host", "1", "--clusters", "2", "--hosts-per-cluster", "2")


def power_system(content: Any, lab: Lab, version: str = "vsan.version.version18") -> Any:
    """The vSAN cluster power system on labsim's vSAN endpoint, as vsanapiutils builds it (the vCenter session's cookie);
    infraVMs needs vsan.version.version19 (8.0 U1+)."""
    stub = content.propertyCollector._stub
    host, port = lab.host_port
    vsan = SoapStubAdapter(host=host, port=port, path="/vsanHealth", version=version, sslContext=lab.ssl_context())
    vsan.cookie = stub.cookie
    return vim.cluster.VsanClusterPowerSystem("vsan-cluster-power-system", vsan)


def task_done(task: Any) -> bool:
    return task.info.state in ("success", "error")


def hosts_of(cluster: Any) -> list[Any]:
    return list(cluster.host)


def workload_off(content: Any, cluster: Any) -> None:
    for h in hosts_of(cluster):
        for vm in h.vm:
            if vm.runtime.powerState == "poweredOn":
                vm.PowerOffVM_Task()
    wait_until(lambda: all(vm.runtime.powerState == "poweredOff" for h in hosts_of(cluster) for vm in h.vm), 10, "VMs off")


def test_vsan_maintenance_needs_no_action_when_fewer_than_three_hosts_remain(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*VSAN)
    with lab.vsphere() as content:
        cs = clusters(content)
        assert cs["Cluster1"].configurationEx.vsanConfigInfo.enabled is True
        assert not (cs["Cluster2"].configurationEx.vsanConfigInfo and cs["Cluster2"].configurationEx.vsanConfigInfo.enabled)
        workload_off(content, cs["Cluster1"])
        host = hosts_of(cs["Cluster1"])[0]
        task = host.EnterMaintenanceMode_Task(timeout=0)
        wait_until(lambda: task_done(task), 10, "the task")
        assert task.info.state == "error" and isinstance(task.info.error, vim.fault.VsanFault)
        assert host.runtime.inMaintenanceMode is False
        spec = vim.host.MaintenanceSpec(vsanMode=vim.vsan.host.DecommissionMode(objectAction="noAction"))
        task = host.EnterMaintenanceMode_Task(timeout=0, maintenanceSpec=spec)
        wait_until(lambda: task_done(task), 10, "the task")
        assert task.info.state == "success" and host.runtime.inMaintenanceMode is True
        # A host of the non-vSAN cluster needs no such thing.
        other = hosts_of(cs["Cluster2"])[0]
        workload_off(content, cs["Cluster2"])
        task = other.EnterMaintenanceMode_Task(timeout=0)
        wait_until(lambda: task_done(task), 10, "the task")
        assert task.info.state == "success"


def test_vsan_cluster_power_action_off_and_on(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*VSAN)
    with lab.vsphere() as content:
        cluster = clusters(content)["Cluster1"]
        ps = power_system(content, lab)
        assert ps.QueryClusterPowerContext(cluster=cluster).currentClusterPowerStatus == "clusterPoweredOn"
        off = vim.cluster.PerformClusterPowerActionSpec(targetPowerStatus="clusterPoweredOff", powerOffReason="Scheduled maintenance")
        task = vim.Task(ps.PerformClusterPowerAction(cluster=cluster, spec=off)._moId, content.propertyCollector._stub)
        wait_until(lambda: task_done(task), 10, "the power-off task")
        assert task.info.state == "error" and "is powered on" in task.info.error.msg, "refused while a VM runs"
        workload_off(content, cluster)
        task = vim.Task(ps.PerformClusterPowerAction(cluster=cluster, spec=off)._moId, content.propertyCollector._stub)
        wait_until(lambda: task_done(task), 10, "the power-off task")
        assert task.info.state == "success"
        assert all(h.runtime.inMaintenanceMode for h in hosts_of(cluster))
        assert ps.QueryClusterPowerContext(cluster=cluster).currentClusterPowerStatus == "clusterPoweredOff"
        # Out of maintenance by hand, the objects are still unavailable: a VM does not start.
        host = hosts_of(cluster)[0]
        task = host.ExitMaintenanceMode_Task(timeout=0)
        wait_until(lambda: task_done(task), 10, "exit")
        vm = host.vm[0]
        with pytest.raises(vim.fault.VsanFault):
            vm.PowerOnVM_Task()
        on = vim.cluster.PerformClusterPowerActionSpec(targetPowerStatus="clusterPoweredOn")
        task = vim.Task(ps.PerformClusterPowerAction(cluster=cluster, spec=on)._moId, content.propertyCollector._stub)
        wait_until(lambda: task_done(task), 10, "the power-on task")
        assert task.info.state == "success"
        assert not any(h.runtime.inMaintenanceMode for h in hosts_of(cluster))
        assert ps.QueryClusterPowerContext(cluster=cluster).currentClusterPowerStatus == "clusterPoweredOn"
        task = vm.PowerOnVM_Task()
        wait_until(lambda: task_done(task), 10, "power-on")
        assert vm.runtime.powerState == "poweredOn"


def test_vsan_power_system_is_not_there_before_7_0_3(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory("--vsphere", "6.7", "--vsan-clusters", "1", "--vms-per-host", "1")
    with lab.vsphere() as content:
        cluster = clusters(content)["Cluster1"]
        with pytest.raises(vmodl.fault.MethodNotFound):
            power_system(content, lab).QueryClusterPowerContext(cluster=cluster)


def test_vsan_endpoint_needs_a_session(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*VSAN)
    with lab.vsphere() as content:
        cluster = clusters(content)["Cluster1"]
        ps = power_system(content, lab)
        ps._stub.cookie = ""
        with pytest.raises(vim.fault.NotAuthenticated):
            ps.QueryClusterPowerContext(cluster=cluster)


def test_ha_flag_and_reconfigure(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory("--ha", "--vms-per-host", "1")
    with lab.vsphere() as content:
        cluster = clusters(content)["Cluster1"]
        assert cluster.configurationEx.dasConfig.enabled is True
        spec = vim.cluster.ConfigSpecEx(dasConfig=vim.cluster.DasConfigInfo(enabled=False))
        task = cluster.ReconfigureComputeResource_Task(spec=spec, modify=True)
        wait_until(lambda: task_done(task), 10, "reconfigure")
        assert task.info.state == "success"
        assert cluster.configurationEx.dasConfig.enabled is False
        assert clusters(content)["Cluster2"].configurationEx.dasConfig.enabled is True


def test_vsan_power_action_stops_its_infra_vms_and_starts_them_again_on_8_0_3(lab_factory: Callable[..., Lab]) -> None:
    """infraVMs (a DNS server, say) may run when the power-off starts: the action stops them after the workload
    and the power-on starts them again. 8.0 U3's embedded vCLS agents are the action's own business."""
    lab = lab_factory("--vsphere", "8.0.3", *VSAN[2:])
    with lab.vsphere() as content:
        cluster = clusters(content)["Cluster1"]
        ps = power_system(content, lab, "vsan.version.version19")
        workload = [vm for h in hosts_of(cluster) for vm in h.vm if not vm.name.startswith("vCLS-")]
        infra, rest = workload[0], workload[1:]
        for vm in rest:
            vm.PowerOffVM_Task()
        wait_until(lambda: all(vm.runtime.powerState == "poweredOff" for vm in rest), 10, "the rest off")
        assert infra.runtime.powerState == "poweredOn"
        off = vim.cluster.PerformClusterPowerActionSpec(targetPowerStatus="clusterPoweredOff", infraVMs=[infra])
        task = vim.Task(ps.PerformClusterPowerAction(cluster=cluster, spec=off)._moId, content.propertyCollector._stub)
        wait_until(lambda: task_done(task), 10, "the power-off task")
        assert task.info.state == "success", task.info.error
        assert infra.runtime.powerState == "poweredOff"
        assert all(h.runtime.inMaintenanceMode for h in hosts_of(cluster))
        on = vim.cluster.PerformClusterPowerActionSpec(targetPowerStatus="clusterPoweredOn")
        task = vim.Task(ps.PerformClusterPowerAction(cluster=cluster, spec=on)._moId, content.propertyCollector._stub)
        wait_until(lambda: task_done(task), 10, "the power-on task")
        assert task.info.state == "success"
        wait_until(lambda: infra.runtime.powerState == "poweredOn", 10, "the infra VM started again")
        assert all(vm.runtime.powerState == "poweredOff" for vm in rest), "workload is up's business, not the action's"
