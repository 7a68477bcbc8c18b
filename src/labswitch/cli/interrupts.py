"""Ctrl-C (and SIGTERM) during a run: the first stops it cleanly, a second one exits at once.

The first signal sets the run's cancel switch: nothing new is started, the calls under way finish,
the run is journaled as interrupted and the summary says how to finish it. A second signal exits
with 130 at once; the journal then shows the run as interrupted (its process is gone) and the
kernel drops the run lock.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

from labswitch.cancel import Cancel
from labswitch.errors import EXIT_INTERRUPTED
from labswitch.render.live import LiveProgress

_previous: dict[int, Any] = {}
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install(cancel: Cancel, progress: LiveProgress) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            progress.stop()
            sys.stderr.write("labswitch: interrupted again: exiting now; run the same command again to finish the run\n")
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        cancel.set(f"interrupted by {signal.Signals(signum).name}")
        progress.interrupting()

    for sig in SIGNALS:
        _previous.setdefault(sig, signal.signal(sig, handler))


def restore() -> None:
    for sig, handler in list(_previous.items()):
        signal.signal(sig, handler)
        del _previous[sig]
