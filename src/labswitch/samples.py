"""Energy samples: each server's draw, written by `labswitch serve` every energy.sample_interval, read by
`labswitch energy`, the page and the metrics. Their own store, in the journal's file (one state directory,
one file to back up), beside the runs and steps of ``labswitch.journal``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labswitch.journal import connect, default_path, transaction

if TYPE_CHECKING:
    from labswitch.config import Config

SCHEMA = """
CREATE TABLE IF NOT EXISTS energy_samples (
    at REAL NOT NULL, server TEXT NOT NULL, power TEXT NOT NULL, watts REAL NOT NULL, measured INTEGER NOT NULL,
    seconds REAL NOT NULL, kwh REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS energy_samples_server ON energy_samples(server, at);
"""
# the lab a sample is of (config.lab_id): samples taken before it belong to the first lab that opens the store
MIGRATIONS = {("energy_samples", "lab"): "ALTER TABLE energy_samples ADD COLUMN lab TEXT"}
COLUMNS = "at, server, power, watts, measured, seconds, kwh"


@dataclass(frozen=True)
class Sample:
    """One server's draw at one moment, written by `labswitch serve` every energy.sample_interval. It
    accounts for the ``seconds`` before it (since the server's previous sample; 0 after a gap) with ``kwh``."""

    at: float
    server: str
    power: str  # On | Off | Unknown
    watts: float  # the BMC's or meter's reading; 0 W for a server off that reports none; energy.server_watts when on without one
    measured: bool  # False: on without a reading (energy.server_watts stands in)
    seconds: float
    kwh: float


class Samples:
    """The samples in the state directory's journal file; a context manager."""

    def __init__(self, path: Path, lab: str | None = None) -> None:
        """``lab`` (config.lab_id): only that lab's samples; None: every lab's."""
        self._db = connect(path, SCHEMA, MIGRATIONS)
        self.path = path
        self.lab = lab
        if lab is not None:
            self._db.execute("UPDATE energy_samples SET lab = ? WHERE lab IS NULL", (lab,))
        self._mine = "lab = ?" if lab is not None else "1 = 1"
        self._args: tuple[str, ...] = (lab,) if lab is not None else ()

    @classmethod
    def of(cls, config: Config) -> Samples:
        """The samples of the config's lab, in its state directory's journal file."""
        return cls(default_path(config.state_dir), lab=config.lab_id)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Samples:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, samples: Iterable[Sample]) -> None:
        rows = [(x.at, x.server, x.power, x.watts, int(x.measured), x.seconds, x.kwh, self.lab) for x in samples]
        with transaction(self._db):  # one transaction, not one per server
            self._db.executemany(f"INSERT INTO energy_samples ({COLUMNS}, lab) VALUES (?,?,?,?,?,?,?,?)", rows)

    def last(self) -> dict[str, Sample]:
        """Each server's latest sample."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM energy_samples s WHERE {self._mine} "
            f"AND at = (SELECT MAX(at) FROM energy_samples WHERE server = s.server AND {self._mine})",
            self._args * 2,
        )
        return {r[1]: _sample(r) for r in rows}

    def between(self, since: float, until: float) -> list[Sample]:
        """The samples whose span [at - seconds, at] overlaps [since, until], oldest first."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM energy_samples WHERE {self._mine} AND at >= ? AND at - seconds <= ? ORDER BY at",
            (*self._args, since, until),
        )
        return [_sample(r) for r in rows]

    def totals(self) -> dict[str, float]:
        """kWh per server over every sample ever taken (a counter: it only grows)."""
        rows = self._db.execute(f"SELECT server, SUM(kwh) FROM energy_samples WHERE {self._mine} GROUP BY server", self._args)
        return {server: float(kwh) for server, kwh in rows}

    def on_draw(self) -> dict[str, float]:
        """Per server, the mean of its measured samples while on, over every sample of the lab: its draw when on,
        as the past showed it (a reading now never stands in for the past)."""
        rows = self._db.execute(
            f"SELECT server, AVG(watts) FROM energy_samples WHERE {self._mine} AND power = 'On' AND measured = 1 GROUP BY server",
            self._args,
        )
        return {server: float(watts) for server, watts in rows}

    def first(self) -> float | None:
        row = self._db.execute(f"SELECT MIN(at) FROM energy_samples WHERE {self._mine}", self._args).fetchone()
        return float(row[0]) if row and row[0] is not None else None


def _sample(row: tuple[float, str, str, float, int, float, float]) -> Sample:
    at, server, power, watts, measured, seconds, kwh = row
    return Sample(float(at), str(server), str(power), float(watts), bool(measured), float(seconds), float(kwh))
