"""One run at a time: an OS file lock in the state directory.

Every run that changes the lab (down, up, fix, a rolling reboot; later the service's runs) holds
``flock(2)`` on ``<state dir>/run.lock``. The kernel drops the lock when the process ends, however it
ends, so a killed run never leaves it stuck; containers that share the state volume on one host share
the lock. The holder writes who it is into the file (JSON) so that a refused run can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from labswitch.errors import ConfigError, RunInProgress


@dataclass(frozen=True)
class Holder:
    """Who holds the lock: shown to a run that is refused."""

    intent: str
    groups: tuple[str, ...]
    started: float
    pid: int
    host: str
    run_id: str | None = None  # known once the run is journaled

    def describe(self) -> str:
        what = f"{self.intent} of {', '.join(self.groups) or 'the lab'}"
        run = f"run {self.run_id}, " if self.run_id else ""
        when = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"{what} ({run}started {when}, pid {self.pid} on {self.host})"


class RunLock:
    """The held lock; ``update`` records the run id once the run is journaled."""

    def __init__(self, path: Path, fd: int, holder: Holder) -> None:
        self.path = path
        self._fd = fd
        self.holder = holder
        self._write()

    def update(self, run_id: str) -> None:
        self.holder = replace(self.holder, run_id=run_id)
        self._write()

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1

    def _write(self) -> None:
        data = json.dumps({**asdict(self.holder), "groups": list(self.holder.groups)}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


def lock_path(state_base: Path, lab: str | None = None) -> Path:
    """The lab's run lock (config.lab_id): one run at a time per lab; two labs in one state directory do not wait on
    each other. Without a lab: the one lock of the whole state directory."""
    if lab is None:
        return state_base / "run.lock"
    return state_base / f"run-{hashlib.sha256(lab.encode()).hexdigest()[:12]}.lock"


def holder(path: Path) -> Holder | None:
    """Who holds the lock at ``path`` now; None when nobody does (a status page asks this)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(path) or Holder("a run", (), time.time(), 0, "?")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(
    state_base: Path,
    intent: str,
    groups: Sequence[str],
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    lab: str | None = None,
) -> Iterator[RunLock]:
    """Hold the run lock (of ``lab``) for the block. Another holder: RunInProgress at once, or after ``wait`` seconds."""
    path = lock_path(state_base, lab)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"run lock {path}: cannot open ({exc.strerror}); check state_dir and its permissions") from exc
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError as exc:
            other = _read(path)
            text = other.describe() if other else "another run (it has not said which yet)"
            if time.monotonic() >= deadline:
                os.close(fd)
                hint = "wait for it to finish, or pass --wait" if wait == 0 else f"it still runs after --wait {wait:.0f}s"
                raise RunInProgress(f"run lock {path}: another labswitch run is in progress: {text}; {hint}") from exc
            if on_wait is not None and not told:
                on_wait(f"waiting for the run in progress to finish: {text}")
                told = True
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    lock = RunLock(path, fd, Holder(intent, tuple(groups), time.time(), os.getpid(), socket.gethostname()))
    try:
        yield lock
    finally:
        lock.release()


def _read(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return Holder(
            str(data["intent"]),
            tuple(str(g) for g in data.get("groups") or ()),
            float(data["started"]),
            int(data["pid"]),
            str(data.get("host", "?")),
            data.get("run_id"),
        )
    except (KeyError, TypeError, ValueError):
        return None
