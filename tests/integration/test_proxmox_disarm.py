"""PVE 9.2+ (pve-ha-manager 5.1.3): a whole cluster's down disarms HA (POST /cluster/ha/status/disarm-ha, resource mode
ignore: no fencing, no recovery, the guests labswitch's to stop) and its up arms it again (arm-ha), after which HA
starts its own guests. Read back through labsim's account of the cluster and the API's HA status (the fencing entry)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_proxmox import FAST, MANAGED, NODES, labswitch
from tests.pvesim import PveLab

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]


def fencing(lab: PveLab) -> str:
    return next(str(e["armed-state"]) for e in lab.api("GET", "/cluster/ha/status/current") if e["type"] == "fencing")


def test_ha_is_disarmed_for_the_down_and_armed_again_by_the_up(cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path) -> None:
    lab = pve_factory(*FAST, "--pve-ceph", "--pve-ha", "--pve-version", "9.2")
    ha_before = lab.ha()
    assert fencing(lab) == "armed"
    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 0, down.stderr
    assert "ha-disarm" in down.stderr and "ha-ignore" not in down.stderr, down.stderr
    state = lab.state()
    assert (state["ha_armed"], state["ha_mode"]) == ("disarmed", "ignore"), "disarmed with resource mode ignore"
    assert state["ha"] == ha_before, "the resources' own states are left as they were"
    assert all(lab.bmc_power(n) == "Off" for n in NODES) and set(state["ceph_flags"]) >= MANAGED
    status = labswitch(cli, lab, state_dir, "status")
    assert "HA disarmed" in status.stderr, status.stderr  # what the down changed, pending

    up = labswitch(cli, lab, state_dir, "up", "--yes")
    assert up.code == 0, up.stderr
    assert fencing(lab) == "armed" and lab.state()["ha_armed"] == "armed"
    ha_guests = {n for n, g in lab.state()["guests"].items() if f"vm:{g['vmid']}" in ha_before}
    wait_until(lambda: all(lab.state()["guests"][n]["status"] == "running" for n in ha_guests), 10, "HA started its guests")
    assert "HA started 3 guest(s) itself" in up.stderr, up.stderr
