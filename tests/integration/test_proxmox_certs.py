"""Every Proxmox VE node has its own certificate (/etc/pve/nodes/<node>/pve-ssl.pem, signed by the cluster CA): labsim
--proxmox serves one per node. With the first node's thumbprint pinned, labswitch learns the others' from GET /nodes
(ssl_fingerprint) through the pinned node and keeps them: the [proxmox] url node going down does not strand the run.
Read back through labsim's own account of the cluster and Redfish."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_proxmox import FAST, MANAGED, NODES, labswitch
from tests.pvesim import PveLab

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]


def test_the_pinned_node_going_down_leaves_the_others_trusted_and_up_restore_gives_everything_back(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path
) -> None:
    lab = pve_factory(*FAST, "--pve-ceph", "--pve-ha", "--pve-tls", "pin")
    assert "thumbprint" in lab.config.read_text().split("[groups")[0], "the config pins pve1's own certificate"
    ha_before = lab.ha()
    ran_before = {n for n, g in lab.state()["guests"].items() if g["status"] == "running"}
    status = labswitch(cli, lab, state_dir, "status")
    assert status.code == 0, status.stderr  # learns every node's fingerprint from pve1

    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 0, down.stderr
    assert all(lab.bmc_power(n) == "Off" for n in NODES), "every node off at its BMC"
    assert set(lab.state()["ceph_flags"]) >= MANAGED
    after_down = labswitch(cli, lab, state_dir, "status")
    assert after_down.code == 0 and "pve1" in after_down.stdout, after_down.stderr

    up = labswitch(cli, lab, state_dir, "up", "--restore", "--yes")
    assert up.code == 0, up.stderr
    assert all(lab.bmc_power(n) == "On" for n in NODES)
    wait_until(lambda: lab.ha() == ha_before, 10, "HA's requested states back as they were")
    assert not MANAGED & set(lab.state()["ceph_flags"]), "the flags labswitch set are cleared"
    wait_until(lambda: {n for n, g in lab.state()["guests"].items() if g["status"] == "running"} == ran_before, 10, "guests back")


def test_a_node_whose_fingerprint_is_not_known_yet_is_one_line_naming_it(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path
) -> None:
    lab = pve_factory(*FAST, "--pve-tls", "pin")
    lab.api("POST", "/nodes/pve1/status", command="shutdown")  # the pinned node off before labswitch ever met the cluster
    wait_until(lambda: lab.bmc_power("pve1") == "Off", 10, "pve1 off")
    status = labswitch(cli, lab, state_dir, "status")
    lines = [line for line in status.stderr.splitlines() if "fingerprint" in line]
    assert lines and "no fingerprint known" in lines[0] and "ca_file" in lines[0], status.stderr
