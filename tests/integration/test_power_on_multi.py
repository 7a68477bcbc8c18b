"""Starting VMs with one PowerOnMultiVM_Task per host and wave, where vCenter offers it.

labsim answers the call as vCenter does (labsim/multipower.go): a task on the datacenter whose result
names each VM's own power-on task, or why it was not attempted. Read back through pyVmomi.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from labswitch.cancel import Cancel
from labswitch.vsphere.actions import Actions
from labswitch.vsphere.port import VSpherePort
from tests.conftest import Result, wait_until
from tests.integration.test_down_up import FAST, configure, payload, run
from tests.labsim import Lab, vm_power

Run = Callable[..., Result]


def switch_off(vms: list[vim.VirtualMachine]) -> None:
    for vm in vms:
        if vm.runtime.powerState == "poweredOn":
            vm.PowerOffVM_Task()
    wait_until(lambda: all(vm.runtime.powerState == "poweredOff" for vm in vms), 10, "the VMs off")


def two_hosts_one_closed(content: Any, lab: Lab) -> tuple[list[Any], list[Any]]:
    """Every VM off; esx11's can start ("ready"), esx12 is in maintenance mode so its cannot ("closed")."""
    hosts = lab.objects(content, vim.HostSystem)

    def workload(host: Any) -> list[Any]:  # not vCLS agents: vCenter starts and stops those itself
        return [vm for vm in host.vm if not vm.name.startswith("vCLS-")]

    ready, closed = workload(hosts["esx11.lab.local"]), workload(hosts["esx12.lab.local"])
    switch_off(ready + closed)
    task = hosts["esx12.lab.local"].EnterMaintenanceMode_Task(timeout=0)
    wait_until(lambda: task.info.state == "success", 10, "esx12 in maintenance")
    return ready, closed


def test_labsim_answers_with_each_vms_task_or_why_not(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*FAST, "--clusters", "1", "--hosts-per-cluster", "2")
    with lab.vsphere() as content:
        ready, closed = two_hosts_one_closed(content, lab)
        datacenter = content.rootFolder.childEntity[0]
        multi = datacenter.PowerOnMultiVM_Task(vm=ready + closed)
        wait_until(lambda: multi.info.state == "success", 10, "the multi-VM power-on")
        result = multi.info.result
        assert {a.vm._moId for a in result.attempted} == {vm._moId for vm in ready}
        assert all(a.task.info.state == "success" for a in result.attempted)
        assert {n.vm._moId for n in result.notAttempted} == {vm._moId for vm in closed}
        assert all(isinstance(n.fault, vim.fault.InvalidState) for n in result.notAttempted)  # pyVmomi: LocalizedMethodFault is the fault
        assert all(vm.runtime.powerState == "poweredOn" for vm in ready)
        assert all(vm.runtime.powerState == "poweredOff" for vm in closed)


def test_port_reports_each_vm_that_vcenter_did_not_attempt(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*FAST, "--clusters", "1", "--hosts-per-cluster", "2")
    with lab.vsphere() as content:
        ready, closed = two_hosts_one_closed(content, lab)
        lab.soap_calls(reset=True)
        si = vim.ServiceInstance("ServiceInstance", content.propertyCollector._stub)
        port = VSpherePort(Actions(si, content, 30), {vm._moId: {"on"} for vm in ready + closed}, {}, 8, Cancel())
        try:
            outcome = port.power_on_vms([vm._moId for vm in ready + closed], 30)
        finally:
            port.close()
        assert {m for m, error in outcome.items() if error is None} == {vm._moId for vm in ready}
        assert all("InvalidState" in (outcome[vm._moId] or "") for vm in closed)
        assert lab.soap_calls().get("PowerOnMultiVM_Task") == 1 and "PowerOnVM_Task" not in lab.soap_calls()
        assert all(vm.runtime.powerState == "poweredOn" for vm in ready)


@pytest.mark.parametrize("offered", [True, False], ids=["multi-vm", "one-call-per-vm"])
def test_up_starts_the_same_vms_either_way(cli: Run, lab_factory: Callable[..., Lab], tmp_path: Path, offered: bool) -> None:
    lab = lab_factory(*FAST, "--vms-per-host", "4", *(() if offered else ("--no-power-on-multi",)))
    config, state = configure(lab), tmp_path / "state"
    ran = {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"}
    assert run(cli, lab, state, config, "down", "--yes").code == 0
    lab.soap_calls(reset=True)
    up = run(cli, lab, state, config, "up", "--restore", "--yes")
    assert up.code == 0, up.stderr
    assert {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"} == ran
    calls = lab.soap_calls()
    if offered:  # one call per host and wave, a VM alone in its wave on its host excepted
        assert calls.get("PowerOnMultiVM_Task", 0) > 0 and calls.get("PowerOnVM_Task", 0) + calls["PowerOnMultiVM_Task"] < len(ran)
    else:  # answered NotImplemented (asked by the hosts that started before that answer), then one PowerOnVM_Task per VM
        assert 1 <= calls.get("PowerOnMultiVM_Task", 0) <= 4 and calls.get("PowerOnVM_Task") == len(ran)
