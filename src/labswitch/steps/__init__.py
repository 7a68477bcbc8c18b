"""One module per kind of step: how to do it and how to know it is done.

A handler takes the ready steps of one kind on one server (a host's ten guest shutdowns are one
call), does them through the LabPort or the server's BMC driver, and reports every step exactly
once: OK, or FAILED with the reason. The executor (labswitch.run) decides what follows: a planned
fallback, or skipping what depended on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from labswitch.bmc import Driver
from labswitch.cancel import Cancel
from labswitch.config import Policy, Server, VCenter
from labswitch.errors import EndpointError
from labswitch.journal import Journal
from labswitch.plan import REGISTRY, Action, Plan, Status, Step
from labswitch.vsphere.port import LabPort

Report = Callable[[Step, Status, str], None]


@dataclass
class Context:
    """What every handler may use during one run."""

    port: LabPort
    drivers: Mapping[str, Driver]
    policy: Policy
    plan: Plan
    cancel: Cancel
    note: Callable[[str], None]
    started: dict[int, set[str]] = field(default_factory=dict)  # wave index -> VMs started in it
    graceful_sent: set[str] = field(default_factory=set)  # servers whose BMC was sent a GracefulShutdown
    unchanged: set[str] = field(default_factory=set)  # ids of power steps done with no change (already on): no power effect
    lock: threading.Lock = field(default_factory=threading.Lock)
    journal: Journal | None = None  # where cluster changes are recorded (None: a test's executor without one)
    run_id: str = ""
    ports: Mapping[str, LabPort] = field(default_factory=dict)  # "esxi:<server>" -> that host's own API
    vcenter: VCenter | None = None  # for waiting until vCenter answers (whole-lab up)
    began: float = field(default_factory=time.monotonic)  # when the run began (the clock its messages give)
    unknown: set[str] = field(default_factory=set)  # servers whose BMC stopped answering: state unknown, never forced off
    silent_since: dict[str, float] = field(default_factory=dict)  # server -> when its BMC's reads began to fail
    servers: Mapping[str, Server] = field(default_factory=dict)  # the config's servers by name (plain servers' SSH, ready)

    def at(self, when: float | None = None) -> str:
        """A moment of the run as its clock shows it (mm:ss since the run began)."""
        seconds = int((time.monotonic() if when is None else when) - self.began)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def port_for(self, step: Step) -> LabPort:
        """The port of the endpoint a step goes through: a host's own, or vCenter's."""
        return self.ports.get(step.endpoint, self.port)

    def driver(self, step: Step) -> Driver:
        return self.drivers[step.server or step.target]

    def remember(self, step: Step, setting: str, previous: str | None) -> None:
        """Journal that a cluster ``setting`` is about to change from ``previous`` (the first record stands)."""
        if self.journal is not None:
            self.journal.remember_change(self.run_id, step.moid or "", step.target, setting, previous)

    def previous(self, step: Step, setting: str) -> str | None:
        """The value a down recorded for a cluster setting it changed (None: not set before, or no record)."""
        change = self.journal.pending(step.moid or "", setting) if self.journal is not None else None
        return change.previous if change is not None else None

    def restored(self, step: Step, setting: str) -> None:
        if self.journal is not None:
            self.journal.restored(self.run_id, step.moid or "", setting)


Handler = Callable[[list[Step], Context, Report], None]


def attempt(call: Callable[..., object], *args: object) -> str | None:
    """None when ``call(*args)`` did what it says, else the EndpointError's one line: the step fails with it, the
    others of the same handler go on (an error that escapes a handler is the executor's: each of its steps fails)."""
    try:
        call(*args)
    except EndpointError as exc:
        return str(exc)
    return None


def settle(report: Report, step: Step, error: str | None, done: str) -> None:
    """Report a step done (``done``) when ``error`` is None, else failed with the error."""
    if error is None:
        report(step, Status.OK, done)
    else:
        report(step, Status.FAILED, error)


def wait_each(steps: list[Step], ctx: Context, report: Report, condition: str, timeout: float, done: str, not_done: str) -> None:
    """Wait (through the steps' port) until each step's object meets ``condition``: each reported OK with
    ``done`` as it does, the rest FAILED with ``not_done`` after ``timeout``."""
    port = ctx.port_for(steps[0])
    by_moid = {s.moid or "": s for s in steps}
    reached = port.wait(list(by_moid), condition, timeout, on_each=lambda moid: report(by_moid[moid], Status.OK, done))
    for moid, step in by_moid.items():
        if moid not in reached:
            report(step, Status.FAILED, not_done)


def handlers() -> dict[Action, Handler]:
    """Each action's handler, as the registry (plan.actions) names it."""
    import importlib

    return {
        action: getattr(importlib.import_module(f"labswitch.steps.{module}"), function)
        for action, spec in REGISTRY.items()
        for module, function in [spec.handler.split(".")]
    }
