"""`labswitch status` against labsim; every claim read back through pyVmomi and Redfish directly."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pyVmomi import vim

from tests.conftest import Result
from tests.labsim import Lab, tagged_vms

Run = Callable[..., Result]


def run_status(cli: Run, lab: Lab, config: Path | None = None, extra_env: dict[str, str] | None = None) -> Result:
    return cli("--config", str(config or lab.config), "status", "--json", env={**lab.env, **(extra_env or {})})


def test_status_json_matches_vcenter_and_bmcs(cli: Run, lab: Lab) -> None:
    result = run_status(cli, lab)
    assert result.code == 0, result.stderr
    data = result.json()  # stdout is JSON only
    assert set(data) == {"hosts", "vms", "cluster_changes", "vcenter", "notes"} and data["cluster_changes"] == [] and data["notes"] == []

    with lab.vsphere() as content:
        hosts = lab.objects(content, vim.HostSystem)
        vms = lab.objects(content, vim.VirtualMachine)
        truth_vms = {
            name: (vm.runtime.powerState, vm.guest.toolsRunningStatus == "guestToolsRunning", vm.runtime.host.name)
            for name, vm in vms.items()
        }
        truth_hosts = {name: (h.runtime.connectionState, h.runtime.inMaintenanceMode, h.parent.name) for name, h in hosts.items()}

    assert {h["esxi"] for h in data["hosts"]} == set(truth_hosts)
    center = data["vcenter"]  # found by its guest address (vCenter's), on the host pyVmomi says it runs on
    assert center["state"] == "up" and center["vm"] == "vcsa", center
    assert next(h["esxi"] for h in data["hosts"] if h["name"] == center["host"]) == truth_vms["vcsa"][2]
    for h in data["hosts"]:
        conn, maint, parent = truth_hosts[h["esxi"]]
        assert set(h) >= {"name", "group", "cluster", "connection_state", "in_maintenance", "bmc_power"}
        assert (h["connection_state"], h["in_maintenance"]) == (conn, maint)
        assert h["group"] == ("mgmt" if h["name"].startswith("mgmt") else "payload")
        assert h["cluster"] == (None if h["group"] == "mgmt" else parent)
        assert h["bmc_power"] == lab.redfish(h["name"]).json()["PowerState"]

    assert {v["name"] for v in data["vms"]} == set(truth_vms)
    esxi_of = {h["name"]: h["esxi"] for h in data["hosts"]}
    for v in data["vms"]:
        power, tools, host = truth_vms[v["name"]]
        assert (v["power_state"], v["tools_running"], esxi_of[v["host"]]) == (power, tools, host)


def test_status_tags_match_the_tagging_api(cli: Run, lab: Lab) -> None:
    data = run_status(cli, lab).json()
    shown = {v["name"] for v in data["vms"] if "Lab/StartUp" in v["tags"]}
    assert shown and shown == tagged_vms(lab)


def test_status_follows_a_server_switched_off_at_its_bmc(cli: Run, lab: Lab) -> None:
    assert (
        lab.redfish(
            "esx11", "POST", "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset", json={"ResetType": "ForceOff"}
        ).status_code
        == 204
    )
    data = run_status(cli, lab).json()
    host = next(h for h in data["hosts"] if h["name"] == "esx11")
    assert (host["bmc_power"], host["connection_state"]) == ("Off", "notResponding")
    assert {v["power_state"] for v in data["vms"] if v["host"] == "esx11"} == {"poweredOff"}
    with lab.vsphere() as content:
        assert lab.objects(content, vim.HostSystem)["esx11.lab.local"].runtime.connectionState == "notResponding"


def test_human_output_is_a_table(cli: Run, lab: Lab) -> None:
    result = cli("--config", str(lab.config), "status", env=lab.env)
    assert result.code == 0, result.stderr
    # 3 VMs and one of Cluster1's two vCLS agents
    assert re.search(r"esx11\s+payload\s+Cluster1\s+connected\s+no\s+On\s+4/4", result.stdout)
    assert "vcsa" in result.stdout


def test_reads_are_bulk_whatever_the_vm_count(cli: Run, lab_factory: Callable[..., Lab]) -> None:
    counts = []
    for vms in ("2", "40"):
        lab = lab_factory("--vms-per-host", vms)
        lab.soap_calls(reset=True)
        assert run_status(cli, lab).code == 0
        counts.append(lab.soap_calls())
    small, large = counts
    assert large.get("RetrievePropertiesEx", 0) >= 1, large  # the bulk read was counted
    assert small == large, f"SOAP calls grew with the VM count: {small} vs {large}"
    assert sum(large.values()) <= 12


@pytest.mark.parametrize(("release", "manager", "embedded"), [("8.0.2", "com.vmware.vim.eam", False), ("8.0.3", "VirtualCenter", True)])
def test_status_marks_vcls_agents_by_their_manager(
    cli: Run, lab_factory: Callable[..., Lab], release: str, manager: str, embedded: bool
) -> None:
    lab = lab_factory("--vsphere", release, "--clusters", "2", "--hosts-per-cluster", "2", "--vms-per-host", "1")
    with lab.vsphere() as content:
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        managed = {vm.name for vm in view.view if vm.config.managedBy and vm.config.managedBy.extensionKey == manager}
    assert len(managed) == 4, "2 agents per 2-host cluster: EAM's (min(3, hosts)) or 8.0 U3's embedded ones (at most 2)"
    result = run_status(cli, lab)
    assert result.code == 0, result.stderr
    vms = result.json()["vms"]
    assert {v["name"] for v in vms if v["system"] == "vcls"} == managed
    assert all(v["embedded"] is embedded for v in vms if v["name"] in managed)
    assert all(v["system"] is None for v in vms if v["name"] not in managed)
