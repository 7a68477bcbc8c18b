"""A NUT (Network UPS Tools) client over its documented network protocol (docs/net-protocol.txt): one
TCP connection to upsd, USERNAME/PASSWORD/LOGIN, then GET VAR. The client NUT ships (PyNUTClient)
is GPL-3; this project is Apache-2.0, and the protocol is a handful of text lines.

Every failure is one labswitch error naming the UPS and the fix.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from labswitch.errors import AuthenticationFailed, ConnectionFailed, EndpointError

DEFAULT_PORT = 3493
READ = ("ups.status", "battery.charge", "battery.runtime", "ups.model", "ups.mfr", "input.voltage", "ups.load")


@dataclass(frozen=True)
class UpsReading:
    """What the UPS says now."""

    name: str
    status: frozenset[str]  # OL (on line), OB (on battery), LB (low battery), CHRG, DISCHRG, ...
    charge: float | None  # percent
    runtime: float | None  # seconds of battery left, as the UPS estimates
    model: str | None = None
    load: float | None = None  # percent

    @property
    def on_battery(self) -> bool:
        return "OB" in self.status

    @property
    def low_battery(self) -> bool:
        return "LB" in self.status

    @property
    def on_line(self) -> bool:
        return "OL" in self.status


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str | None
    ups: str

    @property
    def where(self) -> str:
        return f"UPS {self.ups}@{self.host}:{self.port}"


def parse_url(url: str) -> Target:
    """nut://user@host:port/ups (port 3493 by default)."""
    parts = urlsplit(url)
    ups = parts.path.strip("/")
    if parts.scheme != "nut" or not parts.hostname or not ups:
        raise ValueError("must be nut://USER@HOST[:PORT]/UPS, e.g. nut://upsmon@nas:3493/ups1")
    return Target(parts.hostname, parts.port or DEFAULT_PORT, parts.username, ups)


class NutClient:
    """One session with upsd, as a context manager."""

    def __init__(self, target: Target, password: str | None, timeout: float) -> None:
        self.target = target
        self.password = password
        self.timeout = timeout
        self.where = target.where
        self._sock: socket.socket | None = None
        self._buf = b""

    def __enter__(self) -> NutClient:
        try:
            self._sock = socket.create_connection((self.target.host, self.target.port), timeout=self.timeout)
        except OSError as exc:
            raise ConnectionFailed(
                f"{self.where}: cannot connect ({exc.strerror or exc}); check ups.url and that upsd listens there"
            ) from exc
        if self.target.user:
            self._ask(f"USERNAME {self.target.user}")
            if self.password is not None:
                self._ask(f"PASSWORD {self.password}", secret=True)
            # LOGIN proves the credentials (upsd checks them only for actions): a monitor logs in, as upsmon does.
            self._ask(f"LOGIN {self.target.ups}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendall(b"LOGOUT\n")
            self._sock.close()
            self._sock = None

    def reading(self) -> UpsReading:
        values = {}
        for name in READ:
            try:
                values[name] = self.get(name)
            except EndpointError as exc:
                if "VAR-NOT-SUPPORTED" not in str(exc):
                    raise
        return UpsReading(
            self.target.ups,
            frozenset(values.get("ups.status", "").split()),
            _number(values.get("battery.charge")),
            _number(values.get("battery.runtime")),
            values.get("ups.model"),
            _number(values.get("ups.load")),
        )

    def get(self, var: str) -> str:
        line = self._ask(f"GET VAR {self.target.ups} {var}")
        words = shlex.split(line)  # VAR <ups> <var> "<value>"
        if len(words) < 4 or words[0] != "VAR":
            raise EndpointError(f"{self.where}: unexpected answer to GET VAR {var}: {line[:80]}")
        return words[3]

    def _ask(self, line: str, secret: bool = False) -> str:
        assert self._sock is not None
        try:
            self._sock.sendall(line.encode() + b"\n")
            answer = self._line()
        except OSError as exc:
            raise ConnectionFailed(f"{self.where}: no answer ({exc.strerror or type(exc).__name__})") from exc
        if answer.startswith("ERR "):
            error = answer.split()[1] if len(answer.split()) > 1 else answer
            asked = "PASSWORD" if secret else line.split()[0]
            if error in ("ACCESS-DENIED", "INVALID-PASSWORD", "USERNAME-REQUIRED", "PASSWORD-REQUIRED"):
                raise AuthenticationFailed(f"{self.where}: {asked} refused ({error}); check the user in ups.url and ups.password")
            if error == "UNKNOWN-UPS":
                raise EndpointError(f"{self.where}: upsd knows no UPS {self.target.ups!r}; check the name in ups.url (upsc -l)")
            raise EndpointError(f"{self.where}: {asked} refused ({error})")
        return answer

    def _line(self) -> str:
        assert self._sock is not None
        while b"\n" not in self._buf:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
