"""Cluster steps: HA off and back, vCLS retreat mode and back, vSAN's cluster power action.

Each change is journaled before it is made, with the value it replaces (the first record stands
while it is not restored: a down interrupted and run again keeps what the cluster had before);
the restoring step sets exactly that value back and marks the record restored.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from labswitch.plan import Status, Step
from labswitch.steps import Context, Report, attempt, settle
from labswitch.vsphere.vsan import POWERED_OFF, POWERED_ON

POLL = 1.0  # seconds between looks at a cluster's vCLS agents (VMs come and go: no fixed object to follow)


def disable_ha(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        cluster = step.moid or ""
        now = ctx.port.cluster_setting(cluster, "ha")
        ctx.remember(step, "ha", now)
        if now == "false":
            report(step, Status.OK, "HA is off")
            continue
        error = attempt(ctx.port.change_cluster_setting, cluster, "ha", "false", ctx.policy.maintenance_timeout)
        settle(report, step, error, "HA turned off (up turns it back on)")


def restore_ha(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        previous = ctx.previous(step, "ha")
        value = "true" if previous == "true" else "false"
        error = attempt(ctx.port.change_cluster_setting, step.moid or "", "ha", value, ctx.policy.maintenance_timeout)
        if error is not None:
            report(step, Status.FAILED, f"{error}; HA is not back as it was (labswitch status reports it)")
            continue
        ctx.restored(step, "ha")
        report(step, Status.OK, f"HA {'on' if value == 'true' else 'off'} again, as before the down")


def vcls_retreat(steps: list[Step], ctx: Context, report: Report) -> None:
    """Retreat mode for every cluster at once, then wait until vCenter has removed their agents (each
    reported as soon as its own are gone: five clusters wait about one retreat delay, not five)."""
    waiting: dict[str, Step] = {}
    for step in steps:
        cluster = step.moid or ""
        now = ctx.port.cluster_setting(cluster, "vcls")
        ctx.remember(step, "vcls", now)
        if now != "false":
            error = attempt(ctx.port.change_cluster_setting, cluster, "vcls", "false", ctx.policy.maintenance_timeout)
            if error is not None:
                report(step, Status.FAILED, f"retreat mode not set: {error}; the vCLS agents would keep the hosts out of maintenance")
                continue
        waiting[cluster] = step
    left = _wait_agents(ctx, waiting, lambda agents: not agents, lambda step, _: report(step, Status.OK, RETREATED))
    for cluster, agents in left.items():
        report(
            waiting[cluster],
            Status.FAILED,
            f"{len(agents)} vCLS agent VM(s) still in the cluster {ctx.policy.vcls_timeout:.0f}s after retreat mode "
            "(policy.vcls_timeout); they keep its hosts out of maintenance mode",
        )


RETREATED = "retreat mode: vCLS agents removed (up restores the setting)"


def vcls_restore(steps: list[Step], ctx: Context, report: Report) -> None:
    """The recorded settings back (not set before: true, vCenter's default), then wait until the agents run, every cluster at once."""
    waiting: dict[str, Step] = {}
    for step in steps:
        cluster = step.moid or ""
        value = ctx.previous(step, "vcls") or "true"
        error = attempt(ctx.port.change_cluster_setting, cluster, "vcls", value, ctx.policy.maintenance_timeout)
        if error is not None:
            report(step, Status.FAILED, f"vCLS setting not restored: {error} (labswitch status reports it)")
            continue
        ctx.restored(step, "vcls")
        if value == "false":
            report(step, Status.OK, "retreat mode kept, as before the down")
            continue
        waiting[cluster] = step

    def running(agents: dict[str, str]) -> bool:
        return bool(agents) and all(p == "poweredOn" for p in agents.values())

    left = _wait_agents(
        ctx, waiting, running, lambda step, agents: report(step, Status.OK, f"vCLS back: {len(agents)} agent VM(s) running")
    )
    for cluster in left:
        report(
            waiting[cluster], Status.FAILED, f"vCLS setting restored, but its agents are not running after {ctx.policy.vcls_timeout:.0f}s"
        )


def vsan_power_off(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        ctx.remember(step, "vsan-power", POWERED_ON)
        error = attempt(ctx.port.vsan_power, step.moid or "", POWERED_OFF, ctx.policy.maintenance_timeout)
        settle(report, step, error, "vSAN cluster powered off")


def vsan_power_on(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        error = attempt(ctx.port.vsan_power, step.moid or "", POWERED_ON, ctx.policy.maintenance_timeout)
        if error is None:
            ctx.restored(step, "vsan-power")
        settle(report, step, error, "vSAN cluster powered on")


def _wait_agents(
    ctx: Context,
    clusters: dict[str, Step],
    done: Callable[[dict[str, str]], bool],
    on_done: Callable[[Step, dict[str, str]], None],
) -> dict[str, dict[str, str]]:
    """Look at each cluster's agents every POLL seconds until ``done(agents)`` (told to ``on_done`` at once) or
    policy.vcls_timeout; the clusters left, with their last look."""
    deadline = time.monotonic() + ctx.policy.vcls_timeout
    left = dict(clusters)
    last: dict[str, dict[str, str]] = {}
    while True:
        for cluster in list(left):
            last[cluster] = ctx.port.vcls_agents(cluster)
            if done(last[cluster]):
                on_done(left.pop(cluster), last[cluster])
        if not left or time.monotonic() >= deadline:
            return {cluster: last[cluster] for cluster in left}
        ctx.cancel.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
