"""Many servers, one cause, one line (PURE): "BMC of 12 servers (esx11, esx12, … esx34): login refused for user
'root'; check bmc.user and bmc.password" instead of twelve lines that differ only in the server's name and address."""

from __future__ import annotations

import re
from collections.abc import Mapping

_SERVER = re.compile(r"^server (?P<server>\S+) BMC (?P<where>\S+): (?P<why>.+)$", re.S)
SHOWN = 3  # servers named before the "…"


def grouped(errors: Mapping[str, str], suffix: str = "") -> list[str]:
    """``errors``: server -> its BMC's error line. Errors that differ only in the server (and its BMC's address) are
    one line naming the servers; the rest stay as they are. ``suffix`` ends every line (e.g. what to do)."""
    by_why: dict[str, list[str]] = {}
    alone: list[str] = []
    for server, text in errors.items():
        match = _SERVER.match(text)
        if match is None or match["server"] != server:
            alone.append(text + suffix)
        else:
            by_why.setdefault(match["why"], []).append(server)
    lines = []
    for why, servers in by_why.items():
        if len(servers) == 1:
            lines.append(errors[servers[0]] + suffix)
            continue
        names = ", ".join(servers[:SHOWN]) + (f", … {servers[-1]}" if len(servers) > SHOWN else "")
        lines.append(f"BMC of {len(servers)} servers ({names}): {why}{suffix}")
    return lines + alone
