"""The vCenter Server Appliance over SSH: an interactive root login that works from either
login shell (the appliance shell, where `shell` enters bash, or bash itself), then commands
run in bash with their exit status read back.

Used by `labswitch vcsa check|repair`. Host keys are checked (known_hosts or a pinned key).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from labswitch import ssh
from labswitch.config import Appliance
from labswitch.config.secrets import plain
from labswitch.errors import ConnectionFailed, VSphereError

PROMPT = "__LS_PS1__ "
_APPLIANCESH = re.compile(r"Command>\s*$")
_BASH = re.compile(r"[#$]\s*$")
_DISABLED = re.compile(r"shell\s+(access\s+)?is\s+disabled|shell\.set --enabled", re.IGNORECASE)
_RC = re.compile(r"__LS_RC__(\d+)\s*\r?\n(?:.*\r?\n)*?.*" + re.escape(PROMPT) + r"$")
HISTORY = "/var/vmware/applmgmt/backupRestore-history.json"
# Services without which the appliance's management interface reports it "cannot be used or repaired".
CORE = (
    "applmgmt",
    "lookupsvc",
    "vmafdd",
    "vmdird",
    "vmware-stsd",
    "vmware-vpostgres",
    "vmware-vpxd",
    "vmware-vapi-endpoint",
    "vsphere-ui",
)


@dataclass(frozen=True)
class Health:
    login_shell: str  # appliancesh | bash
    running: tuple[str, ...]
    stopped: tuple[str, ...]
    backup_history: bool  # the backup history file is present

    @property
    def core_stopped(self) -> tuple[str, ...]:
        return tuple(s for s in CORE if s in self.stopped)

    @property
    def healthy(self) -> bool:
        return not self.core_stopped and bool(self.running)


def parse_status(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`service-control --status --all`: 'Running:' / 'Stopped:' headers, service names below them."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        header = re.match(r"^\s*([A-Za-z]+):\s*$", line)
        if header:
            current = header.group(1).lower()
            continue
        if current:
            sections.setdefault(current, []).extend(line.split())
    return tuple(sections.get("running", [])), tuple(sections.get("stopped", []))


class ApplianceShell:
    """One interactive SSH session on the appliance, in bash."""

    def __init__(self, appliance: Appliance) -> None:
        self.appliance = appliance
        self.host, self.port = appliance.endpoint()
        self.where = f"vCenter appliance {self.host}:{self.port} (SSH)"
        self.login_shell = "?"
        self._conn: Any = None
        self._proc: Any = None
        self._buffer = ""

    async def __aenter__(self) -> ApplianceShell:
        a = self.appliance
        trust = ssh.known_hosts(a.host_key, a.known_hosts, self.where, "vcsa.host_key")
        password = plain(a.password)
        self._conn = await ssh.connect(self.host, self.port, a.user, password, trust, a.timeout, self.where, "vcsa.user and vcsa.password")
        self._proc = await self._conn.create_process(term_type="xterm", term_size=(500, 50))
        first = await self._until(lambda b: bool(_APPLIANCESH.search(b) or _BASH.search(b)), "a shell prompt")
        if _APPLIANCESH.search(first):
            self.login_shell = "appliancesh"
            await self._enter_bash()
        else:
            self.login_shell = "bash"
        self._send(f"stty -echo 2>/dev/null; unset PROMPT_COMMAND; PS1='{PROMPT}'")
        await self._until(lambda b: b.endswith(PROMPT), "the bash prompt")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.close()
        if self._conn is not None:
            self._conn.close()

    async def run(self, command: str, timeout: float | None = None) -> tuple[int, str]:
        """Run ``command`` in bash: (exit status, output)."""
        self._send(f"{command}; echo __LS_RC__$?")
        text = await self._until(lambda b: bool(_RC.search(b)), f"'{command}' to finish", timeout)
        match = _RC.search(text)
        assert match is not None
        body = text[: match.start()].replace("\r", "")
        lines = [line for line in body.split("\n") if command not in line]  # the echoed command, where the terminal echoes
        return int(match.group(1)), "\n".join(lines).strip("\n")

    async def _enter_bash(self) -> None:
        self._send("shell")
        out = await self._until(lambda b: bool(_BASH.search(b) or _APPLIANCESH.search(b)), "bash after 'shell'")
        if _APPLIANCESH.search(out) and not _BASH.search(out.rsplit("\n", 1)[-1]):
            if not _DISABLED.search(out):
                raise VSphereError(f"{self.where}: the appliance shell did not start bash: {out.strip().splitlines()[-2:]}")
            self._send("shell.set --enabled true")
            await self._until(lambda b: bool(_APPLIANCESH.search(b)), "the appliance shell")
            self._send("shell")
            await self._until(lambda b: bool(_BASH.search(b)), "bash after enabling it")

    def _send(self, line: str) -> None:
        self._proc.stdin.write(line + "\n")

    async def _until(self, done: Any, what: str, timeout: float | None = None) -> str:
        """Read until ``done(text read so far)``; returns that text and starts afresh."""
        limit = timeout or self.appliance.timeout
        try:
            async with asyncio.timeout(limit):
                while not done(self._buffer):
                    chunk = await self._proc.stdout.read(65536)
                    if not chunk:
                        raise ConnectionFailed(f"{self.where}: the session closed while waiting for {what}")
                    self._buffer += chunk
        except TimeoutError as exc:
            tail = self._buffer.strip().splitlines()[-1:] or ["nothing"]
            raise ConnectionFailed(f"{self.where}: no {what} within {limit:.0f}s (last output: {tail[0][:120]!r})") from exc
        text, self._buffer = self._buffer, ""
        return text


async def health(shell: ApplianceShell) -> Health:
    rc, out = await shell.run("service-control --status --all")
    if rc != 0:
        raise VSphereError(f"{shell.where}: 'service-control --status --all' failed (exit {rc}): {out.strip()[:200]}")
    running, stopped = parse_status(out)
    rc_hist, _ = await shell.run(f"test -e {HISTORY}")
    return Health(shell.login_shell, running, stopped, rc_hist == 0)
