"""The one output layer: Rich tables on a terminal, plain lines otherwise, JSON on --json.

With --json, stdout carries only JSON; warnings, logs and progress go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Off a terminal Rich would wrap tables at 80 columns; pipes and logs get whole lines.
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*(Text("" if v is None else str(v)) for v in row))  # values are data, never markup ("[datastore1] ...")
    stdout.print(t)


def yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def note(message: str) -> None:
    stderr.print(f"[yellow]note:[/] {message}", markup=True, highlight=False)


def ask(question: str) -> bool:
    """A yes/no question on stderr, answered on stdin: y or yes (any case) is yes; anything else, EOF or Ctrl-C is no."""
    try:
        answer = stderr.input(question, markup=False)
    except (EOFError, KeyboardInterrupt):
        stderr.print()
        return False
    return answer.strip().lower() in ("y", "yes")


def no_color() -> None:
    """--no-color (Rich honours NO_COLOR by itself)."""
    stdout.no_color = True
    stderr.no_color = True


class Progress:
    """Run feedback on stderr: the phase, counts and elapsed time on a terminal; plain lines otherwise."""

    def __init__(self) -> None:
        import time

        self._time = time.monotonic
        self.start = time.monotonic()
        self.done = 0
        self.failed = 0
        self.phase = ""
        self.live = stderr.is_terminal
        self._status = stderr.status("") if self.live else None
        if self._status is not None:
            self._status.start()

    def __call__(self, kind: str, data: object) -> None:
        if kind == "phase":
            self.phase = str(data)
            if not self.live:
                stderr.print(f"[{self._elapsed()}] {self.phase}", markup=False)
        elif kind == "note":
            note(str(data))
        elif kind == "step":
            r = data
            self.done += 1
            status = getattr(r, "status", "")
            self.failed += not getattr(r, "ok", False)
            if not (self.live and status == "ok"):  # on a terminal the status line counts the ok steps
                line = f"[{self._elapsed()}] {status:7} {getattr(r, 'action', '')} {getattr(r, 'target', '')}: {getattr(r, 'detail', '')}"
                stderr.print(line, markup=False)
        if self._status is not None:
            self._status.update(f"{self.phase}  {self.done} steps done  {self.failed} not ok  {self._elapsed()}")

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()

    def _elapsed(self) -> str:
        seconds = int(self._time() - self.start)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"
