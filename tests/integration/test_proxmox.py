"""Proxmox VE labs: labswitch against labsim --proxmox (a 3-node cluster with HA and Ceph, each node's BMC an
iDRAC-shaped Redfish service). Effects are read back through the cluster's API with a plain HTTP client, labsim's
own account of the cluster and Redfish (tests/pvesim.py: what the model simplifies), never through labswitch."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.conftest import Result, wait_until
from tests.pvesim import PveLab

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]
FAST = ("--host-boot-delay", "1s", "--host-shutdown-delay", "300ms", "--guest-shutdown-delay", "300ms")
MANAGED = {"noout", "norebalance", "nobackfill", "norecover"}
NODES = ("pve1", "pve2", "pve3")


def labswitch(cli: Run, lab: PveLab, state: Path, *args: str, config: Path | None = None) -> Result:
    return cli("--config", str(config or lab.config), *args, env={**lab.env, "XDG_STATE_HOME": str(state)}, timeout=180)


def test_a_cluster_with_ha_and_ceph_goes_down_and_comes_back_as_it_was(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path
) -> None:
    lab = pve_factory(*FAST, "--pve-ceph", "--pve-ha", "--pve-guests", "4")
    kept = f"vm:{lab.state()['guests']['pve2-vm01']['vmid']}"
    lab.api("PUT", f"/cluster/ha/resources/{kept}", state="stopped")  # an HA resource kept stopped: it stays so
    lab.api("PUT", "/cluster/ceph/flags", noscrub=1)  # a flag the admin set: labswitch leaves it
    wait_until(lambda: lab.state()["guests"]["pve2-vm01"]["status"] == "stopped", 10, f"the HA manager stopped {kept}")
    ha_before = lab.ha()
    ran_before = {name for name, g in lab.state()["guests"].items() if g["status"] == "running"}

    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 0, down.stderr
    after = lab.state()
    assert {g["status"] for g in after["guests"].values()} == {"stopped"}, after["guests"]
    assert all(lab.bmc_power(n) == "Off" for n in NODES), "every node off at its BMC"
    assert set(after["ha"].values()) == {"ignored"}, "HA leaves the stopped guests alone"
    assert MANAGED | {"noscrub"} <= set(after["ceph_flags"]), after["ceph_flags"]

    up = labswitch(cli, lab, state_dir, "up", "--yes")
    assert up.code == 0, up.stderr
    assert all(lab.bmc_power(n) == "On" for n in NODES)
    wait_until(lambda: lab.ha() == ha_before, 10, "HA's requested states back as they were")
    assert lab.ceph_flags() == {"noscrub"}, "labswitch's flags cleared, the admin's kept"
    state = lab.state()
    onboot = {name for name, g in state["guests"].items() if g["onboot"]}
    expected = onboot - {"pve2-vm01"}  # its HA state is stopped: HA keeps it so

    def running() -> set[str]:
        return {n for n, g in lab.state()["guests"].items() if g["status"] == "running"}

    wait_until(lambda: running() == expected, 10, "the guests that start at boot running")
    # startup order: every order=2 guest started before any order=3 one (order 1 is each node's HA resource: HA's)
    started = {n: g["started"] for n, g in lab.state()["guests"].items() if g["status"] == "running"}
    second = [started[n] for n in started if "order=2" in state["guests"][n]["startup"]]
    third = [started[n] for n in started if "order=3" in state["guests"][n]["startup"]]
    assert len(second) == len(third) == 3 and max(second) <= min(third), (
        second,
        third,
        sorted((n, g["startup"], g.get("started")) for n, g in lab.state()["guests"].items()),
    )
    assert "of the 11 VMs the last down stopped" in up.stderr and "--restore" in up.stderr, "up says what it leaves off"
    assert ran_before - onboot, "the scratch guests ran before: --restore brings them back"
    restore = labswitch(cli, lab, state_dir, "up", "--restore", "--yes")
    assert restore.code == 0, restore.stderr
    wait_until(lambda: running() == ran_before, 10, "exactly the guests that ran before the down")


def test_a_down_interrupted_after_the_flags_were_set_is_finished_and_up_clears_them(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path
) -> None:
    lab = pve_factory("--host-boot-delay", "1s", "--host-shutdown-delay", "300ms", "--guest-shutdown-delay", "1s", "--pve-ceph")
    env = {**os.environ, **lab.env, "XDG_STATE_HOME": str(state_dir)}
    argv = [sys.executable, "-m", "labswitch", "--config", str(lab.config), "down", "--yes"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # the flags are set once every guest is off (pveceph.adoc), just before the nodes go: read from labsim's own
        # account, which answers while the nodes are off
        wait_until(lambda: set(lab.state()["ceph_flags"]) >= MANAGED, 30, "the Ceph flags set")
        proc.send_signal(signal.SIGINT)
        err, _ = proc.communicate(timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 130, err
    assert re.search(r"to finish it: labswitch .*down", err), "Ctrl-C says how to finish"
    assert set(lab.state()["ceph_flags"]) >= MANAGED, "the flags stay set: the down is not finished"
    again = labswitch(cli, lab, state_dir, "down", "--yes")
    assert again.code == 0, again.stderr
    assert all(lab.bmc_power(n) == "Off" for n in NODES)
    up = labswitch(cli, lab, state_dir, "up", "--yes")
    assert up.code == 0, up.stderr
    assert lab.ceph_flags() == set(), "the flags the first down set are cleared: it recorded none before"
    status = labswitch(cli, lab, state_dir, "status", "--json")
    assert status.code == 0 and status.json()["cluster_changes"] == [], "nothing left to give back"


def test_refusals_change_nothing(cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path) -> None:
    lab = pve_factory(*FAST, "--pve-ceph", "--pve-ha", "--pve-mgmt-nodes", "1")
    before = lab.state()
    lonely = labswitch(cli, lab, state_dir, "down", "--yes")  # payload is pve2 and pve3: pve1 would stay up alone
    assert lonely.code == 3, lonely.stderr
    assert "pve1 would stay up with 1 of 3 votes, without quorum" in lonely.stderr
    mgmt = labswitch(cli, lab, state_dir, "down", "--group", "mgmt", "--yes")
    assert mgmt.code == 3 and "always_on" in mgmt.stderr
    assert lab.state() == before, "nothing changed"

    mine = pve_factory(*FAST, "--pve-self-node", "pve2")
    own = labswitch(cli, mine, state_dir, "down", "--yes")
    assert own.code == 3 and "node pve2 runs labswitch itself" in own.stderr, own.stderr
    assert all(g["status"] == "running" for g in mine.state()["guests"].values())


def test_bad_token_untrusted_certificate_and_unknown_node_are_one_line_each(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path, tmp_path: Path
) -> None:
    lab = pve_factory(*FAST)
    text = lab.config.read_text()

    def one_line(config_text: str, *args: str, code: int = 1) -> str:
        path = tmp_path / f"c{abs(hash(config_text)) % 10_000}.toml"
        path.write_text(config_text)
        result = labswitch(cli, lab, state_dir, *(args or ("status",)), config=path)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.code == code and len(lines) == 1 and "Traceback" not in result.stderr, (result.code, result.stderr)
        return lines[0]

    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not-the-secret\n")
    token = text.replace(
        'password = { env = "LABSIM_PVE_PASSWORD" }', f'token = "root@pam!labswitch"\ntoken_secret = {{ file = "{wrong}" }}'
    )
    assert "API token root@pam!labswitch refused" in one_line(token)
    assert "user root@pam refused" in one_line(text.replace("LABSIM_PVE_PASSWORD", "LABSIM_BMC_PASSWORD"))
    pinned = next(line for line in text.splitlines() if line.startswith("tls = "))
    assert "certificate not trusted" in one_line(text.replace(pinned, "", 1))
    assert "does not match the pinned tls.thumbprint" in one_line(text.replace(pinned, 'tls = { thumbprint = "' + "ab" * 32 + '" }', 1))
    assert "no node 'pve9' in the cluster" in one_line(text.replace('node = "pve3"', 'node = "pve9"'), "plan", "down", code=3)
    good = labswitch(cli, lab, state_dir, "status")
    assert good.code == 0, good.stderr
    tokened = tmp_path / "token.toml"
    tokened.write_text(
        text.replace(
            'password = { env = "LABSIM_PVE_PASSWORD" }', 'token = "root@pam!labswitch"\ntoken_secret = { env = "LABSIM_PVE_TOKEN" }'
        )
    )
    assert labswitch(cli, lab, state_dir, "status", config=tokened).code == 0, "an API token works too"
    assert all(g["status"] == "running" for g in lab.state()["guests"].values()), "nothing changed"


def test_init_writes_a_config_from_the_cluster_that_status_reads(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path, tmp_path: Path
) -> None:
    lab = pve_factory(*FAST)
    ca = lab.config.parent / "pve-root-ca.pem"  # the cluster CA: it signed every node's own certificate
    bmcs = [f"--bmc={name}={bmc}" for name, (_, bmc) in lab.nodes.items()]
    out = tmp_path / "init.toml"
    env = {**lab.env, "LABSWITCH_PROXMOX_PASSWORD": lab.env["LABSIM_PVE_PASSWORD"], "XDG_STATE_HOME": str(state_dir)}
    wrote = cli("init", "--proxmox", lab.url, "--ca-file", str(ca), "--trust-on-first-use", *bmcs, "--out", str(out), env=env)
    assert wrote.code == 0, wrote.stderr
    assert "Proxmox VE, 3 nodes in lab, 9 guests" in wrote.stdout and "tls: the cluster CA" in wrote.stdout
    text = out.read_text()
    assert 'node = "pve2"' in text and "[proxmox]" in text and lab.env["LABSIM_PVE_PASSWORD"] not in text
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    status = cli("--config", str(out), "status", "--json", env={**env, "LABSWITCH_BMC_PASSWORD": lab.env["LABSIM_BMC_PASSWORD"]})
    assert status.code == 0, status.stderr
    hosts = {h["name"]: h for h in status.json()["hosts"]}
    assert set(hosts) == set(NODES) and {h["bmc_power"] for h in hosts.values()} == {"On"}
    assert {h["connection_state"] for h in hosts.values()} == {"connected"}
    truth = lab.guests()
    assert {v["name"]: v["power_state"] for v in status.json()["vms"]} == {n: "poweredOn" for n in truth}


def test_a_node_without_a_bmc_of_its_own_is_woken_by_a_peer(cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path) -> None:
    """pve3 has no BMC in the config: a down shuts it down through the API and sees it gone; an up powers pve1 and pve2
    on by their BMCs and, once one is back, has it send pve3's magic packet (POST /nodes/pve3/wakeonlan)."""
    lab = pve_factory(*FAST, "--pve-wol-nodes", "pve3")
    assert 'via = "proxmox"' in lab.config.read_text()
    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 0, down.stderr
    assert all(lab.bmc_power(n) == "Off" for n in NODES), "read through each node's Redfish, the config's or not"
    plan = labswitch(cli, lab, state_dir, "plan", "up", "--json")
    steps = {(s["action"], s["target"]): s for s in plan.json()["steps"]}
    assert "wait-connected:node/pve1" in steps[("bmc-power-on", "pve3")]["settled"], "pve3 waits for a peer to be back"
    up = labswitch(cli, lab, state_dir, "up", "--yes")
    assert up.code == 0, up.stderr
    assert all(lab.bmc_power(n) == "On" for n in NODES)
    assert all(node["online"] for node in lab.state()["nodes"].values())


def test_serve_drives_a_proxmox_lab(pve_factory: Callable[..., PveLab], state_dir: Path) -> None:
    """The service on a Proxmox VE lab: its status, metrics and a down started over the API, read back from labsim."""
    from tests.integration.test_serve import TOKEN, add_serve, serving

    lab = pve_factory(*FAST, "--pve-ceph")
    config = lab.config.with_name("serve.toml")
    config.write_text(lab.config.read_text())
    url = add_serve(lab, config, '\n[energy]\nsample_interval = "1s"\n')  # type: ignore[arg-type]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(lab, config, url, state_dir):  # type: ignore[arg-type]
        status = requests.get(url + "/api/status", headers=auth, timeout=60).json()
        assert {h["name"] for h in status["hosts"]} == set(NODES) and status["clusters"][0]["quorate"]
        assert {v["name"] for v in status["vms"]} == set(lab.guests())
        wait_until(
            lambda: 'labswitch_server_power_state{server="pve2",state="on"} 1.0' in requests.get(url + "/metrics", timeout=10).text,
            30,
            "metrics",
        )
        started = requests.post(url + "/api/runs", headers=auth, json={"intent": "down"}, timeout=120)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(
            lambda: requests.get(url + f"/api/runs/{run_id}", headers=auth, timeout=30).json()["outcome"] != "running", 60, "the down"
        )
        assert requests.get(url + f"/api/runs/{run_id}", headers=auth, timeout=30).json()["outcome"] == "ok"
    assert all(lab.bmc_power(n) == "Off" for n in NODES)
    assert set(lab.state()["ceph_flags"]) >= MANAGED
