"""Host steps through vCenter: maintenance mode, ESXi shutdown and reboot, waiting for a host to connect."""

from __future__ import annotations

from collections.abc import Callable

from labswitch.plan import Status, Step
from labswitch.plan.proxmox import API as PROXMOX
from labswitch.steps import Context, Report, attempt, settle, wait_each


def enter_maintenance(steps: list[Step], ctx: Context, report: Report) -> None:
    port = ctx.port_for(steps[0])
    _each(steps, ctx, report, port.enter_maintenance, "in maintenance mode")


def enter_maintenance_no_action(steps: list[Step], ctx: Context, report: Report) -> None:
    port = ctx.port_for(steps[0])
    _each(steps, ctx, report, port.enter_maintenance_no_action, "in maintenance mode (vSAN: no data moved)")


def _each(steps: list[Step], ctx: Context, report: Report, call: Callable[[str, float], None], done: str) -> None:
    """One host call per step, bounded by policy.maintenance_timeout; each step done or failed with its fault."""
    for step in steps:
        settle(report, step, attempt(call, step.moid or "", ctx.policy.maintenance_timeout), done)


def exit_maintenance(steps: list[Step], ctx: Context, report: Report) -> None:
    port = ctx.port_for(steps[0])
    for step in steps:
        if not port.in_maintenance(step.moid or ""):
            report(step, Status.OK, "not in maintenance mode")
            continue
        error = attempt(port.exit_maintenance, step.moid or "", ctx.policy.maintenance_timeout)
        settle(report, step, error, "out of maintenance mode")


def shutdown(steps: list[Step], ctx: Context, report: Report) -> None:
    port = ctx.port_for(steps[0])
    system, api = ("node", "Proxmox VE's") if steps[0].endpoint == PROXMOX else ("ESXi", "vSphere")
    for step in steps:
        error = attempt(port.shutdown_host, step.moid or "", ctx.policy.maintenance_timeout)
        if error is None:
            report(step, Status.OK, f"{system} shutting down")
        else:
            report(step, Status.FAILED, f"{api} shutdown failed ({error}); the BMC takes over")


def reboot(steps: list[Step], ctx: Context, report: Report) -> None:
    port = ctx.port_for(steps[0])
    timeout = ctx.policy.host_off_timeout
    for step in steps:
        error = attempt(port.reboot_host, step.moid or "", ctx.policy.maintenance_timeout)
        if error is not None:
            report(step, Status.FAILED, f"{error}; the host stays in maintenance mode with its VMs off")
        elif not port.wait([step.moid or ""], "gone", timeout):
            report(step, Status.FAILED, f"still connected {timeout:.0f}s after the reboot task")
        else:
            report(step, Status.OK, "rebooting")


def wait_connected(steps: list[Step], ctx: Context, report: Report) -> None:
    """Until each host is connected to vCenter (without vCenter: its own API answers)."""
    timeout = ctx.policy.host_connect_timeout
    where = {"vcenter": "to vCenter", PROXMOX: "in the cluster with its API answering"}.get(steps[0].endpoint, "(its API does not answer)")
    wait_each(steps, ctx, report, "connected", timeout, "connected", f"not connected {where} after {timeout:.0f}s")
