"""A HAND-WRITTEN FAKE of a vCenter Server Appliance's root SSH login (a last resort: no
emulator of the appliance exists). It behaves like both login shells: the appliance shell
(prompt ``Command> ``; ``shell`` enters bash, refused until ``shell.set --enabled true`` when
shell access is disabled) and bash, with the terminal echoing input as a PTY does. In bash it
knows the commands labswitch runs: ``service-control --status|--stop|--start --all``,
``test``, ``mv -n`` and ``stty``, over an in-memory file set.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncssh

from tests.peers import ssh_server

HISTORY = "/var/vmware/applmgmt/backupRestore-history.json"
SERVICES = [
    "applmgmt", "lookupsvc", "lwsmd", "vmafdd", "vmcad", "vmdird", "vmonapi", "vmware-stsd", "vmware-vpostgres",
    "vmware-vpxd", "vmware-vapi-endpoint", "vsphere-ui", "vmware-imagebuilder", "vmware-netdumper",
]  # fmt: skip
ALWAYS_STOPPED = {"vmware-imagebuilder", "vmware-netdumper"}  # manual start type: stopped on a healthy appliance too


@dataclass
class FakeAppliance:
    login_shell: str = "appliancesh"  # or "bash"
    shell_enabled: bool = True
    stopped: set[str] = field(default_factory=lambda: {"vsphere-ui", "vmware-vpxd", *ALWAYS_STOPPED})
    files: set[str] = field(default_factory=lambda: {HISTORY})
    start_fails_while_history: bool = True  # the stuck history file keeps applmgmt from starting
    user: str = "root"
    password: str = "vmware-Sup3r"
    port: int = 0
    host_key: str = ""
    commands: list[str] = field(default_factory=list)  # every bash command, in order

    def bash(self, command: str) -> tuple[str, int]:
        self.commands.append(command)
        if command.startswith("stty ") or "PS1=" in command:
            return "", 0
        argv = shlex.split(command)
        if argv[:1] == ["service-control"]:
            return self._service_control(argv[1:])
        if argv[:1] == ["test"]:
            return "", 0 if self._test(argv[1:]) else 1
        if argv[:2] == ["mv", "-n"] and len(argv) == 4:
            src, dst = argv[2], argv[3]
            if src not in self.files:
                return f"mv: cannot stat '{src}': No such file or directory\n", 1
            if dst not in self.files:
                self.files.discard(src)
                self.files.add(dst)
            return "", 0
        return f"bash: {argv[0] if argv else ''}: command not found\n", 127

    def _test(self, args: list[str]) -> bool:
        joined = " ".join(args)
        parts = [p.strip() for p in joined.split("&& test")]
        results = []
        for part in parts:
            words = part.split()
            negate = words[0] == "!"
            words = words[1:] if negate else words
            exists = words[0] == "-e" and words[1] in self.files
            results.append(exists != negate)
        return all(results)

    def _service_control(self, args: list[str]) -> tuple[str, int]:
        if args == ["--status", "--all"]:
            running = [s for s in SERVICES if s not in self.stopped]
            stopped = [s for s in SERVICES if s in self.stopped]
            return f"Running:\n {' '.join(running)}\nStopped:\n {' '.join(stopped)}\n", 0
        if args == ["--stop", "--all"]:
            self.stopped = set(SERVICES)
            return "Operation not cancellable. Please wait for it to finish...\nPerforming stop operation on service ...\n", 0
        if args == ["--start", "--all"]:
            if self.start_fails_while_history and HISTORY in self.files:
                self.stopped = {"applmgmt", "vsphere-ui", *ALWAYS_STOPPED}
                return "Service-control failed. Error: Failed to start services in profile ALL. RC=1\n", 1
            self.stopped = set(ALWAYS_STOPPED)
            return "Operation not cancellable. Please wait for it to finish...\nPerforming start operation on profile: ALL...\n", 0
        return "Usage: service-control [--start|--stop|--status] [--all|SERVICE]\n", 2

    async def session(self, process: asyncssh.SSHServerProcess[str]) -> None:
        mode, prompt = self.login_shell, "root@vcsa [ ~ ]# "
        banner = "VMware vCenter Server 7.0.3.01000\n\nType: vCenter Server with an embedded Platform Services Controller\n\n"
        process.stdout.write(
            banner + ('Connected to service\n\n    * List APIs: "help api list"\n\nCommand> ' if mode == "appliancesh" else prompt)
        )
        try:
            async for raw in process.stdin:
                line = raw.rstrip("\r\n")
                if mode == "appliancesh":
                    if line == "shell" and self.shell_enabled:
                        mode = "bash"
                        process.stdout.write("Shell access is granted to root\n" + prompt)
                    elif line == "shell":
                        process.stdout.write("Shell is disabled.\nCommand> ")
                    elif line == "shell.set --enabled true":
                        self.shell_enabled = True
                        process.stdout.write("Command> ")
                    else:
                        process.stdout.write(f"Unknown command: `{line}'\nCommand> ")
                    continue
                if (m := re.search(r"PS1='([^']*)'", line)) is not None:
                    prompt = m.group(1)
                body, marker, _ = line.partition("; echo __LS_RC__$?")
                out, rc = self.bash(body.strip())
                process.stdout.write(out.replace("\n", "\r\n") + (f"__LS_RC__{rc}\r\n" if marker else "") + prompt)
        except asyncssh.BreakReceived:
            pass
        process.exit(0)


@contextmanager
def appliance_ssh(appliance: FakeAppliance) -> Iterator[FakeAppliance]:
    with ssh_server(appliance.user, appliance.password, appliance.session) as (port, host_key):
        appliance.port, appliance.host_key = port, host_key
        yield appliance
