"""Faults told as they are: switched on in labsim while labswitch runs (POST /labsim/faults), every run ends
within its deadline with what is known, and the same command converges once the fault is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_down_up import configure, payload, run
from tests.labsim import MUTATING, Lab, bmc_power, host_state, tagged_vms, vm_power

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
        lab.fault("bmc", "esx12", "hang")  # the BMC accepts connections and never answers, from before its server goes off
        _, stderr = down.communicate(timeout=60)
    finally:
        down.kill()
    took = time.monotonic() - started
    lab.fault("bmc", "esx12", "none")
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
# Each cell: a fault switched on at one phase of a down or an up ("start": before the command; "mid": once it is under
# way); the run must end within its deadline with the documented exit code and a true line, a refusal must change
# nothing, and the same command, once the fault is gone, must reach the state a run without the fault reaches.
# The table is printed in pytest's terminal summary (tests/conftest.py).


@dataclass(frozen=True)
class Cell:
    kind: str  # labsim's fault kind: bmc, vm, host
    name: str
    mode: str
    intent: str
    phase: str
    code: int  # the exit code
    says: str  # what stderr must say
    budget: float  # seconds: its deadline (config: bmc_timeout 3, host_off 5, guest_shutdown 5, host_connect 10, maintenance 5)
    lasts: float | None = None  # a passing fault: cleared this long after it began, while the run goes on

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.mode}-{self.intent}-{self.phase}" + (f"-{self.lasts:.0f}s" if self.lasts else "")


CELLS = [
    *(
        Cell("bmc", "esx12", mode, intent, phase, code, says, 20.0 if phase == "start" else 25.0)
        for mode in ("hang", "error")
        for intent, phase, code, says in (
            ("down", "start", 3, "server esx12 BMC"),  # the preflight read: refused, nothing changed
            ("down", "mid", 1, "the server's state is unknown"),  # confirm-off: unknown, never "still on"
            ("up", "start", 3, "server esx12 BMC"),
            ("up", "mid", 0, ""),  # its power-on was sent: the rest goes through vCenter
        )
    ),
    Cell("vm", "esx12-vm01", "ignore-shutdown", "down", "start", 1, "esx12-vm01", 30.0),  # the host stays on, with it
    Cell("host", "esx12", "stuck", "up", "start", 1, "esx12", 40.0),  # never reconnects: its VMs stay off
    Cell("host", "esx12", "stuck", "up", "mid", 1, "esx12", 40.0),
    Cell("task", "enterMaintenanceMode", "hang", "down", "start", 1, "enter-maintenance", 30.0),  # every host's: none goes down
    Cell("task", "exitMaintenanceMode", "hang", "up", "start", 1, "exit-maintenance", 40.0),  # hosts back, their VMs not started
    # The change feed's connection cut for 3 s: followed again on a new collector, nothing lost, the run ends ok.
    Cell("feed", "vcenter", "drop", "down", "mid", 0, "changes dropped", 30.0, lasts=3.0),  # may end before it answers again
    Cell("feed", "vcenter", "drop", "up", "mid", 0, "followed again", 40.0, lasts=3.0),
    # vCenter restarting for 3 s: its sessions gone after; labswitch logs in again on the same connection.
    Cell("vcenter", "vpxd", "restart", "down", "mid", 0, "changes dropped", 40.0, lasts=3.0),  # may end before vpxd is back
    Cell("vcenter", "vpxd", "restart", "up", "mid", 0, "logged in again", 40.0, lasts=3.0),
    # vCenter down longer than host_connect_timeout (10 s) while the hosts boot: said as vCenter's silence, the hosts'
    # state unknown (their BMCs say On), not every host "not connected"
    Cell("vcenter", "vpxd", "restart", "up", "mid", 1, "vCenter does not answer", 45.0, lasts=20.0),
]
ROW = "fault matrix row"  # each cell's row, carried by its report (user_properties) to the summary, from any worker


def _under_way(lab: Lab, cell: Cell) -> None:
    """Mid-run: a down once esx12 is in maintenance mode (its shutdown and confirm-off next); an up once esx12's BMC
    says On (its host is booting)."""
    if cell.intent == "down":
        wait_until(lambda: host_state(lab)["esx12"][1], 30, "esx12 in maintenance mode")
    else:
        wait_until(lambda: bmc_power(lab, "esx12") == "On", 30, "esx12 on at its BMC")


@pytest.mark.slow  # 18 cells, about 2.5 minutes
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_fault_matrix(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, cell: Cell, record_property: Callable[[str, object], None]
) -> None:
    lab = lab_factory("--host-shutdown-delay", "3s", "--host-boot-delay", "2s", "--guest-shutdown-delay", "200ms")
    config = configure(lab, policy="bmc_timeout = 3\nmaintenance_timeout = 5\n")
    if cell.intent == "up":
        assert run(cli, lab, state_dir, config, "down", "--yes").code == 0
    before = set(lab.soap_calls(reset=True))
    code, stderr, took = drive(
        lambda mode: lab.fault(cell.kind, cell.name, mode),
        cell.mode,
        cell.phase,
        lambda: background(lab, state_dir, config, cell.intent, "--yes"),
        lambda: _under_way(lab, cell),
        cell.budget,
        cell.lasts,
    )
    lines = stderr.strip().splitlines()
    record_property(ROW, row(f"{cell.kind} {cell.name} {cell.mode}", cell.intent, cell.phase, took, code, lines, cell.name))
    assert code == cell.code, stderr
    assert took < cell.budget, f"{took:.1f}s, over its {cell.budget:.0f}s deadline"
    assert cell.says in stderr and "Traceback" not in stderr, stderr
    assert "still on" not in stderr or cell.kind == "vm", "a BMC that does not answer is no server left on"
    if cell.code == 3:
        assert len(stderr.strip().splitlines()) <= 2, "a refusal is one line"
        assert not (set(lab.soap_calls()) - before) & MUTATING, "a refused run changes nothing"
    # The fault gone, the same command converges to the state a run without the fault reaches.
    again = run(cli, lab, state_dir, config, cell.intent, "--yes")
    assert again.code == 0, again.stderr
    want = "Off" if cell.intent == "down" else "On"
    assert all(bmc_power(lab, s) == want for s in SERVERS)
    if cell.intent == "up":
        assert all(host_state(lab)[s] == ("connected", False) for s in SERVERS)
        assert {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"} == tagged_vms(lab) & set(payload(vm_power(lab)))


def drive(
    fault: Callable[[str], object],
    mode: str,
    phase: str,
    start: Callable[[], subprocess.Popen[str]],
    under_way: Callable[[], None],
    budget: float,
    lasts: float | None = None,
) -> tuple[int, str, float]:
    """One cell's run: the fault switched on before the command ("start") or once it is under way ("mid"), cleared
    ``lasts`` seconds after it began (a passing fault) or once the run ended: (exit code, stderr, seconds it took)."""
    started = time.monotonic()
    clear = threading.Timer(lasts or 0, lambda: fault("none"))
    if phase == "start":
        fault(mode)
    proc = start()
    try:
        if phase == "mid":
            under_way()
            fault(mode)
        if lasts is not None:
            clear.start()
        _, stderr = proc.communicate(timeout=budget + 30)
    finally:
        proc.kill()
        clear.cancel()
    took = time.monotonic() - started
    fault("none")
    return proc.returncode, stderr, took


def row(fault: str, intent: str, phase: str, took: float, code: int, lines: list[str], name: str) -> str:
    """The cell's row in the summary's table: what labswitch said first of its failure (the step, or the refusal)."""
    failed = [line for line in lines if "] failed" in line or "error:" in line]
    last = (failed or [line for line in lines if name in line] or [""])[0]
    return f"{fault:32} {intent:5} {phase:6} {took:5.1f}s {code:4}  {last[:110]}"


def matrix_table(rows: list[str]) -> list[str]:
    """The cells that ran in this session (``rows``: their reports' rows), as the terminal summary prints them."""
    if not rows:
        return []
    return [f"{'fault':32} {'run':5} {'phase':6} {'took':>6} {'exit':>4}  what labswitch said (its first failure)", *rows]
