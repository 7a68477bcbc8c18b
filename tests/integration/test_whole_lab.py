"""The whole lab, vCenter included: a 3-host cluster whose vCenter (and the DNS VM it needs) runs inside it,
against labsim; every effect read back through pyVmomi on vCenter and on the hosts themselves, Redfish and
plain TCP, never from labswitch's own report."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from pyVmomi import vim

from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, Run, configure, kill_when, run
from tests.integration.test_labsim_esxi import vms
from tests.integration.test_labsim_vcls import clusters
from tests.labsim import MUTATING, Lab, answers, bmc_power, host_state, tagged_vms, vm_power

SERVERS = ("esx11", "esx12", "esx13")
LAB = (*FAST, "--clusters", "1", "--hosts-per-cluster", "3", "--vms-per-host", "2", "--ha")
LAB += ("--vcenter-vm-on", "payload", "--dns-vm", "--vcenter-boot-delay", "1s")
DEPS = 'vcenter_dependencies = ["dns*"]\nvcenter_boot_timeout = 30\n'


def whole_lab(lab_factory: Callable[..., Lab], *extra: str) -> tuple[Lab, Path]:
    lab = lab_factory(*LAB, *extra)
    return lab, configure(lab, DEPS)


def all_off(lab: Lab) -> bool:
    return all(bmc_power(lab, s) == "Off" for s in SERVERS)


def expected_on(lab: Lab) -> set[str]:
    """After an up: the payload VMs tagged StartUp, vCenter and what it needs."""
    return {n for n in tagged_vms(lab) if n.startswith("esx")} | {"vcsa", "dns01"}


def assert_back(lab: Lab, wanted: set[str]) -> None:
    assert answers(lab.url), "vCenter answers"
    assert {s: host_state(lab)[s] for s in SERVERS} == {s: ("connected", False) for s in SERVERS}
    on = {n for n, p in vm_power(lab).items() if p == "poweredOn" and not n.startswith(("vCLS", "mgmt"))}
    assert on == wanted
    with lab.vsphere() as content:
        assert clusters(content)["Cluster1"].configurationEx.dasConfig.enabled, "HA is on again"


def whole_lab_record(state: Path) -> list[tuple[str, str, str, str | None]]:
    """The journal's record of vCenter's host, read from the SQLite file itself."""
    with sqlite3.connect(state / "labswitch" / "journal.sqlite3") as db:
        return list(db.execute("SELECT server, role, vm_name, finished_by FROM whole_lab ORDER BY ord"))


def test_whole_lab_down_and_up_with_vcenter_inside(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab, config = whole_lab(lab_factory)
    wanted = expected_on(lab)
    with lab.vsphere() as content:
        uuid = {n: vm.config.instanceUuid for n, vm in lab.objects(content, vim.VirtualMachine).items()}

    refused = run(cli, lab, state_dir, config, "plan", "down")
    assert refused.code == 3
    assert "vcsa is the vCenter" in refused.stderr and "--whole-lab" in refused.stderr

    plan = run(cli, lab, state_dir, config, "plan", "down", "--whole-lab", "--json")
    assert plan.code == 0, plan.stderr
    steps = plan.json()["steps"]
    direct = [(s["action"], s["target"]) for s in steps if s["endpoint"] == "esxi:esx11"]
    assert direct == [
        ("shutdown-guest", "vcsa"),
        ("shutdown-guest", "dns01"),
        ("enter-maintenance", "esx11"),
        ("shutdown-host", "esx11"),
    ]
    assert all(s["endpoint"] in ("vcenter", f"bmc:{s['target']}", "esxi:esx11") for s in steps)
    assert {s["id"] for s in steps if s["endpoint"] == "esxi:esx11" and s["target"] == "vcsa"} == {f"shutdown-guest:uuid:{uuid['vcsa']}"}

    down = run(cli, lab, state_dir, config, "down", "--whole-lab", "--yes")
    assert down.code == 0, down.stderr
    assert all_off(lab)
    assert bmc_power(lab, "mgmt01") == "On"
    assert not answers(lab.url), "vCenter is off with its host"
    assert whole_lab_record(state_dir) == [("esx11", "vcenter", "vcsa", None), ("esx11", "dependency", "dns01", None)]
    status = run(cli, lab, state_dir, config, "status", "--json")
    assert status.code == 0, status.stderr
    assert any("vCenter is off: the whole-lab down" in n and "on esx11" in n for n in status.json()["notes"])
    assert {h["name"]: h["bmc_power"] for h in status.json()["hosts"]} == {"mgmt01": "On", "esx11": "Off", "esx12": "Off", "esx13": "Off"}

    plan_up = run(cli, lab, state_dir, config, "plan", "up", "--json")
    assert plan_up.code == 0, plan_up.stderr
    assert [s["action"] for s in plan_up.json()["steps"] if s["endpoint"] == "esxi:esx11"] == [
        "exit-maintenance",
        "power-on-vm",
        "wait-tools",
        "power-on-vm",
    ]

    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert_back(lab, wanted)
    assert {r[3] for r in whole_lab_record(state_dir)} != {None}, "the up marked the whole-lab down as undone"

    again = run(cli, lab, state_dir, config, "up", "--yes")
    assert again.code == 0, again.stderr
    assert "nothing to do" in again.stdout


def test_interrupted_before_vcenter_stops_and_during_its_boot(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab, config = whole_lab(lab_factory, "--host-shutdown-delay", "2s", "--vcenter-boot-delay", "3s")
    wanted = expected_on(lab)
    lab.soap_calls(reset=True)
    shutting_down = lambda: lab.soap_calls().get("ShutdownHost_Task", 0) > 0  # noqa: E731
    kill_when(lab, state_dir, config, shutting_down, "hosts shutting down", ("down", "--whole-lab", "--yes"))
    assert answers(lab.url), "killed before vCenter stopped"
    down = run(cli, lab, state_dir, config, "down", "--whole-lab", "--yes")
    assert down.code == 0, down.stderr
    assert all_off(lab)

    def vcenter_vm_started() -> bool:
        if not answers(lab.esxi_url("esx11")):
            return False
        with lab.host_api("esx11") as host:
            return bool(vms(host)["vcsa"].runtime.powerState == "poweredOn")

    kill_when(lab, state_dir, config, vcenter_vm_started, "vCenter's VM started", ("up", "--yes"))
    assert not answers(lab.url), "killed while vCenter boots"
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert_back(lab, wanted)


def test_interrupted_after_vcenter_stopped(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab, config = whole_lab(lab_factory, "--guest-shutdown-delay", "1s")
    wanted = expected_on(lab)
    kill_when(lab, state_dir, config, lambda: not answers(lab.url), "vCenter stopped", ("down", "--whole-lab", "--yes"))
    assert bmc_power(lab, "esx11") == "On"
    down = run(cli, lab, state_dir, config, "down", "--whole-lab", "--yes")
    assert down.code == 0, down.stderr
    assert "finished through esx11" in down.stderr
    assert all_off(lab)
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert_back(lab, wanted)


def test_vcenters_host_never_answering_is_a_bounded_clear_failure(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab, config = whole_lab(lab_factory)
    wanted = expected_on(lab)
    assert run(cli, lab, state_dir, config, "down", "--whole-lab", "--yes").code == 0
    real = lab.esxi_url("esx11")
    dead = config.with_name("dead.toml")
    text = config.read_text().replace(real, "https://127.0.0.1:9")
    dead.write_text(text.replace("host_connect_timeout = 10", "host_connect_timeout = 3"))
    up = run(cli, lab, state_dir, dead, "up", "--yes")
    assert up.code == 1
    assert "failed: exit-maintenance esx11: host esx11 https://127.0.0.1:9/sdk: cannot reach" in up.stdout, up.stdout
    assert "(no answer for 3s)" in up.stdout
    assert "Traceback" not in up.stderr
    assert not answers(lab.url), "vCenter stays off"
    for server in SERVERS:  # powered on by their BMCs, as planned; nothing started on them
        wait_until(lambda server=server: answers(lab.esxi_url(server)), 10, f"{server}'s API")
        with lab.host_api(server) as host:
            assert {vm.runtime.powerState for vm in vms(host).values()} == {"poweredOff"}
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert_back(lab, wanted)


def test_bad_input_for_a_whole_lab_down_changes_nothing(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab, config = whole_lab(lab_factory)
    before = (vm_power(lab), [bmc_power(lab, s) for s in SERVERS])
    text = config.read_text()
    esxi = text[text.index("[esxi]") : text.index("[policy]")]
    cases = {
        "no-esxi.toml": (text.replace(esxi, ""), 2, "add [esxi]"),
        "wrong-password.toml": (text, 1, "login refused for user 'root'; check esxi.user and esxi.password"),
        "untrusted.toml": (text.replace(esxi, esxi.replace(f'tls = {{ thumbprint = "{lab.thumbprint}" }}\n', "")), 1, "not trusted"),
    }
    lab.soap_calls(reset=True)
    for name, (content, code, says) in cases.items():
        path = config.with_name(name)
        path.write_text(content)
        env_lab = lab
        if name == "wrong-password.toml":
            env_lab = Lab(lab.proc, lab.url, lab.thumbprint, {**lab.env, "LABSIM_ESXI_PASSWORD": "wrong"}, lab.config, lab.cert)
        result = run(cli, env_lab, state_dir, path, "down", "--whole-lab", "--yes")
        assert result.code == code, (name, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and says in lines[0], (name, result.stderr)
        assert "wrong" not in result.stderr and lab.env["LABSIM_ESXI_PASSWORD"] not in result.stderr
    calls = lab.soap_calls()
    assert not MUTATING & set(calls) and not any(c.startswith("esxi:") and c.split(":")[1] in MUTATING for c in calls)
    assert (vm_power(lab), [bmc_power(lab, s) for s in SERVERS]) == before


def test_vcenter_on_vsan_goes_down_before_its_clusters_hosts_and_comes_back_after_them(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab, config = whole_lab(lab_factory, "--vsan-clusters", "1")
    wanted = expected_on(lab)
    plan = run(cli, lab, state_dir, config, "plan", "down", "--whole-lab", "--json")
    assert plan.code == 0, plan.stderr
    steps = plan.json()["steps"]
    assert "vsan-power-off" not in {s["action"] for s in steps}, "vSAN's power action would take vCenter's storage from under it"
    entering = {s["target"]: s["endpoint"] for s in steps if s["action"].startswith("enter-maintenance")}
    assert entering == {s: f"esxi:{s}" for s in SERVERS}
    assert {s["action"] for s in steps if s["action"].startswith("enter-maintenance")} == {"enter-maintenance-no-action"}

    down = run(cli, lab, state_dir, config, "down", "--whole-lab", "--yes")
    assert down.code == 0, down.stderr
    assert all_off(lab)
    assert [(r[0], r[1]) for r in whole_lab_record(state_dir)] == [
        ("esx11", "vcenter"),
        ("esx11", "dependency"),
        ("esx12", "peer"),
        ("esx13", "peer"),
    ]
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert_back(lab, wanted)
