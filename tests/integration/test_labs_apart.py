"""Two labs, one state directory (one admin, two labsims with the same cluster and host names): neither sees the
other's runs, VM states, cluster changes or lock — read back through each lab's own `status`, `history` and
`up --restore`, and the lock files on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result
from tests.integration.test_down_up import FAST, configure, run
from tests.labsim import Lab, bmc_power

Run = Callable[..., Result]


def test_a_down_of_one_lab_leaves_the_others_journal_untouched(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    a, b = lab_factory(*FAST, "--ha"), lab_factory(*FAST, "--ha")  # HA on: a whole cluster's down turns it off, journaled
    config_a, config_b = configure(a), configure(b)
    down = run(cli, a, state_dir, config_a, "down", "--yes")
    assert down.code == 0, down.stderr
    status_a = run(cli, a, state_dir, config_a, "status", "--json").json()
    assert status_a["cluster_changes"], "lab A's down turned HA off: its status says so"
    status_b = run(cli, b, state_dir, config_b, "status", "--json")
    assert status_b.code == 0 and status_b.json()["cluster_changes"] == [], "lab B sees none of A's cluster changes"
    assert run(cli, b, state_dir, config_b, "history", "--json").json() == [], "nor its runs"
    restore = run(cli, b, state_dir, config_b, "up", "--restore", "--yes")
    assert restore.code == 2 and "no down of group payload" in restore.stderr, "nor the VM states its down recorded"
    assert all(bmc_power(b, s) == "On" for s in ("esx11", "esx12", "esx21", "esx22")), "lab B untouched"
    locks = sorted(p.name for p in (state_dir / "labswitch").glob("run-*.lock"))
    assert len(locks) == 2, "each lab its own run lock: a run of one never waits on the other"
    # A's own up restores A, from A's records.
    up = run(cli, a, state_dir, config_a, "up", "--restore", "--yes")
    assert up.code == 0, up.stderr
    assert run(cli, a, state_dir, config_a, "status", "--json").json()["cluster_changes"] == []
