"""Idle auto-down (PURE): a group whose workload VMs have all been idle for policy.idle_down_after goes down.

Observed with each energy sample: a group is idle while it is on and every workload VM running on its
servers uses less CPU than policy.idle_cpu_mhz (vCenter's quickStats.overallCpuUsage). Idle means seen
idle at every sample: a busy VM, a round whose VMs could not be read, a run of the group (a manual up,
a schedule) or the group going off restarts the clock. The clock lives in the service (a restart of
`labswitch serve` restarts it too: it never takes a lab down sooner than told)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labswitch.config import Config
from labswitch.usecases.status import StatusReport


@dataclass(frozen=True)
class Observation:
    group: str
    on: bool  # any of its servers on (its BMC says)
    idle: bool | None  # every workload VM under the threshold; None: could not tell this round
    last_run: float | None  # when the group's latest run ended (any intent, any reason; now while it runs)


@dataclass(frozen=True)
class Countdown:
    group: str
    idle_since: float
    down_at: float


class IdleClock:
    def __init__(self, after: float) -> None:
        self.after = after
        self._since: dict[str, float] = {}

    def observe(self, now: float, observations: Sequence[Observation]) -> list[str]:
        """Take one round in; the groups that are due to go down now."""
        due = []
        for o in observations:
            since = self._since.get(o.group)
            if not o.on or not o.idle:
                self._since.pop(o.group, None)
                continue
            since = now if since is None else since
            if o.last_run is not None and o.last_run > since:  # a run of the group since: the clock starts from it
                since = o.last_run
            self._since[o.group] = since
            if now - since >= self.after:
                due.append(o.group)
        return due

    def restart(self, group: str) -> None:
        """The group's down was started (or refused): the clock starts again from the next idle round."""
        self._since.pop(group, None)

    def countdowns(self) -> dict[str, Countdown]:
        return {g: Countdown(g, since, since + self.after) for g, since in self._since.items()}


def eligible(config: Config) -> list[str]:
    """The groups idle auto-down may take down: not always_on, and not the one vCenter runs in (that is a
    whole-lab down, which stays a person's decision)."""
    return [name for name, g in config.groups.items() if not g.always_on and not g.holds_vcenter]


def observe(config: Config, report: StatusReport | None, last_runs: Mapping[str, float]) -> list[Observation]:
    """One observation per eligible group from a status read with the sample (None: vCenter could not be read)."""
    threshold = config.policy.idle_cpu_mhz
    out = []
    for group in eligible(config):
        servers = {s.name for s in config.servers if s.group == group}
        if report is None:
            out.append(Observation(group, on=True, idle=None, last_run=last_runs.get(group)))
            continue
        on = any(h.bmc_power == "On" for h in report.hosts if h.name in servers)
        vms = [v for v in report.vms if v.host in servers and v.power_state == "poweredOn" and v.system is None]
        idle = all(v.cpu_mhz is not None and v.cpu_mhz < threshold for v in vms)
        out.append(Observation(group, on=on, idle=idle, last_run=last_runs.get(group)))
    return out
