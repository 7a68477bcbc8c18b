"""Energy samples: while `labswitch serve` runs, every server's draw every energy.sample_interval, into the
journal. A server off that reports no draw counts 0 W (one that reports its standby draw, that); a server
on without a reading counts energy.server_watts, marked estimated. Each sample accounts for the time since
the server's previous one (the mean of the two draws): a gap longer than GAP_FACTOR intervals (the service
was not running) is not guessed at here; `energy` estimates it from the journal's power steps instead."""

from __future__ import annotations

from collections.abc import Mapping

from labswitch.bmc import Power
from labswitch.samples import Sample

GAP_FACTOR = 2.5  # a previous sample older than this many intervals: the new one starts a fresh span


def next_samples(
    readings: Mapping[str, tuple[Power, float | None]],
    last: Mapping[str, Sample],
    now: float,
    interval: float,
    server_watts: float,
) -> list[Sample]:
    """The samples to write at ``now`` from each server's (power, watts) reading (PURE). A server whose
    power and draw are both unknown gets none: its time stays uncovered."""
    out = []
    for server, (power, watts) in readings.items():
        if watts is not None:
            draw, measured = float(watts), True
        elif power is Power.OFF:
            draw, measured = 0.0, True
        elif power is Power.ON:
            draw, measured = server_watts, False
        else:
            continue
        prev = last.get(server)
        seconds, kwh = 0.0, 0.0
        if prev is not None and 0 < now - prev.at <= GAP_FACTOR * interval:
            seconds = now - prev.at
            kwh = (prev.watts + draw) / 2 * seconds / 3_600_000
            measured = measured and prev.measured
        out.append(Sample(now, server, str(power), draw, measured, seconds, kwh))
    return out
