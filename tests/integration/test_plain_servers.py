"""Plain servers (platform = "servers") against labsim --storage: nas01, a storage server group payload needs, with
a BMC and a service port that answers once its OS booted. Its SSH is OpenSSH's sshd, whose forced command is the
machine's own poweroff. Read back through labsim's account of each server's power (GET /labsim/physical, its BMC's
truth), Redfish, a TCP connection to the port and sshd's own log, never from labswitch's report."""

from __future__ import annotations

import socket
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.integration.test_down_up import FAST, configure, run
from tests.labsim import Lab, bmc_power
from tests.sshd import port_answers, sshd

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]
PAYLOAD = ("esx11", "esx12", "esx21", "esx22")


def _changed(lab: Lab) -> dict[str, float]:
    return {name: float(h["power_changed"]) for name, h in lab.physical()["hosts"].items()}


def _port(lab: Lab) -> int:
    nas = next(s for s in tomllib.loads(lab.config.read_text())["servers"] if s["name"] == "nas01")
    return int(nas["ready"][0].split(":")[-1])


def _with_ssh(lab: Lab, port: int, host_key: str, key: Path, user: str, extra: tuple[tuple[str, str], ...] = ()) -> Path:
    ssh = f'ssh = {{ user = "{user}", key_file = "{key}", port = {port}, host_key = "{host_key}" }}\n'
    return configure(lab, replace=(('platform = "servers"\n', f'platform = "servers"\n{ssh}'), *extra))


def test_storage_is_shut_down_over_ssh_after_payload_and_up_and_ready_before_it(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, tmp_path: Path
) -> None:
    lab = lab_factory(*FAST, "--storage", "1")
    poweroff = f"curl -sk -X POST {lab.url.replace('/sdk', '/labsim/os-shutdown')}?server=nas01"
    with sshd(tmp_path / "sshd", poweroff) as server:
        config = _with_ssh(lab, server.port, server.host_key, server.client_key, server.user)
        alone = run(cli, lab, state_dir, config, "down", "--group", "storage", "--yes")
        assert alone.code == 3 and "group payload needs it and is on" in alone.stderr, alone.stderr
        assert bmc_power(lab, "nas01") == "On" and port_answers(_port(lab)), "a refusal changes nothing"
        assert "Accepted publickey" not in server.said()

        down = run(cli, lab, state_dir, config, "down", "--group", "payload", "--group", "storage", "--yes")
        assert down.code == 0, down.stderr
        assert all(bmc_power(lab, s) == "Off" for s in (*PAYLOAD, "nas01"))
        off = _changed(lab)
        assert off["nas01"] > max(off[p] for p in PAYLOAD), f"storage off only after payload: {off}"
        assert "Accepted publickey" in server.said(), "its OS was asked over SSH"
        assert not port_answers(_port(lab))

    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    on = _changed(lab)
    boot = float(lab.physical()["hosts"]["nas01"]["boot_seconds"])
    assert all(bmc_power(lab, s) == "On" for s in (*PAYLOAD, "nas01")) and port_answers(_port(lab))
    # payload is powered on only once storage's port answers: at least its boot after storage's power-on
    assert min(on[p] for p in PAYLOAD) - on["nas01"] >= boot * 0.9, f"payload after storage is ready: {on}"


def test_a_refused_ssh_login_falls_back_to_the_bmcs_graceful_shutdown(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, tmp_path: Path
) -> None:
    lab = lab_factory(*FAST, "--storage", "1")
    with sshd(tmp_path / "sshd", "true") as server:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
        unsure = ('after = ["storage"]', "after = []")  # storage alone may go down
        config = _with_ssh(lab, server.port, server.host_key, tmp_path / "stranger", server.user, (unsure,))
        down = run(cli, lab, state_dir, config, "down", "--group", "storage", "--yes")
    assert down.code == 0, down.stderr
    assert bmc_power(lab, "nas01") == "Off" and all(bmc_power(lab, s) == "On" for s in PAYLOAD)
    said = [line for line in down.stderr.splitlines() if "os-shutdown nas01" in line]
    assert len(said) == 1 and "login refused" in said[0] and "GracefulShutdown (ACPI) instead" in said[0], down.stderr
    assert "bmc-graceful-shutdown nas01" in down.stderr and "confirm-off nas01: off (BMC)" in down.stderr


def test_payload_is_not_powered_on_while_storage_does_not_answer(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*FAST, "--storage", "1")
    down = run(cli, lab, state_dir, configure(lab), "down", "--yes")
    assert down.code == 0, down.stderr
    with socket.socket() as closed:  # a port nothing listens on: storage's service never answers
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    short = ("host_connect_timeout = 10", "host_connect_timeout = 3")
    config = configure(lab, replace=(short, (f'"tcp:{_port(lab)}"', f'"tcp:{port}"')))
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 1 and f"wait-ready nas01: not ready after 3s: tcp:{port} on 127.0.0.1 does not answer" in up.stderr, up.stderr
    assert bmc_power(lab, "nas01") == "On" and all(bmc_power(lab, s) == "Off" for s in PAYLOAD), "payload waits for storage"
