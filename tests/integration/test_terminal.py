"""A person at a terminal, and two runs at once: the question, live progress, Ctrl-C, the run lock.

The CLI runs in a pseudo-terminal (pexpect) or as a plain process; every effect is read back
through pyVmomi, Redfish, labsim's SOAP call counter and the journal, never from labswitch's report.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pexpect

from tests.conftest import Result, wait_until
from tests.integration.test_down_up import FAST, configure, payload, run
from tests.labsim import MUTATING, Lab, bmc_power, host_state, tagged_vms, vm_power

Run = Callable[..., Result]
SERVERS = ("esx11", "esx12", "esx21", "esx22")


def env_for(lab: Lab, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "LABSWITCH_CONFIG")}
    return {**env, **lab.env, "XDG_STATE_HOME": str(state), "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}


def spawn(lab: Lab, state: Path, config: Path, *args: str) -> pexpect.spawn:
    """labswitch in a 160x40 pseudo-terminal, as a person runs it."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "labswitch", "--config", str(config), *args],
        env=env_for(lab, state),
        dimensions=(40, 160),
        encoding="utf-8",
        timeout=60,
    )


def background(lab: Lab, state: Path, config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "labswitch", "--config", str(config), *args],
        env=env_for(lab, state),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


ANSI = r"(?:\x1b\[[0-9;]*m)*"


def shown(text: str) -> str:
    """A regex for ``text`` as a terminal shows it: colour and style codes may stand between any two characters."""
    return ANSI.join(re.escape(c) for c in text)


def lock_holder(state: Path) -> str:
    """What the lab's run lock says (its file is run-<lab>.lock: one lock per lab in a state directory)."""
    return "".join(path.read_text() for path in (state / "labswitch").glob("run-*.lock"))


def test_the_question_is_visible_and_anything_but_yes_aborts(lab: Lab, state_dir: Path) -> None:
    config = configure(lab)
    before = vm_power(lab)
    lab.soap_calls(reset=True)
    child = spawn(lab, state_dir, config, "down")
    child.expect(shown("down of payload: 12 VMs on 4 hosts"))  # the summary, not one line per VM
    child.expect_exact("esx21")
    child.expect(shown("Proceed with down of payload: 12 VMs to stop on 4 hosts? [y/N] "))
    child.sendline("ok")  # not y or yes
    child.expect(shown("Aborted, nothing changed."))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert not MUTATING & set(lab.soap_calls())
    assert vm_power(lab) == before


def test_yes_at_the_terminal_shows_live_hosts_and_a_summary(lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*FAST[:4], "--guest-shutdown-delay", "2s")
    config = configure(lab)
    child = spawn(lab, state_dir, config, "down")
    child.expect_exact("[y/N] ")
    child.sendline("y")
    child.expect(r"vm\d+: shutting down")  # a host row while its guests shut down: the VM it waits for, by name
    clocks = set()
    deadline = time.monotonic() + 10
    while len(clocks) < 2 and time.monotonic() < deadline:  # the clock ticks while nothing else happens
        child.expect(shown("VMs · ") + ANSI + r"(\d\d:\d\d)")
        clocks.add(child.match.group(1))
    assert len(clocks) >= 2
    child.expect(shown("down of payload: done in ") + r"\d\d:\d\d" + ANSI + shown(" — 12 of 12 VMs stopped, 4 of 4 hosts off (BMC)"))
    child.expect_exact("labswitch history ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}


def test_ctrl_c_during_guest_shutdown_then_the_same_command_finishes(lab_factory: Callable[..., Lab], state_dir: Path, cli: Run) -> None:
    lab = lab_factory(*FAST[:4], "--guest-shutdown-delay", "5s")
    config = configure(lab, replace=(("guest_shutdown_timeout = 5", "guest_shutdown_timeout = 30"),))
    child = spawn(lab, state_dir, config, "down", "--yes")
    wait_until(lambda: lab.soap_calls().get("ShutdownGuest", 0) >= 12, 30, "every guest asked to shut down")
    child.sendintr()
    child.expect(shown("stopping: calls under way finish"))
    child.expect(shown("down of payload: interrupted after "))
    child.expect_exact("journaled as interrupted")
    child.expect_exact(f"to finish it: labswitch --config {config} down")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert {bmc_power(lab, s) for s in SERVERS} == {"On"}  # stopped before any host was shut down
    assert lab.soap_calls().get("EnterMaintenanceMode_Task", 0) == 0
    history = run(cli, lab, state_dir, config, "history", "--json").json()
    assert history[0]["outcome"] == "interrupted"
    again = run(cli, lab, state_dir, config, "down", "--yes")
    assert again.code == 0, again.stderr
    assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}


def test_ctrl_c_while_hosts_boot_then_the_same_command_finishes(lab_factory: Callable[..., Lab], state_dir: Path, cli: Run) -> None:
    lab = lab_factory(*FAST[:2], "--host-boot-delay", "4s", *FAST[4:])
    config = configure(lab)
    assert run(cli, lab, state_dir, config, "down", "--yes").code == 0
    proc = background(lab, state_dir, config, "up", "--yes")
    wait_until(lambda: {bmc_power(lab, s) for s in SERVERS} == {"On"}, 30, "the servers powered on by the up")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in out and "to finish it: labswitch" in out
    assert lab.soap_calls().get("PowerOnVM_Task", 0) == 0  # no VM was started after the interrupt
    assert "0 of 4 hosts up" in out, "an interrupted up claims no host it did not bring back"
    history = run(cli, lab, state_dir, config, "history")
    assert "interrupted" in history.stdout and "stopped in" in history.stdout, history.stdout
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert all(host_state(lab)[s] == ("connected", False) for s in SERVERS)
    on = {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"}
    assert on == {n for n in tagged_vms(lab) if n.startswith("esx")}


def test_a_second_ctrl_c_exits_at_once(lab_factory: Callable[..., Lab], state_dir: Path, cli: Run) -> None:
    # Every SOAP call takes 300 ms more: the first Ctrl-C's orderly stop waits for the long-poll under way.
    lab = lab_factory(*FAST[:4], "--guest-shutdown-delay", "20s", "--latency", "300ms")
    config = configure(lab, replace=(("guest_shutdown_timeout = 5", "guest_shutdown_timeout = 60"),))
    proc = background(lab, state_dir, config, "down", "--yes")
    wait_until(lambda: lab.soap_calls().get("ShutdownGuest", 0) >= 12, 60, "every guest asked to shut down")
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    lines = []
    while not (lines and lines[-1].startswith("[") and "stopping:" in lines[-1]):
        lines.append(proc.stderr.readline())
        assert lines[-1], "stderr closed before the first Ctrl-C was acknowledged"
    proc.send_signal(signal.SIGINT)  # while the calls under way finish
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and "interrupted again: exiting now" in err
    assert "to finish it" not in out  # it did not wait for the orderly stop
    assert run(cli, lab, state_dir, config, "history", "--json").json()[0]["outcome"] == "interrupted"


def test_two_runs_at_once_one_proceeds_the_other_is_refused(lab_factory: Callable[..., Lab], state_dir: Path, cli: Run) -> None:
    lab = lab_factory(*FAST[:4], "--guest-shutdown-delay", "3s")
    config = configure(lab)
    down = background(lab, state_dir, config, "down", "--yes")
    wait_until(lambda: '"run_id": "' in lock_holder(state_dir), 30, "the down to hold the lock")
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 1
    lines = [line for line in up.stderr.splitlines() if line.startswith("labswitch: error:")]
    assert len(lines) == 1 and "another labswitch run is in progress: down of payload (run 2" in lines[0]
    assert f"pid {down.pid}" in lines[0] and "--wait" in lines[0]
    assert down.wait(timeout=60) == 0
    assert lab.soap_calls().get("PowerOnVM_Task", 0) == 0  # the refused up changed nothing
    assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}


def test_wait_runs_after_the_run_in_progress(lab_factory: Callable[..., Lab], state_dir: Path, cli: Run) -> None:
    lab = lab_factory(*FAST[:4], "--guest-shutdown-delay", "2s")
    config = configure(lab)
    down = background(lab, state_dir, config, "down", "--yes")
    wait_until(lambda: '"run_id": "' in lock_holder(state_dir), 30, "the down to hold the lock")
    up = run(cli, lab, state_dir, config, "up", "--yes", "--wait", "--wait-timeout", "60")
    assert down.wait(timeout=60) == 0
    assert up.code == 0, up.stderr
    assert "waiting for the run in progress to finish: down of payload" in up.stderr
    history = run(cli, lab, state_dir, config, "history", "--json").json()
    assert [r["intent"] for r in history[:2]] == ["up", "down"] and {r["outcome"] for r in history[:2]} == {"ok"}
    assert all(host_state(lab)[s] == ("connected", False) for s in SERVERS)


def test_the_lock_is_released_when_the_holder_is_killed(lab_factory: Callable[..., Lab], state_dir: Path, cli: Run) -> None:
    lab = lab_factory(*FAST[:4], "--guest-shutdown-delay", "5s")
    config = configure(lab, replace=(("guest_shutdown_timeout = 5", "guest_shutdown_timeout = 30"),))
    down = background(lab, state_dir, config, "down", "--yes")
    wait_until(lambda: '"run_id": "' in lock_holder(state_dir), 30, "the down to hold the lock")
    down.send_signal(signal.SIGKILL)
    down.wait(timeout=10)
    again = run(cli, lab, state_dir, config, "down", "--yes")
    assert again.code == 0, again.stderr
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}
