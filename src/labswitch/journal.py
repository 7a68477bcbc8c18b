"""The journal: an embedded SQLite file of runs, their steps, VM power states before each down, and
the cluster settings a down changed (until the up that restores them).

It lives in the user's state directory (XDG; ``state_dir`` in the config overrides).
VM states are recorded by the first down after an up (or ever); a down that resumes an
interrupted one, or repeats a finished one, keeps the states that the first one saw, so
``up --restore`` starts exactly what ran before the lab went down.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from labswitch.errors import ConfigError

if TYPE_CHECKING:
    from labswitch.config import Config

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, intent TEXT NOT NULL, groups TEXT NOT NULL, pid INTEGER,
    started REAL NOT NULL, finished REAL, outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, phase TEXT, action TEXT, target TEXT,
    status TEXT, detail TEXT, seconds REAL, at REAL
);
CREATE TABLE IF NOT EXISTS vm_states (
    run_id TEXT NOT NULL REFERENCES runs(id), grp TEXT NOT NULL, vm_moid TEXT NOT NULL, vm_name TEXT,
    server TEXT, power_state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_changes (
    run_id TEXT NOT NULL REFERENCES runs(id), cluster_moid TEXT NOT NULL, cluster_name TEXT, setting TEXT NOT NULL,
    previous TEXT, changed REAL NOT NULL, restored_by TEXT, restored REAL
);
CREATE TABLE IF NOT EXISTS whole_lab (
    run_id TEXT NOT NULL REFERENCES runs(id), server TEXT NOT NULL, role TEXT NOT NULL, ord INTEGER NOT NULL,
    vm_name TEXT NOT NULL, vm_uuid TEXT NOT NULL, recorded REAL NOT NULL, finished_by TEXT, finished REAL
);
CREATE TABLE IF NOT EXISTS plans (
    run_id TEXT NOT NULL REFERENCES runs(id), part INTEGER NOT NULL, steps TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lab_facts (
    run_id TEXT NOT NULL REFERENCES runs(id), key TEXT NOT NULL, value TEXT NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS vm_states_run ON vm_states(run_id, grp);
CREATE INDEX IF NOT EXISTS steps_run ON steps(run_id, seq);
"""
MIGRATIONS = {  # each applied once to journals written before it: (table, column) -> statement
    ("steps", "server"): "ALTER TABLE steps ADD COLUMN server TEXT",
    ("runs", "reason"): "ALTER TABLE runs ADD COLUMN reason TEXT",  # why a run was started: a user, a schedule, the UPS
    # a step's effect on its server's power (plan.actions: "on" | "off"), read by the energy accounting; steps
    # journaled before it get theirs from what those versions wrote
    ("steps", "effect"): "ALTER TABLE steps ADD COLUMN effect TEXT; "
    "UPDATE steps SET effect = 'off' WHERE status = 'ok' AND action IN ('confirm-off', 'bmc-force-off'); "
    "UPDATE steps SET effect = 'on' WHERE status = 'ok' AND action = 'bmc-power-on' AND detail IS NOT 'already on';",
    # the lab a run was for (config.lab_id): runs journaled before it belong to the first lab that opens the journal
    ("runs", "lab"): "ALTER TABLE runs ADD COLUMN lab TEXT",
}


@dataclass(frozen=True)
class RunRecord:
    id: str
    intent: str
    groups: tuple[str, ...]
    started: float
    finished: float | None
    outcome: str  # running | ok | failed | interrupted | refused
    reason: str | None = None  # why it was started, when not by hand (ups, schedule, ...)


@dataclass(frozen=True)
class StepRecord:
    """One step's outcome as journaled (the same fields as the runner's StepResult)."""

    phase: str
    action: str
    target: str
    status: str
    detail: str
    seconds: float
    server: str | None = None


@dataclass(frozen=True)
class ClusterChange:
    """A cluster setting a down changed and no up has restored yet."""

    run_id: str
    cluster_moid: str
    cluster_name: str
    setting: str  # "vcls" | "ha" | "vsan-power"
    previous: str | None  # the value to restore, as read before the change ("true", "false"; None: was not set)
    changed: float


@dataclass(frozen=True)
class WholeLab:
    """A whole-lab down not yet undone by an up: the host that runs vCenter, vCenter's VM and the VMs
    it needs, in start order (by name and instance UUID: the host's own ids are not vCenter's)."""

    run_id: str
    server: str
    vcenter: tuple[str, str]  # (name, instance UUID)
    dependencies: tuple[tuple[str, str], ...]
    peers: tuple[str, ...] = ()  # vCenter on vSAN: the cluster's other servers (vCenter's storage needs them all)


@dataclass(frozen=True)
class VMState:
    group: str
    moid: str
    name: str
    server: str
    power_state: str


def state_base(state_dir: str | None) -> Path:
    """The state directory: ``state_dir`` from the config, else the XDG state directory."""
    return Path(state_dir).expanduser() if state_dir else Path(platformdirs.user_state_dir("labswitch"))


def default_path(state_dir: str | None) -> Path:
    return state_base(state_dir) / "journal.sqlite3"


def connect(path: Path, schema: str, migrations: dict[tuple[str, str], str] | None = None) -> sqlite3.Connection:
    """The state directory's SQLite file, with ``schema`` (and ``migrations``) applied; ConfigError when it cannot be opened."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL: a killed labswitch loses nothing; an OS crash may lose
        # the last steps, which a run again finds done. FULL cost 0.24 ms per step, measured.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
        for (table, column), statement in (migrations or {}).items():
            if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                db.executescript(statement)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"journal {path}: cannot open ({exc}); check state_dir and its permissions") from exc
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """Every write inside is one transaction (the connection is in autocommit mode otherwise)."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Journal:
    """Runs, their steps, VM states before each down, cluster changes, whole-lab records (energy samples are
    their own store beside it: labswitch.samples, in the same file)."""

    # About 200 lines: one short method per question the use cases ask of the run records, on one connection.

    def __init__(self, path: Path, lab: str | None = None) -> None:
        """``lab`` (config.lab_id): only that lab's records are seen and written; None: every lab's (tools, tests)."""
        self._db = connect(path, SCHEMA, MIGRATIONS)
        self._lock = threading.RLock()  # re-entered by add_step within transaction()
        self._seq: dict[str, int] = {}  # run id -> the next step's number (this process holds the run lock)
        self.path = path
        self.lab = lab
        if lab is not None:  # a journal from before labs were told apart: its runs are the first lab's
            with self._lock:
                self._db.execute("UPDATE runs SET lab = ? WHERE lab IS NULL", (lab,))

    @classmethod
    def of(cls, config: Config) -> Journal:
        """The journal of the config's lab: its state directory's file, its records only."""
        return cls(default_path(config.state_dir), lab=config.lab_id)

    def _mine(self, runs: str = "r") -> tuple[str, tuple[str, ...]]:
        """A WHERE condition on the runs table (alias ``runs``) for this lab's runs, and its parameters."""
        return (f"{runs}.lab = ?", (self.lab,)) if self.lab is not None else ("1 = 1", ())

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_run(self, intent: str, groups: Sequence[str], outcome: str = "running", reason: str | None = None) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (id, intent, groups, pid, started, finished, outcome, reason, lab) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    intent,
                    json.dumps(list(groups)),
                    os.getpid(),
                    time.time(),
                    None if outcome == "running" else time.time(),
                    outcome,
                    reason,
                    self.lab,
                ),
            )
        return run_id

    def finish(self, run_id: str, outcome: str) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET finished = ?, outcome = ? WHERE id = ?", (time.time(), outcome, run_id))

    def add_step(
        self,
        run_id: str,
        phase: str,
        action: str,
        target: str,
        status: str,
        detail: str,
        seconds: float,
        server: str | None = None,
        effect: str | None = None,
    ) -> None:
        """One step's outcome; ``effect``: "on" or "off" when it changed its server's power."""
        with self._lock:
            seq = self._seq.get(run_id)
            if seq is None:  # a run resumed by this process: numbering goes on after its last step
                seq = self._db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM steps WHERE run_id = ?", (run_id,)).fetchone()[0]
            self._seq[run_id] = seq + 1
            self._db.execute(
                "INSERT INTO steps (run_id, seq, phase, action, target, status, detail, seconds, at, server, effect) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, seq, phase, action, target, status, detail, seconds, time.time(), server, effect),
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every write inside is one transaction: a burst of step outcomes costs one commit, not one each."""
        with self._lock, transaction(self._db):
            yield

    def groups_needing_states(self, groups: Iterable[str]) -> list[str]:
        """The groups whose latest started run is not a down: their VM states are to be recorded now."""
        return [g for g in groups if (last := self._latest_started(g)) is None or last.intent != "down"]

    def record_vm_states(self, run_id: str, states: Iterable[VMState]) -> None:
        rows = [(run_id, s.group, s.moid, s.name, s.server, s.power_state) for s in states]
        with self.transaction():  # one transaction, not one per VM
            self._db.executemany("INSERT INTO vm_states VALUES (?,?,?,?,?,?)", rows)

    def states_before_down(self, group: str) -> list[VMState] | None:
        """The VM states recorded by the latest down of ``group`` that recorded any; None when there is none."""
        mine, args = self._mine()
        row = self._db.execute(
            f"SELECT v.run_id FROM vm_states v JOIN runs r ON r.id = v.run_id WHERE v.grp = ? AND {mine} ORDER BY r.started DESC LIMIT 1",
            (group, *args),
        ).fetchone()
        if row is None:
            return None
        rows = self._db.execute(
            "SELECT grp, vm_moid, vm_name, server, power_state FROM vm_states WHERE run_id = ? AND grp = ?", (row[0], group)
        )
        return [VMState(*r) for r in rows]

    def vm_names(self) -> dict[str, str]:
        """VM moid -> its name when a down last recorded it (Proxmox VE's /cluster/resources forgets the names of an off
        node's guests after a while: the journal still knows them)."""
        mine, args = self._mine()
        rows = self._db.execute(
            f"SELECT v.vm_moid, v.vm_name FROM vm_states v JOIN runs r ON r.id = v.run_id WHERE {mine} AND v.vm_name IS NOT NULL "
            "ORDER BY r.started",
            args,
        )
        return {str(moid): str(name) for moid, name in rows}

    def remember_change(self, run_id: str, cluster_moid: str, cluster_name: str, setting: str, previous: str | None) -> ClusterChange:
        """Record that ``setting`` of a cluster is about to change from ``previous``: once. While a change is
        not restored (a down interrupted and run again) the first record stands, and is returned."""
        with self._lock:
            pending = self.pending(cluster_moid, setting)
            if pending is not None:
                return pending
            change = ClusterChange(run_id, cluster_moid, cluster_name, setting, previous, time.time())
            self._db.execute(
                "INSERT INTO cluster_changes (run_id, cluster_moid, cluster_name, setting, previous, changed) VALUES (?,?,?,?,?,?)",
                (change.run_id, change.cluster_moid, change.cluster_name, change.setting, change.previous, change.changed),
            )
            return change

    def pending_changes(self) -> list[ClusterChange]:
        """Every cluster setting changed by a down and not restored yet, oldest first."""
        mine, args = self._mine()
        rows = self._db.execute(
            "SELECT c.run_id, c.cluster_moid, c.cluster_name, c.setting, c.previous, c.changed FROM cluster_changes c "
            f"JOIN runs r ON r.id = c.run_id WHERE c.restored IS NULL AND {mine} ORDER BY c.changed",
            args,
        )
        return [ClusterChange(*r) for r in rows]

    def restored(self, run_id: str, cluster_moid: str, setting: str) -> None:
        with self._lock:
            mine, args = self._mine()
            self._db.execute(
                "UPDATE cluster_changes SET restored_by = ?, restored = ? WHERE cluster_moid = ? AND setting = ? AND restored IS NULL "
                f"AND run_id IN (SELECT r.id FROM runs r WHERE {mine})",
                (run_id, time.time(), cluster_moid, setting, *args),
            )

    def pending(self, cluster_moid: str, setting: str) -> ClusterChange | None:
        mine, args = self._mine()
        row = self._db.execute(
            "SELECT c.run_id, c.cluster_moid, c.cluster_name, c.setting, c.previous, c.changed FROM cluster_changes c "
            f"JOIN runs r ON r.id = c.run_id WHERE c.cluster_moid = ? AND c.setting = ? AND c.restored IS NULL AND {mine}",
            (cluster_moid, setting, *args),
        ).fetchone()
        return ClusterChange(*row) if row else None

    def record_fact(self, run_id: str, key: str, value: str) -> None:
        """Something about the lab a later run needs while the lab cannot tell it (its cluster off): "ceph-monitors"."""
        with self._lock:
            self._db.execute("INSERT INTO lab_facts (run_id, key, value, at) VALUES (?,?,?,?)", (run_id, key, value, time.time()))

    def last_fact(self, key: str) -> str | None:
        """This lab's latest record of ``key``."""
        mine, args = self._mine()
        row = self._db.execute(
            f"SELECT f.value FROM lab_facts f JOIN runs r ON r.id = f.run_id WHERE f.key = ? AND {mine} ORDER BY f.at DESC LIMIT 1",
            (key, *args),
        ).fetchone()
        return str(row[0]) if row else None

    def record_whole_lab(
        self, run_id: str, server: str, vcenter: tuple[str, str], dependencies: Sequence[tuple[str, str]], peers: Sequence[str] = ()
    ) -> WholeLab:
        """Record where vCenter runs before a whole-lab down stops it: once (a down run again keeps the first record)."""
        with self._lock:
            pending = self.pending_whole_lab()
            if pending is not None:
                return pending
            now = time.time()
            rows = [(run_id, server, "vcenter", 0, vcenter[0], vcenter[1], now)]
            rows += [(run_id, server, "dependency", i + 1, name, vm_uuid, now) for i, (name, vm_uuid) in enumerate(dependencies)]
            rows += [(run_id, peer, "peer", len(rows) + i, "", "", now) for i, peer in enumerate(peers)]
            self._db.executemany(
                "INSERT INTO whole_lab (run_id, server, role, ord, vm_name, vm_uuid, recorded) VALUES (?,?,?,?,?,?,?)", rows
            )
            return WholeLab(run_id, server, vcenter, tuple(dependencies), tuple(peers))

    def pending_whole_lab(self) -> WholeLab | None:
        """The whole-lab down no up has finished yet, if any."""
        mine, args = self._mine()
        rows = self._db.execute(
            "SELECT w.run_id, w.server, w.role, w.vm_name, w.vm_uuid FROM whole_lab w JOIN runs r ON r.id = w.run_id "
            f"WHERE w.finished IS NULL AND {mine} ORDER BY w.recorded, w.ord",
            args,
        ).fetchall()
        if not rows:
            return None
        run_id, server = rows[0][0], rows[0][1]
        vcenter = next(((n, u) for _, _, role, n, u in rows if role == "vcenter"), ("", ""))
        deps = tuple((n, u) for _, _, role, n, u in rows if role == "dependency")
        peers = tuple(peer for _, peer, role, _, _ in rows if role == "peer")
        return WholeLab(run_id, server, vcenter, deps, peers)

    def whole_lab_done(self, run_id: str) -> None:
        """An up brought vCenter back and finished: the record is kept, marked done by that run."""
        with self._lock:
            mine, args = self._mine()
            self._db.execute(
                "UPDATE whole_lab SET finished_by = ?, finished = ? WHERE finished IS NULL "
                f"AND run_id IN (SELECT r.id FROM runs r WHERE {mine})",
                (run_id, time.time(), *args),
            )

    def runs(self, limit: int = 50) -> list[RunRecord]:
        mine, args = self._mine()
        rows = self._db.execute(
            f"SELECT id, intent, groups, pid, started, finished, outcome, reason FROM runs r WHERE {mine} ORDER BY started DESC LIMIT ?",
            (*args, limit),
        )
        return [self._record(*r) for r in rows]

    def record_plan(self, run_id: str, steps: str) -> None:
        """The steps a run (or its next part) is to take, as JSON: whoever follows the run later (the page, for a run
        the CLI started) sees each host's chain, not only what is done."""
        with self._lock:
            self._db.execute(
                "INSERT INTO plans (run_id, part, steps) VALUES (?, (SELECT COUNT(*) FROM plans WHERE run_id = ?), ?)",
                (run_id, run_id, steps),
            )

    def planned(self, run_id: str) -> list[str]:
        """A run's recorded plans (JSON), one per part, in order."""
        rows = self._db.execute("SELECT steps FROM plans WHERE run_id = ? ORDER BY part", (run_id,))
        return [str(r[0]) for r in rows]

    def timed_steps(self, run_id: str) -> list[tuple[StepRecord, float]]:
        """One run's steps in order, each with when it was journaled (unix seconds)."""
        rows = self._db.execute(
            "SELECT phase, action, target, status, detail, seconds, server, at FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [(StepRecord(*row[:7]), float(row[7] or 0)) for row in rows]

    def steps(self, run_id: str) -> list[StepRecord]:
        """One run's steps in order."""
        rows = self._db.execute(
            "SELECT phase, action, target, status, detail, seconds, server FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [StepRecord(*row) for row in rows]

    def run(self, run_id: str) -> RunRecord | None:
        row = self._db.execute(
            "SELECT id, intent, groups, pid, started, finished, outcome, reason FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return self._record(*row) if row else None

    def first_started(self) -> float | None:
        """When this lab's first run started (None: it has none): energy counts nothing before the lab's first record."""
        mine, args = self._mine()
        row = self._db.execute(f"SELECT MIN(r.started) FROM runs r WHERE {mine}", args).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def power_steps(self) -> list[tuple[float, bool, str]]:
        """(time, on?, server) of every step that changed a server's power (confirmed off, forced off, powered on)."""
        mine, args = self._mine()
        rows = self._db.execute(
            f"SELECT s.at, s.effect, s.target FROM steps s JOIN runs r ON r.id = s.run_id WHERE s.effect IN ('on', 'off') AND {mine} "
            "ORDER BY s.at",
            args,
        )
        return [(float(at), effect == "on", str(target)) for at, effect, target in rows]

    def _latest_started(self, group: str) -> RunRecord | None:
        for record in self.runs(limit=1000):
            if group in record.groups and record.outcome != "refused" and record.intent in ("down", "up"):
                return record
        return None

    @staticmethod
    def _record(
        run_id: str, intent: str, groups: str, pid: int | None, started: float, finished: float | None, outcome: str, reason: str | None
    ) -> RunRecord:
        if outcome == "running" and pid is not None and not _alive(pid):
            outcome = "interrupted"  # killed without a chance to say so
        return RunRecord(run_id, intent, tuple(json.loads(groups)), started, finished, outcome, reason)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
