"""`labswitch audit`, `check placement` and `fix` against labsim, with every situation planted
through the vSphere API (pyVmomi) and every fix read back through pyVmomi."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import VmomiSupport, vim, vmodl

from tests.conftest import Result
from tests.labsim import MUTATING, Lab, host_state, vm_power

MITIGATION = "VMkernel.Boot.hyperthreadingMitigation"
SUPPRESS = "UserVars.SuppressHyperthreadWarning"
LONG = VmomiSupport.GetVmodlType("long")


def set_option(host: Any, key: str, value: object) -> None:
    host.configManager.advancedOption.UpdateOptions(changedValue=[vim.option.OptionValue(key=key, value=value)])


def option(host: Any, key: str) -> object:
    return host.configManager.advancedOption.QueryOptions(name=key)[0].value


def add_disk(vm: Any, file: str, unit: int, *, create: bool, thin: bool = False, eager: bool = True, multi_writer: bool = True) -> None:
    controller = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.ParaVirtualSCSIController))
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=file,
        diskMode="independent_persistent" if multi_writer else "persistent",
        thinProvisioned=thin,
        eagerlyScrub=eager,
        sharing="sharingMultiWriter" if multi_writer else "sharingNone",
    )
    disk = vim.vm.device.VirtualDisk(key=-100 - unit, controllerKey=controller.key, unitNumber=unit, capacityInKB=1 << 20, backing=backing)
    change = vim.vm.device.VirtualDeviceSpec(operation="add", device=disk, fileOperation="create" if create else None)
    WaitForTask(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])))


def reconfigure(vm: Any, **spec: Any) -> None:
    WaitForTask(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(**spec)))


def findings(cli: Callable[..., Result], lab: Lab, *checks: str) -> set[tuple[str, str, str]]:
    result = cli("--config", str(lab.config), "audit", *checks, "--json", env=lab.env)
    assert result.code == 0, result.stderr
    return {(f["check"], f["severity"], f["target"]) for f in result.json()["findings"]}


PAYLOAD = ["--clusters", "3", "--hosts-per-cluster", "4", "--vms-per-host", "1"]


def test_each_check_finds_exactly_the_planted_cases(lab_factory: Callable[..., Lab], cli: Callable[..., Result]) -> None:
    lab = lab_factory(*PAYLOAD[:-1], "2", "--sgx-hosts", "esx11=enabled,esx12=disabledBIOS", "--vsgx-vms", "esx11-vm01=64,esx12-vm01=32")
    with lab.vsphere() as content:
        hosts = lab.objects(content, vim.HostSystem)
        vms = lab.objects(content, vim.VirtualMachine)
        # l1tf: every host mitigated, then one left open and one open with the warning hidden
        for h in hosts.values():
            set_option(h, MITIGATION, True)
        set_option(hosts["esx13.lab.local"], MITIGATION, False)
        set_option(hosts["esx14.lab.local"], MITIGATION, False)
        set_option(hosts["esx14.lab.local"], SUPPRESS, LONG(1))
        # cbt-unmap: CBT on a thin disk (flagged), plus a thick second disk (not); CBT at vmx-10 (not)
        reconfigure(vms["esx21-vm02"], changeTrackingEnabled=True)
        add_disk(vms["esx21-vm02"], "[datastore1] esx21-vm02/thick.vmdk", 1, create=True, multi_writer=False, eager=False)
        reconfigure(vms["esx22-vm02"], changeTrackingEnabled=True, version="vmx-10")
        # multiwriter: one eager-zeroed disk shared by VMs on 9 hosts; a lazy-zeroed one on 2 VMs, one with a snapshot
        rac = [vms[f"esx{c}{h}-vm01"] for c in (1, 2, 3) for h in (1, 2, 3)]
        shared = "[datastore1] esx11-vm01/rac.vmdk"
        for i, vm in enumerate(rac):
            add_disk(vm, shared, 2, create=i == 0)
        lazy = "[datastore1] esx24-vm01/lazy.vmdk"
        add_disk(vms["esx24-vm01"], lazy, 1, create=True, eager=False)
        add_disk(vms["esx34-vm01"], lazy, 1, create=False, eager=False)
        WaitForTask(vms["esx34-vm01"].CreateSnapshot_Task(name="before-patch", memory=False, quiesce=False))

    found = findings(cli, lab)
    assert found == {
        ("l1tf", "high", "esx13.lab.local"),
        ("l1tf", "critical", "esx14.lab.local"),
        ("cbt-unmap", "medium", "esx21-vm02 / disk-202-0"),
        ("multiwriter", "high", shared),
        ("multiwriter", "medium", "esx24-vm01 / disk-202-1"),
        ("multiwriter", "medium", "esx34-vm01 / disk-202-1"),
        ("multiwriter", "medium", "esx34-vm01"),
        ("sgx", "info", "esx11.lab.local"),
        ("sgx", "info", "esx11-vm01"),
        ("sgx", "low", "esx12.lab.local"),
        ("sgx", "high", "esx12-vm01"),
    }
    # --fail-on and --csv, on the same lab
    csv_path = lab.config.parent / "findings.csv"
    result = cli("--config", str(lab.config), "audit", "multiwriter", "--fail-on", "high", "--csv", str(csv_path), env=lab.env)
    assert result.code == 1
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "check,severity,target,message,fix" and len(rows) == 1 + 4
    assert cli("--config", str(lab.config), "audit", "sgx", "--fail-on", "critical", env=lab.env).code == 0


def test_audit_reads_in_bulk_whatever_the_vm_count(lab_factory: Callable[..., Lab], cli: Callable[..., Result]) -> None:
    counts = []
    for per_host in ("2", "30"):
        lab = lab_factory("--vms-per-host", per_host)
        lab.soap_calls(reset=True)
        assert cli("--config", str(lab.config), "audit", "--json", env=lab.env).code == 0
        counts.append(lab.soap_calls())
    assert counts[0] == counts[1]
    assert counts[0].get("RetrievePropertiesEx") == 2  # the inventory, and every host's options


def shared_on(lab: Lab, hosts_on: int, hosts_off: int) -> str:
    """A multi-writer disk on the vm01 of esx11.., powered on for the first ``hosts_on`` hosts."""
    shared = "[datastore1] esx11-vm01/rac.vmdk"
    with lab.vsphere() as content:
        vms = lab.objects(content, vim.VirtualMachine)
        names = [f"esx{c}{h}-vm01" for c in (1, 2, 3) for h in (1, 2, 3, 4)][: hosts_on + hosts_off]
        for i, name in enumerate(names):
            add_disk(vms[name], shared, 2, create=i == 0)
        for name in names[hosts_on:]:
            WaitForTask(vms[name].PowerOffVM_Task())
    return shared


def placement(cli: Callable[..., Result], lab: Lab, vm: str, host: str) -> tuple[int, dict[str, Any]]:
    result = cli("--config", str(lab.config), "check", "placement", vm, "--host", host, "--json", env=lab.env)
    assert result.code in (0, 1), result.stderr
    return result.code, result.json()


def test_check_placement_at_7_8_and_9_hosts(lab_factory: Callable[..., Lab], cli: Callable[..., Result]) -> None:
    lab = lab_factory(*PAYLOAD)
    shared_on(lab, hosts_on=7, hosts_off=2)  # on: esx11..esx14, esx21..esx23; off: esx24-vm01, esx31-vm01
    code, answer = placement(cli, lab, "esx24-vm01", "esx24.lab.local")  # 7 -> 8
    assert code == 0 and answer["ok"] and answer["disks"][0]["hosts_after"] == 8
    code, answer = placement(cli, lab, "esx24-vm01", "esx11.lab.local")  # a host already counted: stays 7
    assert code == 0 and answer["disks"][0]["hosts_after"] == 7
    with lab.vsphere() as content:
        WaitForTask(lab.objects(content, vim.VirtualMachine)["esx24-vm01"].PowerOnVM_Task())
    code, answer = placement(cli, lab, "esx31-vm01", "esx31.lab.local")  # 8 -> 9
    assert code == 1 and not answer["ok"] and answer["disks"][0]["hosts_now"] == 8 and answer["disks"][0]["hosts_after"] == 9
    text = cli("--config", str(lab.config), "check", "placement", "esx31-vm01", "--host", "esx31.lab.local", env=lab.env)
    assert text.code == 1 and "open on 8 hosts now, 9 after (limit 8): EXCEEDS" in text.stdout
    bad = cli("--config", str(lab.config), "check", "placement", "nosuchvm", "--host", "esx31", env=lab.env)
    assert bad.code == 2 and bad.stderr.count("\n") == 1 and "'nosuchvm': not in vCenter" in bad.stderr


def test_fix_l1tf_dry_run_then_real_read_back(lab: Lab, cli: Callable[..., Result]) -> None:
    args = ["--config", str(lab.config), "fix", "l1tf"]
    lab.soap_calls(reset=True)
    dry = cli(*args, "--mitigate", "--dry-run", "--json", env=lab.env)
    assert dry.code == 0 and dry.json()["intent"] == "fix" and len(dry.json()["steps"]) == 5, dry.stderr
    assert "UpdateOptions" not in lab.soap_calls()
    assert cli(*args, "--mitigate", "esx11", "esx12.lab.local", "--yes", env=lab.env).code == 0
    assert cli(*args, "--suppress-warning", "esx21", "--yes", env=lab.env).code == 0
    with lab.vsphere() as content:
        hosts = lab.objects(content, vim.HostSystem)
        assert option(hosts["esx11.lab.local"], MITIGATION) is True and option(hosts["esx12.lab.local"], MITIGATION) is True
        assert option(hosts["esx21.lab.local"], MITIGATION) is False and option(hosts["esx21.lab.local"], SUPPRESS) == 1
        assert option(hosts["esx22.lab.local"], MITIGATION) is False and option(hosts["esx22.lab.local"], SUPPRESS) == 0
    again = cli(*args, "--mitigate", "esx11", "--yes", env=lab.env)
    assert again.code == 0 and "already" in again.stderr
    assert cli(*args, "esx11", "--yes", env=lab.env).code == 2  # neither --mitigate nor --suppress-warning
    assert cli(*args, "--mitigate", "esx11", env=lab.env).code == 2  # not a terminal, no --yes


def test_fix_l1tf_rolling_reboot_brings_each_host_back_with_its_vms(lab_factory: Callable[..., Lab], cli: Callable[..., Result]) -> None:
    lab = lab_factory("--host-shutdown-delay", "300ms", "--host-boot-delay", "700ms", "--guest-shutdown-delay", "200ms")
    before = vm_power(lab)
    with lab.vsphere() as content:
        WaitForTask(lab.objects(content, vim.VirtualMachine)["esx12-vm02"].PowerOffVM_Task())
    lab.soap_calls(reset=True)
    result = cli("--config", str(lab.config), "fix", "l1tf", "--mitigate", "esx11", "esx12", "--reboot", "--yes", "--json", env=lab.env)
    assert result.code == 0, result.stderr
    calls = lab.soap_calls()
    assert calls.get("RebootHost_Task") == 2 and calls.get("ShutdownGuest") == 3 + 2
    after = vm_power(lab)
    assert after["esx12-vm02"] == "poweredOff"  # it was off before: not started

    # Embedded vCLS agents (8.0 U3) stop with their host's maintenance mode and vCenter starts new ones: compare the rest.
    def kept(states: dict[str, str]) -> dict[str, str]:
        return {n: s for n, s in states.items() if n != "esx12-vm02" and not n.startswith("vCLS-")}

    assert kept(after) == kept(before)
    state = host_state(lab)
    assert state["esx11"] == ("connected", False) and state["esx12"] == ("connected", False)
    with lab.vsphere() as content:
        assert option(lab.objects(content, vim.HostSystem)["esx11.lab.local"], MITIGATION) is True
    # The host running the vCenter VM is refused before anything changes.
    lab.soap_calls(reset=True)
    refused = cli("--config", str(lab.config), "fix", "l1tf", "--mitigate", "mgmt01", "--reboot", "--yes", env=lab.env)
    assert refused.code == 3 and "vcsa is the vCenter" in refused.stderr
    assert not set(lab.soap_calls()) & (MUTATING | {"UpdateOptions"})


def read(content: Any, obj: Any, paths: list[str]) -> dict[str, Any]:
    """Properties through the PropertyCollector (the simulator fails a lazy read of an unset property)."""
    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=obj)], propSet=[pc.PropertySpec(type=type(obj), pathSet=paths)])
    result = content.propertyCollector.RetrievePropertiesEx(specSet=[spec], options=pc.RetrieveOptions())
    return {p.name: p.val for o in result.objects for p in o.propSet}


def snapshots(content: Any, vm: Any) -> list[str]:
    out, todo = [], list(read(content, vm, ["snapshot.rootSnapshotList"]).get("snapshot.rootSnapshotList") or [])
    while todo:
        node = todo.pop()
        out.append(node.name)
        todo += node.childSnapshotList
    return out


def test_fix_cbt_reset(lab: Lab, cli: Callable[..., Result]) -> None:
    with lab.vsphere() as content:
        vms = lab.objects(content, vim.VirtualMachine)
        for name in ("esx11-vm01", "esx11-vm02"):
            reconfigure(vms[name], changeTrackingEnabled=True)
        WaitForTask(vms["esx11-vm02"].CreateSnapshot_Task(name="keep-me", memory=False, quiesce=False))
    args = ["--config", str(lab.config), "fix", "cbt-reset"]
    lab.soap_calls(reset=True)
    assert cli(*args, "esx11-vm01", "--dry-run", env=lab.env).code == 0
    assert not {"ReconfigVM_Task", "CreateSnapshot_Task"} & set(lab.soap_calls())
    refused = cli(*args, "esx11-vm01", "esx11-vm02", "--yes", env=lab.env)
    assert refused.code == 3 and "esx11-vm02 has snapshots" in refused.stderr
    assert not {"ReconfigVM_Task", "CreateSnapshot_Task"} & set(lab.soap_calls())
    done = cli(*args, "esx11-vm01", "--yes", "--json", env=lab.env)
    assert done.code == 0, done.stderr
    calls = lab.soap_calls()
    assert [calls.get(m) for m in ("ReconfigVM_Task", "CreateSnapshot_Task", "RemoveSnapshot_Task")] == [2, 1, 1]
    assert cli(*args, "esx11-vm02", "--with-snapshots", "--yes", env=lab.env).code == 0
    with lab.vsphere() as content:
        vms = lab.objects(content, vim.VirtualMachine)
        assert vms["esx11-vm01"].config.changeTrackingEnabled is True and snapshots(content, vms["esx11-vm01"]) == []
        assert vms["esx11-vm02"].config.changeTrackingEnabled is True and snapshots(content, vms["esx11-vm02"]) == ["keep-me"]
    off = cli(*args, "esx12-vm01", "--yes", env=lab.env)
    assert off.code == 0 and "CBT is off" in off.stderr


def test_sgx_decode_and_local(tmp_path: Path, cli: Callable[..., Result]) -> None:
    from tests.unit.test_audits import TEST_SGX_OUTPUT

    dump = tmp_path / "server.txt"
    dump.write_text(TEST_SGX_OUTPUT)
    result = cli("sgx", "decode", str(dump), "--json")
    assert result.code == 0 and result.json()["outcome"] == "enabled" and result.json()["epc_mb"] == 28
    (tmp_path / "junk.txt").write_text("hello\n")
    bad = cli("sgx", "decode", str(tmp_path / "junk.txt"))
    assert bad.code == 2 and "no CPUID leaf 7" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("sgx", "decode", str(tmp_path / "missing.txt")).code == 2
    local = cli("sgx", "local", "--json")
    assert local.code == 0 and local.json()["outcome"] in {
        "enabled",
        "disabled-in-bios",
        "masked-by-hypervisor",
        "not-in-cpu",
        "absent-or-disabled",
        "absent-or-masked",
    }


@pytest.mark.parametrize("args", [["audit", "--fail-on", "severe"], ["audit", "l1ft"]])
def test_audit_bad_input_is_one_line_and_exit_2(lab: Lab, cli: Callable[..., Result], args: list[str]) -> None:
    result = cli("--config", str(lab.config), *args, env=lab.env)
    assert result.code == 2 and "Traceback" not in result.stderr
