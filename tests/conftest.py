from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.labsim import Lab, start
from tests.pvesim import pve_factory  # noqa: F401 - labsim --proxmox, for the tests that take it


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """Start a fresh labsim with the given flags; stopped after the test."""
    labs: list[Lab] = []

    def make(*args: str) -> Lab:
        lab = start(tmp_path / f"lab{len(labs)}", *args)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.stop()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """Where a test's labswitch keeps its journal (XDG_STATE_HOME)."""
    return tmp_path / "state"


@pytest.fixture
def lab(lab_factory: Callable[..., Lab]) -> Lab:
    """A small lab: 1 mgmt host (with vcsa), 2 clusters x 2 hosts, 3 VMs per host; vSphere 8.0 U3 with embedded vCLS (quick)."""
    return lab_factory("--vcls-delay", "300ms", "--vcls-repower-delay", "300ms")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Result]:
    """Run the installed CLI as a user would: a separate process, stdout and stderr apart. Its state (journal, run
    lock) is the test's own unless the test gives XDG_STATE_HOME: never the user's real ~/.local/state/labswitch."""
    own_state = str(tmp_path / "cli-state")

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        full_env = {**os.environ, "XDG_STATE_HOME": own_state, **(env or {})}
        full_env.pop("LABSWITCH_CONFIG", None) if env is None or "LABSWITCH_CONFIG" not in env else None
        proc = subprocess.run(
            [sys.executable, "-m", "labswitch", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition read back from the lab, failing with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault matrix's table (tests/integration/test_faults.py), when its cells ran: their rows come with their
    reports, so the table is whole whichever worker ran a cell."""
    from tests.integration.test_faults import ROW, matrix_table

    reports = [r for kind in ("passed", "failed") for r in terminalreporter.stats.get(kind, []) if getattr(r, "when", "") == "call"]
    lines = matrix_table([value for r in reports for key, value in getattr(r, "user_properties", []) if key == ROW])
    if lines:
        terminalreporter.section("fault matrix")
        for line in lines:
            terminalreporter.write_line(line)
