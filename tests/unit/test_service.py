"""The service's one run at a time, without a lab: a run whose lock is released is over, even while its worker
still tells its end (the view, the log, the listeners): the next start waits for that tail, it is not refused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from labswitch.plan import Intent, Plan
from labswitch.usecases import lifecycle, power, service
from tests.unit.test_plan import config


def test_a_start_right_after_a_run_ended_waits_for_its_worker_tail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    svc = service.Service(config(state_dir=str(tmp_path)))
    calls: list[Intent] = []

    def execute(cfg: Any, request: power.Request, confirm: Any, on_event: Any, cancel: Any = None) -> lifecycle.Outcome:
        calls.append(request.intent)
        on_event("run", f"run-{len(calls)}")  # journaled: start() returns its run id
        return lifecycle.Outcome(Plan(request.intent, (), (), ()), None, ())  # ended; the run lock is free again

    told: list[int] = []
    telling, release = threading.Event(), threading.Event()

    def slow_listener() -> None:  # told at each run's start and end; the first run's end takes a while
        told.append(len(calls))
        if told == [1, 1]:
            telling.set()
            release.wait(5)

    monkeypatch.setattr(power, "execute", execute)
    svc.on_change(slow_listener)
    assert svc.start(Intent.DOWN).run_id == "run-1"
    assert telling.wait(5), "the first run's worker tells its end"
    assert svc.running() is None, "the run lock is free: /api/lock says nothing runs"
    threading.Timer(0.3, release.set).start()
    assert svc.start(Intent.UP).run_id == "run-2", "the second start waited for the first one's tail"
    assert calls == [Intent.DOWN, Intent.UP]
