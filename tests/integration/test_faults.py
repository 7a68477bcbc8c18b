"""Faults told as they are: switched on in labsim while labswitch runs (POST /labsim/faults), every run ends
within its deadline with what is known, and the same command converges once the fault is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result, wait_until
from tests.integration.test_down_up import configure, run
from tests.labsim import Lab, bmc_power, host_state

Run = Callable[..., Result]
SERVERS = ("esx11", "esx12", "esx21", "esx22")


def background(lab: Lab, state: Path, config: Path, *command: str) -> subprocess.Popen[str]:
    env = {**os.environ, **lab.env, "XDG_STATE_HOME": str(state)}
    argv = [sys.executable, "-m", "labswitch", "--config", str(config), *command]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_bmc_that_stops_answering_mid_down_leaves_the_state_unknown_never_on(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab = lab_factory("--host-shutdown-delay", "3s", "--guest-shutdown-delay", "200ms")
    config = configure(lab, policy="bmc_timeout = 3\n")  # host_off_timeout = 5 (test_down_up.POLICY)
    started = time.monotonic()
    down = background(lab, state_dir, config, "down", "--yes")
    try:
        wait_until(lambda: host_state(lab)["esx12"][1], 30, "esx12 in maintenance mode")
        lab.fault("esx12", "hang")  # the BMC accepts connections and never answers, from before its server goes off
        _, stderr = down.communicate(timeout=60)
    finally:
        down.kill()
    took = time.monotonic() - started
    lab.fault("esx12", "none")
    assert down.returncode == 1, stderr
    assert took < 40, f"the down took {took:.0f}s: confirm-off overshot host_off_timeout (5 s) with a hung BMC"
    assert "BMC of esx12 stopped answering at" in stderr and "state is unknown" in stderr, stderr
    assert stderr.count("esx12: BMC not answering since") == 1, "the first failed read is told once, at once"
    assert "still on" not in stderr.split("esx12")[-1] and "bmc_force_off" not in stderr, "a silent BMC is no server left on"
    assert "Traceback" not in stderr
    # labsim switched the server off meanwhile: read back through its BMC, answering again.
    wait_until(lambda: bmc_power(lab, "esx12") == "Off", 10, "esx12 off at its BMC")
    again = run(cli, lab, state_dir, config, "down", "--yes")
    assert again.code == 0, again.stderr
    assert all(bmc_power(lab, s) == "Off" for s in SERVERS)
