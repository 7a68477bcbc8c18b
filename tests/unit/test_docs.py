"""The documentation cannot drift: the site builds with --strict, and every example in it is run.

- ``toml`` blocks are loaded as labswitch configuration (a fragment on top of a minimal lab, the way a
  reader would paste it into their file), through the same validation as `labswitch --config`;
- ``sh`` blocks: every `labswitch ...` command line is parsed by labswitch's own command line (Click,
  through Typer), so an option or command that does not exist, or a value it refuses, fails here;
  the block after ``<!-- synopsis -->`` (the README's command overview, in a notation with `[...]` and
  `a|b`) is checked for its commands and option names only;
- ``json`` and ``yaml`` blocks parse.

The quick start itself is run end to end against labsim in tests/integration/test_quickstart.py.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import typer.main
import yaml

from labswitch.cli import _register, app
from labswitch.config.load import parse

_register([])  # every command's module, as `labswitch --help` imports them
REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# What a fragment lands in: one vCenter, the groups the examples name, one server.
BASE = {
    "vcenter": {"url": "vcsa.lab.local", "user": "administrator@vsphere.local", "password": {"env": "LABSWITCH_VCENTER_PASSWORD"}},
    "groups": {"mgmt": {"always_on": True}, "payload": {}, "lab": {}},
    "servers": [
        {
            "name": "base1",
            "esxi": "base1.lab.local",
            "group": "payload",
            "bmc": {"driver": "redfish", "address": "base1-oob", "user": "root", "password": {"env": "LABSWITCH_BMC_PASSWORD"}},
        }
    ],
}
# A Proxmox VE fragment ([proxmox]) lands in a Proxmox lab: one cluster, one node.
PVE_BASE = {
    "proxmox": {"url": "pve1.lab.local", "user": "root@pam", "password": {"env": "LABSWITCH_PROXMOX_PASSWORD"}},
    "groups": {"lab": {}},
    "servers": [
        {
            "name": "pvebase",
            "node": "pvebase",
            "group": "lab",
            "bmc": {"driver": "redfish", "address": "pvebase-oob", "user": "root", "password": {"env": "LABSWITCH_BMC_PASSWORD"}},
        }
    ],
}
# Commands whose options act while they are parsed (Click's eager callbacks): checked for existence only.
EAGER = {"--help", "-h", "--version", "--install-completion", "--show-completion"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence
    lang: str
    text: str
    synopsis: bool

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks() -> Iterator[Block]:
    for page in PAGES:
        lines = page.read_text().splitlines()
        i = 0
        while i < len(lines):
            fence = re.match(r"^```(\w*)", lines[i])
            if fence:
                start, body = i, []
                i += 1
                while not lines[i].startswith("```"):
                    body.append(lines[i])
                    i += 1
                synopsis = start > 0 and lines[start - 1].strip() == "<!-- synopsis -->"
                yield Block(page, start + 1, fence.group(1), "\n".join(body), synopsis)
            i += 1


def of(lang: str) -> list[Block]:
    return [b for b in blocks() if b.lang == lang]


def merged(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("block", of("toml"), ids=str)
def test_toml_examples_are_valid_configuration(block: Block) -> None:
    fragment = tomllib.loads(block.text)  # a syntax error fails with its line
    base = PVE_BASE if "proxmox" in fragment else BASE
    config = parse(tomli_w.dumps(merged(base, fragment)).encode(), source=str(block), resolve_secrets=False)
    assert config.servers, block


def commands(block: Block) -> Iterator[list[str]]:
    """Every `labswitch` command line of a shell block, as argv after `labswitch`."""
    text = block.text.replace("\\\n", " ")
    for raw in text.splitlines():
        lexer = shlex.shlex(raw, posix=True, punctuation_chars=";&" if block.synopsis else ";&|")  # a synopsis' a|b is one word
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
        command: list[str] = []
        for word in [*words, ";"]:
            if word in {"|", "||", "&&", ";", "&"}:
                while command and re.match(r"^[A-Z_]+=", command[0]):
                    command.pop(0)  # VAR=value labswitch ...
                if command and command[0] == "labswitch":
                    yield command[1:]
                command = []
            else:
                command.append(word)


def resolve(argv: list[str]) -> tuple[Any, Any]:
    """Parse argv as `labswitch` would, down to the command that would run; nothing is invoked.

    Typer vendors its own Click (typer._click), so groups are told by their `commands`, not by a class."""
    root = typer.main.get_command(app)
    ctx = root.make_context("labswitch", list(argv))
    command: Any = root
    while hasattr(command, "commands"):
        rest = [*(getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])), *ctx.args]  # Click <8.2; Typer 0.2x
        if not rest:
            break
        name, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, args, parent=ctx)
        command = sub
    return command, ctx


SHELL = [(b, argv) for b in of("sh") if not b.synopsis for argv in commands(b)]


@pytest.mark.parametrize(("block", "argv"), SHELL, ids=[f"{b}:{' '.join(a)[:50]}" for b, a in SHELL])
def test_shell_examples_are_commands_labswitch_takes(block: Block, argv: list[str]) -> None:
    if EAGER & set(argv):
        _path_and_options(argv)
        return
    try:
        command, _ = resolve(argv)
    except Exception as exc:  # Click's UsageError and BadParameter, from Typer's own copy of Click
        if not hasattr(exc, "format_message"):
            raise
        pytest.fail(f"{block}: labswitch {shlex.join(argv)}: {exc.format_message()}")
    assert command.callback is not None, f"{block}: labswitch {shlex.join(argv)}: names a group, not a command"


def _path_and_options(argv: list[str]) -> tuple[Any, list[str]]:
    """The command a synopsis line names, and the options it mentions; each must exist there or above it."""
    command: Any = typer.main.get_command(app)
    chain = [command]
    for word in argv:
        if word.split("|")[0] in getattr(command, "commands", {}):
            command = command.commands[word.split("|")[0]]
            chain.append(command)
    known = {opt for c in chain for p in c.params for opt in (*p.opts, *p.secondary_opts)} | EAGER
    mentioned = [m for word in argv for m in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", word)]
    missing = [m for m in mentioned if m not in known]
    assert not missing, f"labswitch {' '.join(argv)}: no such option {missing} on {chain[-1].name}"
    return command, mentioned


SYNOPSIS = [(b, argv) for b in of("sh") if b.synopsis for argv in commands(b)]


@pytest.mark.parametrize(("block", "argv"), SYNOPSIS, ids=[f"{b}:{' '.join(a)[:50]}" for b, a in SYNOPSIS])
def test_the_synopsis_names_commands_and_options_that_exist(block: Block, argv: list[str]) -> None:
    command, _ = _path_and_options(argv)
    assert command.name != "labswitch" or not argv, f"{block}: labswitch {' '.join(argv)}: no such command"


def test_there_is_a_synopsis_and_examples() -> None:
    assert len(SYNOPSIS) >= 8 and len(SHELL) >= 50 and len(of("toml")) >= 10


@pytest.mark.parametrize("block", of("json"), ids=str)
def test_json_examples_parse(block: Block) -> None:
    assert json.loads(block.text) is not None


@pytest.mark.parametrize("block", of("yaml"), ids=str)
def test_yaml_examples_parse(block: Block) -> None:
    assert isinstance(yaml.safe_load(block.text), dict)


def test_the_site_builds_with_no_warning(tmp_path: Path) -> None:
    """mkdocs --strict: a broken link, a missing anchor or a snippet of the README that is gone fails."""
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "WARNING" not in out.stderr, out.stderr
    failures = (tmp_path / "site" / "failures" / "index.html").read_text()
    assert "a BMC that does not answer" in failures  # the README's table, included by the snippet


def test_the_readme_starts_short() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    assert "../shared" not in readme and "../shared" not in "".join(p.read_text() for p in PAGES)
