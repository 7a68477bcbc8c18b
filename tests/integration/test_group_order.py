"""Groups that depend on groups, against labsim (vSphere): cluster 2's hosts as group storage, cluster 1's as payload
with `after = ["storage"]`. Read back through labsim's own account of each server's power changes (GET
/labsim/physical, its BMC's truth) and Redfish, never from labswitch's report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.integration.test_down_up import FAST, configure, run
from tests.labsim import Lab, bmc_power

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]
STORAGE, PAYLOAD = ("esx21", "esx22"), ("esx11", "esx12")


def _config(lab: Lab) -> Path:
    moves = tuple(
        (f'name = "{s}"\nesxi = "{s}.lab.local"\ngroup = "payload"', f'name = "{s}"\nesxi = "{s}.lab.local"\ngroup = "storage"')
        for s in STORAGE
    )
    config = configure(lab, replace=(*moves, ("[groups.payload]\n", '[groups.storage]\n\n[groups.payload]\nafter = ["storage"]\n')))
    return config


def _changed(lab: Lab) -> dict[str, float]:
    return {name: float(h["power_changed"]) for name, h in lab.physical()["hosts"].items()}


def test_storage_goes_down_after_payload_and_comes_up_before_it_and_alone_is_refused(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab = lab_factory(*FAST)
    config = _config(lab)
    alone = run(cli, lab, state_dir, config, "down", "--group", "storage", "--yes")
    assert alone.code == 3 and "group payload needs it and is on" in alone.stderr, alone.stderr
    assert all(bmc_power(lab, s) == "On" for s in STORAGE + PAYLOAD), "a refusal changes nothing"

    down = run(cli, lab, state_dir, config, "down", "--group", "payload", "--group", "storage", "--yes")
    assert down.code == 0, down.stderr
    off = _changed(lab)
    assert all(bmc_power(lab, s) == "Off" for s in STORAGE + PAYLOAD)
    assert min(off[s] for s in STORAGE) > max(off[p] for p in PAYLOAD), f"storage off only after payload: {off}"

    up_alone = run(cli, lab, state_dir, config, "up", "--group", "payload", "--yes")
    assert up_alone.code == 3 and "needs group storage, which is off" in up_alone.stderr, up_alone.stderr
    up = run(cli, lab, state_dir, config, "up", "--group", "storage", "--group", "payload", "--yes")
    assert up.code == 0, up.stderr
    on = _changed(lab)
    assert all(bmc_power(lab, s) == "On" for s in STORAGE + PAYLOAD)
    # payload is powered on once storage is back in vCenter: at least its boot (1 s) after storage's power-on
    assert min(on[p] for p in PAYLOAD) - max(on[s] for s in STORAGE) >= 0.9, f"payload after storage is up: {on}"
