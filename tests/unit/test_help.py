"""`--help` as a user reads it: flags show as flags (no `<bool>` as if they took a value), every command has help."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMMANDS = [[], ["down"], ["up"], ["status"], ["fix", "l1tf"], ["serve"], ["history"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "labswitch")
def test_flags_show_as_flags(command: list[str]) -> None:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "labswitch", *command, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "<bool>" not in out.stdout and "<int>   More detail" not in out.stdout, out.stdout
    assert "Usage: " in out.stdout
