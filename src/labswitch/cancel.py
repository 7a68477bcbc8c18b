"""A run's stop switch: set once (Ctrl-C, SIGTERM, the service stopping), seen by every wait.

Nothing new is submitted once it is set; waits on the change feed and BMC polls return within about
a second and raise Interrupted; calls already under way finish. The run is journaled as interrupted,
and the same command finishes it.
"""

from __future__ import annotations

import threading

from labswitch.errors import Interrupted


class Cancel:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "interrupted"

    def set(self, reason: str = "interrupted") -> None:
        self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Interrupted when set."""
        if self._event.is_set():
            raise Interrupted(self.reason)

    def sleep(self, seconds: float) -> None:
        """Sleep, or raise Interrupted as soon as it is set."""
        if self._event.wait(max(0.0, seconds)):
            raise Interrupted(self.reason)
