"""OpenSSH's own sshd on 127.0.0.1, as a plain server's SSH (a peer we did not write): a fresh host key, one
authorized client key whose forced command stands for the machine's OS command (labsim's POST /labsim/os-shutdown
is what `systemctl poweroff` does to the modelled machine). Its log says who logged in and what ran."""

from __future__ import annotations

import getpass
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import wait_until

SSHD = Path("/usr/sbin/sshd")


@dataclass
class Sshd:
    port: int
    user: str
    host_key: str  # the server's public key line, to pin
    client_key: Path  # the private key labswitch logs in with
    log: Path

    def said(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sshd(workdir: Path, forced_command: str) -> Iterator[Sshd]:
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)], check=True)
    keys = workdir / "authorized_keys"
    assert '"' not in forced_command, "authorized_keys quotes the forced command with double quotes"
    keys.write_text(f'command="{forced_command}",no-pty {(workdir / "client.pub").read_text()}')
    keys.chmod(0o600)
    port = _free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {workdir / 'host'}\nAuthorizedKeysFile {keys}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nPidFile {workdir / 'sshd.pid'}\nLogLevel VERBOSE\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation directory
    log = workdir / "sshd.log"
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        wait_until(lambda: port_answers(port) or proc.poll() is not None, 10, "sshd listening")
        assert proc.poll() is None, f"sshd ended: {log.read_text()}"
        yield Sshd(port, getpass.getuser(), (workdir / "host.pub").read_text().strip(), workdir / "client", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def port_answers(port: int) -> bool:
    """A TCP connection to 127.0.0.1:port is accepted."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False
