"""Startup order on a Proxmox VE lab, as PVE keeps it (qm.adoc "Start and Shutdown Order"; pve-manager's Nodes.pm
stopall/startall) and across the nodes of a run: labswitch against labsim --proxmox, the order read back from labsim's
own timeline of the cluster (when each guest was asked to shut down, stopped, started), never from labswitch."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_proxmox import FAST, NODES, labswitch
from tests.pvesim import PveLab

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]

# Orders spread across the nodes (a database on one node, its application on another); None: no order.
ORDERS: dict[str, int | None] = {
    "pve1-vm01": 1,
    "pve2-vm01": 1,
    "pve1-ct02": 2,
    "pve3-vm01": 2,
    "pve2-ct02": 3,
    "pve3-ct02": None,
    "pve1-vm03": 3,
    "pve2-vm03": None,
    "pve3-vm03": 1,
}


def _groups(descending: bool) -> list[list[str]]:
    """The guests by order group, in the order PVE takes them: no order counts as the highest (LONG_MAX)."""
    rank = {name: order if order is not None else 1 << 63 for name, order in ORDERS.items()}
    keys = sorted(set(rank.values()), reverse=descending)
    return [sorted(n for n, r in rank.items() if r == k) for k in keys]


def _timeline(guests: dict[str, Any], key: str, names: list[str]) -> list[float]:
    return [float(guests[n][key]) for n in names]


def test_a_down_asks_each_order_group_only_after_the_one_before_ended_and_up_restore_starts_them_in_order(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path
) -> None:
    lab = pve_factory(*FAST[:4], "--guest-shutdown-delay", "400ms", "--guest-shutdown-jitter", "400ms", "--pve-guests", "3")
    state = lab.state()["guests"]
    for name, order in ORDERS.items():  # set as an admin would, through the API (qm set --startup)
        g = state[name]
        kind = "lxc" if "-ct" in name else "qemu"
        path = f"/nodes/{g['node']}/{kind}/{g['vmid']}/config"
        lab.api("PUT", path, **({"startup": f"order={order},up=0"} if order is not None else {"delete": "startup"}))
    wait_until(lambda: all(lab.state()["guests"][n]["startup"] == (f"order={o},up=0" if o else "") for n, o in ORDERS.items()), 5, "set")

    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 0, down.stderr
    guests = lab.state()["guests"]
    assert {guests[n]["status"] for n in ORDERS} == {"stopped"}
    assert all(lab.bmc_power(n) == "Off" for n in NODES), "every node off at its BMC"
    groups = _groups(descending=True)
    for earlier, later in itertools.pairwise(groups):
        stopped, asked = max(_timeline(guests, "stopped", earlier)), min(_timeline(guests, "asked", later))
        assert stopped <= asked, f"{later} asked {stopped - asked:.3f}s before {earlier} had all stopped"

    up = labswitch(cli, lab, state_dir, "up", "--restore", "--yes")
    assert up.code == 0, up.stderr
    wait_until(lambda: {lab.state()["guests"][n]["status"] for n in ORDERS} == {"running"}, 10, "every guest that ran, running")
    guests = lab.state()["guests"]
    for earlier, later in itertools.pairwise(_groups(descending=False)):
        last, first = max(_timeline(guests, "started", earlier)), min(_timeline(guests, "started", later))
        assert last <= first, f"{later} started before {earlier}: order lost ({first - last:.3f}s)"
