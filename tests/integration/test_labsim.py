"""labsim behaves as the lab it stands for: checked through pyVmomi and Redfish, not through labswitch."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from pyVmomi import vim

from tests.conftest import wait_until
from tests.labsim import Lab

RESET = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset"
FAST = ("--host-boot-delay", "1s", "--host-shutdown-delay", "500ms", "--guest-shutdown-delay", "300ms", "--tools-delay", "100ms")


def wait_task(task: vim.Task) -> None:
    wait_until(lambda: task.info.state in ("success", "error"), 10, f"task {task.info.key}")


def test_bmc_on_when_on_is_an_idrac_409(lab: Lab) -> None:
    r = lab.redfish("esx11", "POST", RESET, json={"ResetType": "On"})
    assert r.status_code == 409
    assert "already powered ON" in r.text


def test_bmc_rejects_wrong_password_and_accepts_sessions(lab: Lab) -> None:
    import requests

    url = lab.bmc_url("esx11")
    assert requests.get(url + "/redfish/v1/Systems", auth=("root", "wrong"), verify=str(lab.cert), timeout=10).status_code == 401
    login = requests.post(
        url + "/redfish/v1/SessionService/Sessions",
        json={"UserName": "root", "Password": lab.env["LABSIM_BMC_PASSWORD"]},
        verify=str(lab.cert),
        timeout=10,
    )
    assert login.status_code == 201
    token = login.headers["X-Auth-Token"]
    system = requests.get(url + "/redfish/v1/Systems/System.Embedded.1", headers={"X-Auth-Token": token}, verify=str(lab.cert), timeout=10)
    assert system.json()["PowerState"] == "On"


def test_host_shutdown_needs_maintenance_then_the_bmc_goes_off(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*FAST)
    with lab.vsphere() as content:
        host = lab.objects(content, vim.HostSystem)["esx11.lab.local"]
        task = host.ShutdownHost_Task(force=False)
        wait_task(task)
        assert isinstance(task.info.error, vim.fault.InvalidState)

        with pytest.raises(vim.fault.InvalidState):  # VMs still run: no DRS to move them
            wait_task(host.EnterMaintenanceMode_Task(timeout=0))
        for vm in host.vm:
            wait_task(vm.PowerOffVM_Task())
        wait_task(host.EnterMaintenanceMode_Task(timeout=0))
        wait_task(host.ShutdownHost_Task(force=False))
        wait_until(lambda: lab.redfish("esx11").json()["PowerState"] == "Off", 10, "BMC off after host shutdown")
        assert host.runtime.connectionState == "notResponding"

        assert lab.redfish("esx11", "POST", RESET, json={"ResetType": "On"}).status_code == 204
        wait_until(lambda: host.runtime.connectionState == "connected", 10, "host reconnected after boot")
        assert host.runtime.inMaintenanceMode  # kept across the reboot, as ESXi does
        with pytest.raises(vim.fault.InvalidState):  # no VM starts on a host in maintenance
            wait_task(host.vm[0].PowerOnVM_Task())


def test_guest_shutdown_toolless_and_hung(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(*FAST, "--toolless-fraction", "0.34", "--hung-fraction", "0.34", "--seed", "7")
    with lab.vsphere() as content:
        vms = [vm for name, vm in lab.objects(content, vim.VirtualMachine).items() if name != "vcsa"]
        toolless = [vm for vm in vms if vm.guest.toolsRunningStatus != "guestToolsRunning"]
        assert toolless, "the seed should make some VMs toolless"
        with pytest.raises(vim.fault.ToolsUnavailable):
            toolless[0].ShutdownGuest()
        with_tools = [vm for vm in vms if vm not in toolless]
        for vm in with_tools:
            vm.ShutdownGuest()
        wait_until(lambda: sum(vm.runtime.powerState == "poweredOff" for vm in with_tools) > 0, 10, "some guests off")
        stays_on = [vm for vm in with_tools if vm.runtime.powerState == "poweredOn"]
        assert stays_on, "the seed should make some VMs hung"


def test_bmc_force_off_stops_the_vms_and_watts_follow(lab: Lab) -> None:
    power = "/redfish/v1/Chassis/System.Embedded.1/Power"
    watts_on = lab.redfish("esx12", path=power).json()["PowerControl"][0]["PowerConsumedWatts"]
    assert watts_on > 70
    assert lab.redfish("esx12", "POST", RESET, json={"ResetType": "ForceOff"}).status_code == 204
    assert lab.redfish("esx12", path=power).json()["PowerControl"][0]["PowerConsumedWatts"] == 0
    with lab.vsphere() as content:
        host = lab.objects(content, vim.HostSystem)["esx12.lab.local"]
        assert {vm.runtime.powerState for vm in host.vm} == {"poweredOff"}


def test_jitter_draws_each_delay_once_and_the_lab_keeps_to_it(lab_factory: Callable[..., Lab]) -> None:
    args = ("--guest-shutdown-delay", "1s", "--guest-shutdown-jitter", "3s", "--host-boot-delay", "1s", "--host-boot-jitter", "2s")
    lab = lab_factory(*args, "--seed", "5")
    physical = lab.physical()
    guests = {vm: s for h in physical["hosts"].values() for vm, s in h["guest_shutdown_seconds"].items()}
    boots = {name: h["boot_seconds"] for name, h in physical["hosts"].items()}
    assert all(1 <= s < 4 for s in guests.values()) and len(set(guests.values())) == len(guests)
    assert all(1 <= s < 3 for s in boots.values())
    assert lab_factory(*args, "--seed", "5").physical() == physical  # seeded: the same lab twice
    slowest = max((vm for vm in guests if vm.startswith("esx")), key=guests.__getitem__)
    with lab.vsphere() as content:
        vm = lab.objects(content, vim.VirtualMachine)[slowest]
        lab.soap_calls(reset=True)
        asked = time.time()
        start = time.monotonic()
        vm.ShutdownGuest()
        assert asked <= lab.first_calls()["ShutdownGuest"] <= time.time()
        wait_until(lambda: vm.runtime.powerState == "poweredOff", 10, f"{slowest} off")
        took = time.monotonic() - start
    assert guests[slowest] - 0.2 <= took <= guests[slowest] + 1.5


def test_a_slow_guest_takes_its_own_time(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory("--guest-shutdown-delay", "300ms", "--slow-guests", "esx11-vm02=3s")
    guests = {vm: s for h in lab.physical()["hosts"].values() for vm, s in h["guest_shutdown_seconds"].items()}
    assert guests["esx11-vm02"] == 3 and all(s == 0.3 for vm, s in guests.items() if vm != "esx11-vm02")
    with lab.vsphere() as content:
        vms = lab.objects(content, vim.VirtualMachine)
        slow, quick = vms["esx11-vm02"], vms["esx11-vm01"]
        start = time.monotonic()
        slow.ShutdownGuest()
        quick.ShutdownGuest()
        wait_until(lambda: quick.runtime.powerState == "poweredOff", 10, "the quick guest off")
        assert slow.runtime.powerState == "poweredOn", "the slow guest went off with the quick one"
        wait_until(lambda: slow.runtime.powerState == "poweredOff", 10, "the slow guest off")
    assert time.monotonic() - start >= 2.8


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (("--slow-guests", "nosuch=1s"), 'labsim: --slow-guests: no VM named "nosuch"'),
        (("--vsphere", "9"), 'labsim: --vsphere must be one of 6.7, 7.0.3, 8.0.2, 8.0.3, 9.0, not "9"'),
        (("--vsphere", "6.7", "--vcls"), "labsim: --vcls: vSphere 6.7 has no vCLS (7.0 U1 and later)"),
    ],
)
def test_a_flag_labsim_cannot_honour_is_refused_in_one_line(flags: tuple[str, ...], line: str) -> None:
    import subprocess

    from tests.labsim import labsim_binary

    proc = subprocess.run([str(labsim_binary()), *flags], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and proc.stderr.strip() == line


@pytest.mark.parametrize(("release", "api"), [("6.7", "6.7.3"), ("7.0.3", "7.0.3.0"), ("8.0.2", "8.0.2.0")])
def test_vsphere_release_is_what_vcenter_reports(lab_factory: Callable[..., Lab], release: str, api: str) -> None:
    lab = lab_factory("--vsphere", release, "--clusters", "1", "--hosts-per-cluster", "1", "--vms-per-host", "1")
    with lab.vsphere() as content:
        assert (content.about.apiVersion, content.about.version) == (api, {"6.7": "6.7.0"}.get(release, release))
        assert release in content.about.fullName
