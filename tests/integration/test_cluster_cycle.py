"""A power cycle of vSphere 7/8 clusters with vCLS, vSAN and HA, against labsim; every effect read back
through pyVmomi (and its vSAN bindings) and Redfish, never from labswitch's own report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_down_up import FAST, Run, configure, kill_when, payload, run
from tests.integration.test_labsim_vcls import agents, clusters
from tests.integration.test_labsim_vsan_ha import power_system
from tests.labsim import MUTATING, Lab, bmc_power, host_state, tagged_vms, vm_power

VCLS = ("--vcls",)  # the default for vSphere 8; FAST makes its delays short
LAB = (*FAST, *VCLS, "--vsphere", "8.0.2", "--vsan-clusters", "1", "--ha", "--clusters", "2", "--hosts-per-cluster", "2")
SERVERS = ("esx11", "esx12", "esx21", "esx22")


def settings(lab: Lab) -> dict[str, tuple[bool, str | None, str]]:
    """Cluster name -> (HA enabled, its vCLS setting or None, its vSAN power status or "-"). The vCLS setting is
    systemVMsConfig.deploymentMode from 8.0 U2 (ABSENT: "false", SYSTEM_MANAGED: "true"), else the vCenter option."""
    out = {}
    with lab.vsphere() as content:
        for name, cluster in clusters(content).items():
            key = f"config.vcls.clusters.{cluster._moId}.enabled"
            option = next((str(o.value) for o in content.setting.QueryOptions(key)), None) if _has_option(content, key) else None
            mode = getattr(getattr(cluster.configurationEx, "systemVMsConfig", None), "deploymentMode", None)
            if mode:
                option = {"ABSENT": "false", "SYSTEM_MANAGED": "true"}[mode]
            vsan = cluster.configurationEx.vsanConfigInfo
            power = power_system(content, lab).QueryClusterPowerContext(cluster=cluster).currentClusterPowerStatus if vsan else "-"
            out[name] = (bool(cluster.configurationEx.dasConfig.enabled), option, power)
    return out


def _has_option(content: Any, key: str) -> bool:
    return any(o.key == key for o in content.setting.setting)


def running_agents(lab: Lab) -> int:
    with lab.vsphere() as content:
        return sum(1 for vm in agents(content).values() if vm.runtime.powerState == "poweredOn")


def test_vsphere_8_lab_with_vcls_vsan_and_ha_cycles_and_comes_back_as_it_was(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab = lab_factory(*LAB)
    config = configure(lab)
    before = settings(lab)
    assert before == {"Cluster1": (True, "true", "clusterPoweredOn"), "Cluster2": (True, "true", "-")}
    assert running_agents(lab) == 4
    startup = {n for n in tagged_vms(lab) if n.startswith("esx")}

    plan = run(cli, lab, state_dir, config, "plan", "down", "--json")
    assert plan.code == 0, plan.stderr
    actions = {(s["action"], s["target"]) for s in plan.json()["steps"]}
    assert {("disable-ha", "Cluster1"), ("vcls-retreat", "Cluster1"), ("vsan-power-off", "Cluster1")} <= actions
    assert {("disable-ha", "Cluster2"), ("vcls-retreat", "Cluster2"), ("enter-maintenance", "esx21")} <= actions
    assert ("enter-maintenance", "esx11") not in actions, "vSAN's power action puts Cluster1's hosts in maintenance"

    down = run(cli, lab, state_dir, config, "down", "--yes")
    assert down.code == 0, down.stderr
    assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}
    assert bmc_power(lab, "mgmt01") == "On"
    assert settings(lab) == {"Cluster1": (False, "false", "clusterPoweredOff"), "Cluster2": (False, "false", "-")}
    status = run(cli, lab, state_dir, config, "status", "--json")
    assert {(c["cluster"], c["setting"]) for c in status.json()["cluster_changes"]} == {
        ("Cluster1", "ha"),
        ("Cluster1", "vcls"),
        ("Cluster1", "vsan-power"),
        ("Cluster2", "ha"),
        ("Cluster2", "vcls"),
    }

    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert all(host_state(lab)[s] == ("connected", False) for s in SERVERS)
    assert settings(lab) == {"Cluster1": (True, "true", "clusterPoweredOn"), "Cluster2": (True, "true", "-")}
    assert running_agents(lab) == 4
    assert {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"} == startup
    assert run(cli, lab, state_dir, config, "status", "--json").json()["cluster_changes"] == []


def test_vcls_defeats_a_naive_shutdown(lab_factory: Callable[..., Lab], state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proof the test above would catch labswitch treating agents as workload or skipping retreat mode:
    the same lab with labswitch's vCLS handling turned off (in-process) never gets a host into maintenance."""
    from labswitch.config import load
    from labswitch.plan import Intent
    from labswitch.plan import clusters as plan_clusters
    from labswitch.usecases import power

    lab = lab_factory(*FAST, *VCLS, "--vsphere", "8.0.2", "--clusters", "1", "--hosts-per-cluster", "2", "--vms-per-host", "1")
    config = configure(lab, policy="maintenance_timeout = 5\n")
    monkeypatch.setenv("XDG_STATE_HOME", str(state_dir))
    for key, value in lab.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(plan_clusters, "has_vcls", lambda api: False)  # the handling, disabled
    outcome = power.execute(load(config), power.Request(Intent.DOWN), lambda plan: True, lambda kind, data: None)
    assert not outcome.ok
    assert not any(r.action == "vcls-retreat" for r in outcome.results)
    assert any(r.action == "enter-maintenance" and r.status == "failed" for r in outcome.results)
    stuck = [s for s, (_, maintenance) in host_state(lab).items() if s in ("esx11", "esx12") and not maintenance]
    assert len(stuck) == 1, "the cluster's last host never reaches maintenance mode"
    assert bmc_power(lab, stuck[0]) == "On"
    with lab.vsphere() as content:
        where = {vm.runtime.host.name.split(".")[0] for vm in agents(content).values() if vm.runtime.powerState == "poweredOn"}
    assert where == set(stuck), "EAM keeps both agents running there"


def test_a_vsan_cluster_going_down_in_part_is_refused_with_nothing_changed(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab = lab_factory(*FAST, *VCLS, "--vsan-clusters", "1", "--clusters", "1", "--hosts-per-cluster", "2", "--vms-per-host", "1")
    config = configure(
        lab,
        replace=(
            ('name = "esx12"\nesxi = "esx12.lab.local"\ngroup = "payload"', 'name = "esx12"\nesxi = "esx12.lab.local"\ngroup = "half"'),
        ),
    )
    config.write_text(config.read_text() + "\n[groups.half]\n")
    before = vm_power(lab)
    lab.soap_calls(reset=True)
    down = run(cli, lab, state_dir, config, "down", "--group", "half", "--yes")
    assert down.code == 3, down.stderr
    assert "vSAN cluster" in down.stderr and "--vsan-no-action" in down.stderr and "Traceback" not in down.stderr
    assert vm_power(lab) == before
    assert not MUTATING & set(lab.soap_calls())
    risky = run(cli, lab, state_dir, config, "plan", "down", "--group", "half", "--vsan-no-action", "--json")
    assert risky.code == 0, risky.stderr
    assert ("enter-maintenance-no-action", "esx12") in {(s["action"], s["target"]) for s in risky.json()["steps"]}


def test_a_down_killed_after_retreat_mode_is_finished_and_up_restores(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*FAST[:4], "--guest-shutdown-delay", "300ms", "--vsphere", "8.0.2", "--vcls-delay", "2s", "--ha", "--clusters", "1")
    config = configure(lab)
    kill_when(lab, state_dir, config, lambda: settings(lab)["Cluster1"][1] == "false", "retreat mode set by the down")
    assert settings(lab)["Cluster1"][0] is False, "HA was turned off before retreat mode"
    assert {bmc_power(lab, s) for s in ("esx11", "esx12")} == {"On"}, "killed before the hosts went down"
    status = run(cli, lab, state_dir, config, "status", "--json")
    assert {(c["setting"], c["previous"]) for c in status.json()["cluster_changes"]} == {("ha", "true"), ("vcls", "true")}
    again = run(cli, lab, state_dir, config, "down", "--yes")
    assert again.code == 0, again.stderr
    assert {bmc_power(lab, s) for s in ("esx11", "esx12")} == {"Off"}
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert settings(lab)["Cluster1"] == (True, "true", "-"), "the values from before the first down, not the interrupted one's"
    assert running_agents(lab) == 2


def test_a_down_whose_cluster_changes_are_not_permitted_is_refused_before_any_change(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab = lab_factory(*FAST, "--vsphere", "7.0.3", "--ha", "--clusters", "1", "--vms-per-host", "1", "--deny-privileges", "Global.Settings")
    config = configure(lab)
    before = vm_power(lab)
    lab.soap_calls(reset=True)
    down = run(cli, lab, state_dir, config, "down", "--yes")
    assert down.code == 3, down.stderr
    assert "lacks privilege Global.Settings on vCenter (vcls-retreat Cluster1)" in down.stderr and "Traceback" not in down.stderr
    assert vm_power(lab) == before
    assert not MUTATING & set(lab.soap_calls())
    assert settings(lab)["Cluster1"] == (True, None, "-")
