"""The page's logins: sessions kept on the server (the cookie carries only an id), revoked by logout, by a new
password (`labswitch serve passwd`, seen at once: the config file's hash is re-read when the file changes) and by a
restart; and a throttle on wrong passwords, per client address and overall, that makes clients wait without
holding a worker."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import tomllib
from collections import deque
from pathlib import Path

log = logging.getLogger("labswitch.serve")


class Passwords:
    """The page's bcrypt hash: the config's, re-read from the config file whenever the file changes."""

    def __init__(self, hash_: str | None, path: Path | None) -> None:
        self._hash = (hash_ or "").encode()
        self._path = path
        self._mtime = self._stat()

    def _stat(self) -> float | None:
        try:
            return self._path.stat().st_mtime if self._path is not None else None
        except OSError:
            return None

    def current(self) -> bytes:
        mtime = self._stat()
        if mtime != self._mtime and self._path is not None:
            self._mtime = mtime
            try:
                serve = tomllib.loads(self._path.read_text()).get("serve") or {}
                self._hash = str(serve.get("password_hash") or "").encode()
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
                log.warning("%s: cannot read [serve] password_hash again; keeping the one loaded", self._path)
        return self._hash

    def fingerprint(self) -> str:
        """Changes with the password: a session made under another one is no session."""
        return hashlib.sha256(self.current()).hexdigest()[:16]


class Sessions:
    """Session ids the server issued and has not revoked, each with the password it was made under."""

    def __init__(self, passwords: Passwords, max_sessions: int = 1000) -> None:
        self.passwords = passwords
        self.max = max_sessions
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}  # id -> password fingerprint, oldest first

    def issue(self) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._ids[sid] = self.passwords.fingerprint()
            while len(self._ids) > self.max:  # bounded: the oldest session goes first
                self._ids.pop(next(iter(self._ids)))
        return sid

    def valid(self, sid: object) -> bool:
        if not isinstance(sid, str):
            return False
        with self._lock:
            made_under = self._ids.get(sid)
        return made_under is not None and secrets.compare_digest(made_under, self.passwords.fingerprint())

    def revoke(self, sid: object) -> None:
        if isinstance(sid, str):
            with self._lock:
                self._ids.pop(sid, None)


class Throttle:
    """Wrong passwords make their address wait: free for the first ``free``, then 1 s, 2 s, 4 s … (at most
    ``ceiling``) after each; and more than ``overall`` wrong passwords a minute from anywhere make every address
    wait. ``wait(address)``: seconds still to wait (0: go on)."""

    def __init__(self, free: int = 3, ceiling: float = 300.0, overall: int = 30, window: float = 900.0) -> None:
        self.free, self.ceiling, self.overall, self.window = free, ceiling, overall, window
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def admit(self, address: str, now: float | None = None) -> float:
        """0 when a try from ``address`` may go on (it counts as wrong until ``succeeded``: tries at once are
        counted as they arrive, not once their passwords are checked); else the seconds it must still wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = self._due(address, now)
            if due == 0:
                self._record(address, now)
            return due

    def wait(self, address: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._due(address, now)

    def _due(self, address: str, now: float) -> float:
        """Under the lock: the seconds ``address`` must still wait."""
        self._forget(now)
        mine = self._failures.get(address, deque())
        due = 0.0
        if len(mine) >= self.free:
            due = mine[-1] + min(self.ceiling, 2.0 ** (len(mine) - self.free)) - now
        if len(self._all) >= self.overall:
            due = max(due, self._all[-self.overall] + 60.0 - now)
        return max(0.0, due)

    def _record(self, address: str, now: float) -> None:
        self._failures.setdefault(address, deque()).append(now)
        self._all.append(now)
        if len(self._failures) > 10_000:  # bounded memory whatever the number of addresses
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _forget(self, now: float) -> None:
        while self._all and self._all[0] < now - 60.0:
            self._all.popleft()
        for address in [a for a, times in self._failures.items() if times[-1] < now - self.window]:
            del self._failures[address]
