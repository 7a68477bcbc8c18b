"""Faults told as they are: switched on in labsim while labswitch runs (POST /labsim/faults), every run ends
within its deadline with what is known, and the same command converges once the fault is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_down_up import configure, run
from tests.labsim import MUTATING, Lab, bmc_power, host_state

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


# -- the fault matrix ---------------------------------------------------------------------------------------------
# Each cell: a fault of esx12's BMC, switched on at one phase of a down or an up; the run must end within its
# deadline with the documented exit code and a true line, and the same command, once the fault is gone, must
# reach the same end state as a run with no fault. The table is printed at the end of the session.
BUDGET = {"start": 20.0, "mid": 25.0}  # preflight: bmc_timeout (3 s) per BMC read, in parallel; mid: host_off_timeout + a read
EXPECT = {  # (intent, phase) -> (exit code, what stderr must say)
    ("down", "start"): (3, "esx12"),
    ("down", "mid"): (1, "the server's state is unknown"),
    ("up", "start"): (3, "esx12"),
    ("up", "mid"): (0, ""),  # its power-on was sent: the rest goes through vCenter
}
MATRIX: list[tuple[str, str, str, float, int, str]] = []


def _until_phase(lab: Lab, intent: str) -> None:
    """Mid-run: a down once esx12 is in maintenance mode (its shutdown and confirm-off next); an up once its BMC says On."""
    if intent == "down":
        wait_until(lambda: host_state(lab)["esx12"][1], 30, "esx12 in maintenance mode")
    else:
        wait_until(lambda: bmc_power(lab, "esx12") == "On", 30, "esx12 on at its BMC")


@pytest.mark.parametrize("phase", ["start", "mid"])
@pytest.mark.parametrize("intent", ["down", "up"])
@pytest.mark.parametrize("fault", ["hang", "error"])
def test_fault_matrix_bmc(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, fault: str, intent: str, phase: str) -> None:
    lab = lab_factory("--host-shutdown-delay", "3s", "--host-boot-delay", "2s", "--guest-shutdown-delay", "200ms")
    config = configure(lab, policy="bmc_timeout = 3\n")
    if intent == "up":
        assert run(cli, lab, state_dir, config, "down", "--yes").code == 0
    before = set(lab.soap_calls(reset=True))
    started = time.monotonic()
    if phase == "start":
        lab.fault("esx12", fault)
    proc = background(lab, state_dir, config, intent, "--yes")
    try:
        if phase == "mid":
            _until_phase(lab, intent)
            lab.fault("esx12", fault)
        _, stderr = proc.communicate(timeout=BUDGET[phase] + 30)
    finally:
        proc.kill()
    took = time.monotonic() - started
    lab.fault("esx12", "none")
    code, says = EXPECT[intent, phase]
    last = next((line for line in reversed(stderr.strip().splitlines()) if "esx12" in line), "")
    MATRIX.append((f"BMC {fault}", intent, phase, took, proc.returncode, last[:110]))
    assert proc.returncode == code, stderr
    assert took < BUDGET[phase], f"{took:.1f}s, over its {BUDGET[phase]:.0f}s deadline"
    assert says in stderr and "Traceback" not in stderr, stderr
    assert "still on" not in stderr, "a BMC that does not answer is no server left on"
    if phase == "start":
        assert len(stderr.strip().splitlines()) <= 2, "a refusal is one line"
        assert not (set(lab.soap_calls()) - before) & MUTATING, "a refused run changes nothing"
    # The fault gone, the same command converges to the state a run without the fault reaches.
    again = run(cli, lab, state_dir, config, intent, "--yes")
    assert again.code == 0, again.stderr
    want = "Off" if intent == "down" else "On"
    assert all(bmc_power(lab, s) == want for s in SERVERS)
    if intent == "up":
        assert all(host_state(lab)[s] == ("connected", False) for s in SERVERS)


def matrix_table() -> list[str]:
    """The cells run in this session, as the terminal summary prints them (tests/conftest.py)."""
    if not MATRIX:
        return []
    lines = [f"{'fault':11} {'run':5} {'phase':6} {'took':>6} {'exit':>4}  what labswitch said last about esx12"]
    lines += [f"{fault:11} {intent:5} {phase:6} {took:5.1f}s {code:4}  {said}" for fault, intent, phase, took, code, said in MATRIX]
    return lines
