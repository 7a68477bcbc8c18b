"""Servers without a BMC in one lab with iDRACs: esx11 woken by Wake-on-LAN, esx12 powered by a Shelly plug (its
relay cut after a down), esx22 powered by a Tasmota plug, esx21 an iDRAC whose watts a Shelly plug measures.
Read back through pyVmomi, labsim's UDP log and physical model, and the plugs' own APIs — never labswitch's report."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from requests.auth import HTTPDigestAuth

from tests.integration.test_down_up import FAST, Run, configure, payload, run
from tests.labsim import Lab, host_state, vm_power

LAB = (*FAST, "--wol-hosts", "esx11", "--plug-hosts", "esx12,esx22=tasmota", "--meter-hosts", "esx21")
SERVERS = ("esx11", "esx12", "esx21", "esx22")


def physical(lab: Lab) -> dict[str, str]:
    r = requests.get(lab.url.replace("/sdk", "/labsim/physical"), verify=str(lab.cert), timeout=10)
    return {name: h["power"] for name, h in r.json()["hosts"].items()}


def wol_log(lab: Lab) -> dict[str, int]:
    r = requests.get(lab.url.replace("/sdk", "/labsim/wol"), verify=str(lab.cert), timeout=10)
    return dict(r.json())


def servers(lab: Lab) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in tomllib.loads(lab.config.read_text())["servers"]}


def shelly(lab: Lab, address: str) -> dict[str, Any]:
    """The plug's own Switch.GetStatus (Shelly Gen2 RPC, digest auth as user admin)."""
    auth = HTTPDigestAuth("admin", lab.env["LABSIM_BMC_PASSWORD"])
    return dict(requests.get(f"{address}/rpc/Switch.GetStatus", params={"id": 0}, auth=auth, timeout=10).json())


def test_a_lab_mixing_idracs_wake_on_lan_and_plugs_cycles(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*LAB)
    entries = servers(lab)
    plug12, meter21 = entries["esx12"]["bmc"]["address"], entries["esx21"]["meter"]["address"]
    config = configure(
        lab,
        replace=(
            (
                f'bmc = {{ driver = "shelly", address = "{plug12}"',
                f'bmc = {{ driver = "shelly", cut_after_shutdown = true, address = "{plug12}"',
            ),
        ),
    )
    before = {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"}

    watts = run(cli, lab, state_dir, config, "bmc", "watts", "--json")
    by_server = {w["server"]: w for w in watts.json()}
    assert by_server["esx21"]["watts"] == shelly(lab, meter21)["apower"], "the meter, not the iDRAC, measures esx21"
    assert "Wake-on-LAN reports no power draw" in by_server["esx11"]["error"]

    down = run(cli, lab, state_dir, config, "down", "--yes")
    assert down.code == 0, down.stderr
    assert {s: physical(lab)[s] for s in SERVERS} == dict.fromkeys(SERVERS, "Off")
    assert shelly(lab, plug12)["output"] is False, "esx12's relay is cut: no standby draw"
    assert shelly(lab, meter21)["output"] is True and 0 < shelly(lab, meter21)["apower"] < 15, "a meter only measures: standby draw"

    up = run(cli, lab, state_dir, config, "up", "--restore", "--yes")
    assert up.code == 0, up.stderr
    assert {s: physical(lab)[s] for s in SERVERS} == dict.fromkeys(SERVERS, "On")
    assert wol_log(lab).get(entries["esx11"]["bmc"]["mac"], 0) >= 1, "esx11 was woken by a magic packet with its MAC"
    assert shelly(lab, plug12)["output"] is True
    assert all(host_state(lab)[s] == ("connected", False) for s in SERVERS)
    assert {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"} == before


def test_bad_input_for_servers_without_a_bmc(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*LAB)
    mac = servers(lab)["esx11"]["bmc"]["mac"]
    malformed = configure(lab, replace=((f'mac = "{mac}"', 'mac = "02:00:5e:00:00"'),))
    result = run(cli, lab, state_dir, malformed, "down", "--yes")
    assert result.code == 2 and result.stderr.count("\n") == 1 and "servers[1].bmc.mac: must be a MAC address" in result.stderr
    plug12 = servers(lab)["esx12"]["bmc"]["address"]
    gone = configure(lab, replace=((plug12, "http://127.0.0.1:9"),))
    result = run(cli, lab, state_dir, gone, "down", "--yes")
    assert result.code == 3, result.stderr  # refused, like an unreachable BMC: nothing changed
    assert "server esx12 plug http://127.0.0.1:9: cannot reach the plug" in result.stderr
    assert set(payload(vm_power(lab)).values()) == {"poweredOn"}
    wrong = Lab(lab.proc, lab.url, lab.thumbprint, {**lab.env, "LABSIM_BMC_PASSWORD": "wrong"}, lab.config, lab.cert)
    result = run(cli, wrong, state_dir, configure(lab), "bmc", "status", "esx12")
    assert result.code == 1 and "login refused for user 'admin'; check bmc.user and bmc.password" in result.stdout + result.stderr
    assert "wrong" not in result.stdout + result.stderr.replace("wrong-", "")
