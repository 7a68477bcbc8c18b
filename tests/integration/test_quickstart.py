"""The README's quick start, typed as a newcomer would type it: terminal 1's labsim command, then every line
of terminal 2 in one interactive bash (a pseudo-terminal, so labswitch asks its questions and the test answers
them as a person would). Each command must exit 0; the effects are read back through Redfish and pyVmomi.

Simplifications, said here: `make venv labsim` is not run again (make test has just run it); the commands run
in a temporary directory instead of the clone (labsim's binary and the venv are the clone's); labsim is given
`--cert-out` as well, only for the test's own pyVmomi read-back.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pexpect

from tests import labsim
from tests.labsim import Lab

REPO = Path(__file__).resolve().parents[2]
PROMPT = "QUICKSTART$ "


def block(after: str) -> list[str]:
    """The lines of the fenced block that follows the README marker ``after``."""
    text = (REPO / "README.md").read_text()
    body = text.split(after, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in body.splitlines() if line.strip()]


def start_terminal1(workdir: Path) -> tuple[Lab, subprocess.Popen[str]]:
    lines = block("<!-- quickstart:terminal1 -->")
    assert lines[0] == "make venv labsim", lines
    argv = shlex.split(lines[1], comments=True)
    assert argv[0] == "labsim/bin/labsim"
    cmd = [str(labsim.labsim_binary()), *argv[1:], "--cert-out", "labsim.pem"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    env, url, thumbprint = {}, "", ""
    assert proc.stdout is not None
    for line in proc.stdout:  # labsim prints its passwords, then READY; it never ends by itself
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").strip().partition("=")
            env[key] = value
        elif line.startswith("THUMBPRINT "):
            thumbprint = line.split()[1]
        elif line.startswith("READY "):
            url = line.split()[1]
            break
    assert url, "labsim did not print READY"
    return Lab(proc, url, thumbprint, env, workdir / "lab.toml", workdir / "labsim.pem"), proc


def test_the_readme_quick_start_works_from_top_to_bottom(tmp_path: Path) -> None:
    lab, proc = start_terminal1(tmp_path)
    try:
        assert (tmp_path / "lab.toml").exists() and (tmp_path / "lab.env").exists()
        before = {vm for vm, power in labsim.vm_power(lab).items() if power == "poweredOn" and not vm.startswith("vCLS")}
        payload = ("esx11", "esx12", "esx21", "esx22")  # labsim's default lab: 2 clusters x 2 hosts, and mgmt01
        shell = pexpect.spawn(
            "bash",
            ["--norc", "--noprofile"],
            cwd=str(tmp_path),
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(tmp_path),
                "TERM": "xterm",
                "XDG_STATE_HOME": str(tmp_path / "state"),
                "PS1": PROMPT,
            },
            encoding="utf-8",
            dimensions=(50, 160),
            timeout=180,
        )
        shell.expect_exact(PROMPT)
        venv_bin = str(Path(sys.executable).parent)
        for line in block("<!-- quickstart:terminal2 -->"):
            typed = line.replace('"$PWD/.venv/bin', f'"{venv_bin}')  # the clone's venv, typed from tmp_path
            shell.sendline(typed)
            while True:
                seen = shell.expect([r"\[y/N\] ", re.escape(PROMPT)])
                if seen == 0:
                    shell.sendline("y")
                    continue
                break
            transcript = shell.before
            shell.sendline("echo rc=$?")
            shell.expect(r"rc=(\d+)")
            assert shell.match.group(1) == "0", f"{line}\n{transcript}"
            shell.expect_exact(PROMPT)
            command = shlex.split(line, comments=True)
            if command[-1:] == ["down"]:
                assert {s: labsim.bmc_power(lab, s) for s in payload} == dict.fromkeys(payload, "Off"), transcript
        after = {vm for vm, power in labsim.vm_power(lab).items() if power == "poweredOn" and not vm.startswith("vCLS")}
        assert after == before  # up --restore brought back exactly what ran
        assert {s: labsim.bmc_power(lab, s) for s in payload} == dict.fromkeys(payload, "On")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        lab.stop()
        proc.wait(timeout=10)


def test_every_labsim_flag_the_docs_use_exists() -> None:
    """labsim's own usage (Go's flag package) lists each flag the README and docs pass it."""
    usage = subprocess.run([str(labsim.labsim_binary()), "-h"], capture_output=True, text=True, timeout=30)
    known = set(re.findall(r"^\s+-([\w-]+)", usage.stderr, re.M))
    assert {"clusters", "write-config", "secrets-file"} <= known, usage.stderr[:500]
    pages = [REPO / "README.md", *(REPO / "docs").glob("*.md")]
    used: dict[str, str] = {}
    for page in pages:
        for line in page.read_text().splitlines():
            if line.lstrip().startswith("labsim/bin/labsim "):
                for flag in re.findall(r"(?<![\w-])--([a-z][\w-]*)", line.split("#")[0]):
                    used[flag] = f"{page.name}: {line.strip()[:80]}"
    assert used, "no labsim command in the docs"
    missing = {flag: where for flag, where in used.items() if flag not in known}
    assert not missing, missing
    assert os.access(labsim.labsim_binary(), os.X_OK)
