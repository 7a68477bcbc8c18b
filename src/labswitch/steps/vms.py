"""VM steps: guest shutdown (waited on the change feed), hard power-off, power-on."""

from __future__ import annotations

from labswitch.errors import EndpointError
from labswitch.plan import Status, Step
from labswitch.steps import Context, Report, settle, wait_each


def shutdown_guests(steps: list[Step], ctx: Context, report: Report) -> None:
    """Ask each guest to shut down, then wait until each is off; one still on after the timeout is
    handed to its planned hard power-off (policy.hard_power_off), else left on with its host."""
    port = ctx.port_for(steps[0])
    timeout = ctx.policy.guest_shutdown_timeout
    then = (
        "hard power-off follows (policy.hard_power_off)"
        if ctx.policy.hard_power_off
        else "left on, host left on (policy.hard_power_off = false)"
    )
    asked: dict[str, Step] = {}
    for step in steps:
        ctx.cancel.check()
        try:
            port.shutdown_guest(step.moid or "")
            asked[step.moid or ""] = step
        except EndpointError as exc:
            report(step, Status.FAILED, f"{exc}; {then}")
    reached = port.wait(list(asked), "off", timeout, on_each=lambda moid: report(asked[moid], Status.OK, "guest shut down"))
    for moid, step in asked.items():
        if moid not in reached:
            report(step, Status.FAILED, f"still on after {timeout:.0f}s; {then}")


def power_off(steps: list[Step], ctx: Context, report: Report) -> None:
    port = ctx.port_for(steps[0])
    results = port.power_off_vms([s.moid or "" for s in steps], ctx.policy.guest_shutdown_timeout)
    for step in steps:
        error = results.get(step.moid or "")
        settle(report, step, error, "powered off")


def leave_running(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        report(step, Status.FAILED, "no VMware Tools and policy.hard_power_off is false: left on, host left on")


def power_on(steps: list[Step], ctx: Context, report: Report) -> None:
    port = ctx.port_for(steps[0])
    results = port.power_on_vms([s.moid or "" for s in steps], ctx.policy.maintenance_timeout)
    for step in steps:
        error = results.get(step.moid or "")
        if error is None and step.wave is not None:
            with ctx.lock:
                ctx.started.setdefault(step.wave, set()).add(step.moid or "")
        settle(report, step, error, "powered on")


def wait_tools(steps: list[Step], ctx: Context, report: Report) -> None:
    """Until each VM's tools run (a VM another one needs: vCenter's DNS before vCenter)."""
    timeout = ctx.policy.guest_shutdown_timeout
    wait_each(steps, ctx, report, "tools", timeout, "tools running", f"tools not running {timeout:.0f}s after power-on")
