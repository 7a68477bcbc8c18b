"""Proxmox VE's own whole-cluster procedure for Ceph (pveceph.adoc "Shutdown {pve} + Ceph HCI Cluster"), read back from
labsim's account of the cluster: the guests (Ceph's clients) off before the flags are set; the nodes without a Ceph
monitor down first, the monitor nodes last; on the way up the monitor nodes first (labsim --pve-ceph-mons 2: monitors
on pve1 and pve2 only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_proxmox import FAST, MANAGED, NODES, labswitch
from tests.pvesim import PveLab

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]


def test_ceph_clients_first_then_flags_then_nodes_without_a_monitor_then_monitors_and_back_monitors_first(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path
) -> None:
    lab = pve_factory(*FAST, "--pve-ceph", "--pve-ceph-mons", "2")
    mons = {m["name"] for m in lab.api("GET", "/cluster/ceph/status")["monmap"]["mons"]}
    assert mons == {"pve1", "pve2"}
    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 0, down.stderr
    state = lab.state()
    assert all(lab.bmc_power(n) == "Off" for n in NODES) and set(state["ceph_flags"]) >= MANAGED
    last_guest = max(float(g["stopped"]) for g in state["guests"].values() if "stopped" in g)
    assert state["ceph_flags_set"] >= last_guest, "the flags are set once every guest (Ceph's client) is off"
    off = {n: float(v["changed"]) for n, v in state["nodes"].items()}
    # the monitor nodes are asked once pve3 is off by its BMC: off at least their shutdown's 300 ms after it
    assert min(off["pve1"], off["pve2"]) - off["pve3"] >= 0.25, f"the node without a monitor goes first: {off}"

    up = labswitch(cli, lab, state_dir, "up", "--yes")
    assert up.code == 0, up.stderr
    on = {n: float(v["changed"]) for n, v in lab.state()["nodes"].items()}
    assert max(on["pve1"], on["pve2"]) <= on["pve3"], f"monitor nodes are powered on first: {on}"
    wait_until(lambda: not MANAGED & set(lab.state()["ceph_flags"]), 5, "the flags cleared")
    assert "ceph-services lab" in up.stderr and "monitors in quorum, every OSD up" in up.stderr, up.stderr
