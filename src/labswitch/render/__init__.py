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
