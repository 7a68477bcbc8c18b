"""Faults on a Proxmox VE lab told as they are (issue 37): switched on in labsim --proxmox while labswitch runs
(POST /labsim/faults: a node's API hanging or closing in the TLS handshake, a node that never rejoins, a guest that
ignores its shutdown, Ceph that never gets ready, a BMC that stops answering). Each run ends within its deadline
with the documented exit code and what is known (an API that does not answer leaves a state unknown, never "left
running" on a guess), a refusal changes nothing, and the same command converges once the fault is gone. The rows
print in the fault matrix beside vSphere's (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_faults import ROW, drive, row
from tests.integration.test_proxmox import MANAGED, NODES, labswitch
from tests.pvesim import PveLab

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]
POLICY = """
[policy]
guest_shutdown_timeout = 5
host_off_timeout = 5
bmc_timeout = 3
host_connect_timeout = 10
ceph_ready_timeout = 6
ha_start_timeout = 10
"""


@dataclass(frozen=True)
class Cell:
    kind: str  # labsim's fault kind: api, host, vm, ceph, bmc
    name: str
    mode: str
    intent: str
    phase: str  # "start": before the command; "mid": once it is under way
    code: int
    says: str  # what stderr must say
    budget: float  # seconds (proxmox.timeout 3 and the policy above)

    @property
    def id(self) -> str:
        return f"pve-{self.kind}-{self.name}-{self.mode}-{self.intent}-{self.phase}"


CELLS = [
    Cell("api", "pve1", "hang", "down", "start", 0, "", 40.0),  # the [proxmox] url node: the others answer
    Cell("api", "pve1", "eof", "down", "start", 0, "", 40.0),  # a handshake cut short is no trust error: fail over
    Cell("api", "all", "hang", "down", "start", 3, "no node's API answers", 20.0),  # refused, nothing changed
    Cell("api", "all", "eof", "down", "start", 3, "no node's API answers", 20.0),
    Cell("api", "all", "hang", "down", "mid", 1, "state is unknown", 30.0),  # after the flags: unknown, not "left running"
    Cell("vm", "pve1-vm01", "ignore-shutdown", "down", "start", 1, "pve1-vm01", 40.0),  # pve1 stays on with it
    Cell("bmc", "pve2", "hang", "down", "mid", 1, "the server's state is unknown", 40.0),
    Cell("host", "pve2", "stuck", "up", "start", 1, "pve2", 45.0),  # never rejoins: the others come back
    Cell("api", "pve2", "hang", "up", "mid", 0, "", 60.0),  # one node's API hanging: the others carry the run
    Cell("api", "all", "hang", "up", "mid", 1, "no node's API answers", 45.0),  # said as the API, not as every node failing
    Cell("ceph", "lab", "stuck", "up", "start", 1, "Ceph not ready", 45.0),  # guests are not started on it
    Cell("quorum", "lab", "lost", "down", "mid", 1, "no quorum", 40.0),  # the guests' stops refused: their nodes stay on
    Cell("quorum", "lab", "lost", "up", "mid", 1, "no quorum", 45.0),  # nothing written: flags and HA stay as the down left them
]


def background(lab: PveLab, state: Path, config: Path, *command: str) -> subprocess.Popen[str]:
    env = {**os.environ, **lab.env, "XDG_STATE_HOME": str(state)}
    return subprocess.Popen([sys.executable, "-m", "labswitch", "--config", str(config), *command], env=env, **_pipes())


def _pipes() -> dict[str, object]:
    return {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


def _under_way(lab: PveLab, cell: Cell) -> None:
    """Mid-run: a down once a guest has stopped (the others still shutting down); an up once every node's BMC says On."""
    if cell.intent == "down":
        wait_until(lambda: any(g["status"] == "stopped" for g in lab.state()["guests"].values()), 30, "a guest stopped")
    else:
        wait_until(lambda: all(n["power"] == "On" for n in lab.state()["nodes"].values()), 30, "every node on")


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_proxmox_fault_matrix(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path, cell: Cell, record_property: Callable[[str, object], None]
) -> None:
    lab = pve_factory("--host-boot-delay", "1s", "--host-shutdown-delay", "1s", "--guest-shutdown-delay", "1s", "--pve-ceph", "--pve-ha")
    config = lab.config.parent / "faults.toml"
    config.write_text(lab.config.read_text().replace("tls = { ca_file", "timeout = 3\ntls = { ca_file", 1) + POLICY)
    if cell.intent == "up":
        assert labswitch(cli, lab, state_dir, "down", "--yes", config=config).code == 0
    before = lab.state()
    code, stderr, took = drive(
        lambda mode: lab.fault(cell.kind, cell.name, mode),
        cell.mode,
        cell.phase,
        lambda: background(lab, state_dir, config, cell.intent, "--yes"),
        lambda: _under_way(lab, cell),
        cell.budget,
    )
    lines = stderr.strip().splitlines()
    record_property(ROW, row(f"pve {cell.kind} {cell.name} {cell.mode}", cell.intent, cell.phase, took, code, lines, cell.name))
    assert code == cell.code, stderr
    assert took < cell.budget, f"{took:.1f}s, over its {cell.budget:.0f}s deadline"
    assert cell.says in stderr and "Traceback" not in stderr, stderr
    assert "still on after" not in stderr or cell.kind == "vm", "an API or BMC that does not answer is no guest left on"
    if cell.code == 3:
        assert len(lines) <= 2, "a refusal is one line"
        after = lab.state()
        assert after["ha"] == before["ha"] and after["ceph_flags"] == before["ceph_flags"], "a refused run changes nothing"
    # The fault gone, the same command converges to the state a run without the fault reaches.
    again = labswitch(cli, lab, state_dir, cell.intent, "--yes", config=config)
    assert again.code == 0, again.stderr
    want = "Off" if cell.intent == "down" else "On"
    assert all(lab.bmc_power(n) == want for n in NODES)
    if cell.intent == "up":
        assert not MANAGED & set(lab.state()["ceph_flags"]), "the flags the down set are cleared"
        assert set(lab.state()["ha"].values()) == {"started"}, "HA's states given back"
