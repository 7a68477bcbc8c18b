"""labsim's ESXi host endpoints (labsim/esxi.go) and its vCenter inside the lab (labsim/vcenter.go): driven and
read through pyVmomi on both endpoints, Redfish and plain TCP only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pyVim.connect import SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.conftest import wait_until
from tests.labsim import Lab, answers, bmc_power

LAB = ("--clusters", "1", "--hosts-per-cluster", "2", "--vms-per-host", "2", "--vcenter-vm-on", "payload", "--no-vcls")
LAB += ("--host-boot-delay", "1s", "--host-shutdown-delay", "200ms", "--vcenter-boot-delay", "1s", "--tools-delay", "100ms")


def vms(content: Any) -> dict[str, Any]:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        return {vm.name: vm for vm in view.view}
    finally:
        view.Destroy()


def the_host(content: Any) -> Any:
    return content.rootFolder.childEntity[0].hostFolder.childEntity[0]


def test_a_host_answers_as_a_standalone_esxi_host_sharing_vcenters_state(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*LAB)
    with lab.vsphere() as vc:
        through_vc = {name: vm for name, vm in vms(vc).items() if name.startswith("esx11") or name == "vcsa"}
        uuids = {name: vm.config.instanceUuid for name, vm in through_vc.items()}
        moids = {name: vm._moId for name, vm in through_vc.items()}
    with lab.host_api("esx11") as host:
        assert host.about.apiType == "HostAgent"
        assert host.about.name == "VMware ESXi"
        datacenters = host.rootFolder.childEntity
        assert [dc.name for dc in datacenters] == ["ha-datacenter"]
        assert datacenters[0]._moId == "ha-datacenter"
        assert the_host(host)._moId == "ha-host"
        own = vms(host)
        assert set(own) == set(through_vc), "the host lists its own VMs only"
        assert {name: vm.config.instanceUuid for name, vm in own.items()} == uuids
        assert all(own[n]._moId != moids[n] and own[n]._moId.isdigit() for n in own), "a host has its own VM ids"
        WaitForTask(own["esx11-vm02"].PowerOffVM_Task())
    with lab.vsphere() as vc:
        assert vms(vc)["esx11-vm02"].runtime.powerState == "poweredOff", "a VM powered off through its host is off in vCenter"


def test_a_host_enforces_what_a_real_host_does(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*LAB)
    with lab.host_api("esx12") as host:
        esx = the_host(host)
        with pytest.raises(vim.fault.InvalidState):
            WaitForTask(esx.EnterMaintenanceMode_Task(timeout=0))  # VMs run on it
        with pytest.raises(vim.fault.InvalidState):
            WaitForTask(esx.ShutdownHost_Task(force=False))  # not in maintenance mode
        for vm in vms(host).values():
            WaitForTask(vm.PowerOffVM_Task())
        WaitForTask(esx.EnterMaintenanceMode_Task(timeout=0))
        assert esx.runtime.inMaintenanceMode
        with pytest.raises(vim.fault.InvalidState):
            WaitForTask(vms(host)["esx12-vm01"].PowerOnVM_Task())  # in maintenance mode
        WaitForTask(esx.ShutdownHost_Task(force=False))
    wait_until(lambda: bmc_power(lab, "esx12") == "Off", 10, "esx12 off after its shutdown")
    assert not answers(lab.esxi_url("esx12")), "a server that is off refuses connections on its API port"
    lab.redfish("esx12", "POST", "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset", json={"ResetType": "On"})
    wait_until(lambda: answers(lab.esxi_url("esx12")), 10, "esx12's API answering after its boot")
    with lab.host_api("esx12") as host:
        assert the_host(host).runtime.inMaintenanceMode, "maintenance mode survives the reboot"


def test_wrong_root_password_is_refused(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*LAB)
    url = lab.esxi_url("esx11")
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host="127.0.0.1", port=port, user="root", pwd="not-the-password", sslContext=lab.ssl_context())


def test_vcenter_inside_the_lab_answers_only_while_its_vm_runs(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*LAB)
    assert answers(lab.url)
    with lab.host_api("esx11") as host:
        vcsa = vms(host)["vcsa"]
        WaitForTask(vcsa.PowerOffVM_Task())
        assert not answers(lab.url), "vCenter refuses connections while its VM is off"
        WaitForTask(vcsa.PowerOnVM_Task())
        assert not answers(lab.url), "and while it boots"
        wait_until(lambda: answers(lab.url), 10, "vCenter answering after its boot delay")
    with lab.vsphere() as vc:
        assert vms(vc)["vcsa"].runtime.powerState == "poweredOn"
