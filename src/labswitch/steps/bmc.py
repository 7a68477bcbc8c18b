"""BMC steps: power-on, GracefulShutdown, confirming a server off, ForceOff."""

from __future__ import annotations

import time
from collections.abc import Callable

from labswitch.bmc import Driver, Power
from labswitch.errors import EndpointError
from labswitch.plan import Status, Step
from labswitch.steps import Context, Report


def power_on(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:

        def said(changed: bool, step: Step = step) -> str:
            if not changed:  # done, but the server was on already: no power change to account for
                with ctx.lock:
                    ctx.unchanged.add(step.id)
            return "powered on" if changed else "already on"

        _bmc(step, report, ctx.driver(step).power_on, said)


def graceful_shutdown(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        what = "BMC GracefulShutdown" if step.fallback_of else "host not connected; BMC GracefulShutdown"
        if _bmc(step, report, ctx.driver(step).graceful_shutdown, lambda _, what=what: what):  # type: ignore[misc]
            with ctx.lock:
                ctx.graceful_sent.add(step.server or step.target)


def confirm_off(steps: list[Step], ctx: Context, report: Report) -> None:
    """Off when the BMC says so; still on after policy.host_off_timeout: one GracefulShutdown of its own
    (unless one was sent already) and another wait; then ForceOff only where policy.bmc_force_off planned it."""
    timeout = ctx.policy.host_off_timeout
    for step in steps:
        driver = ctx.driver(step)
        if _wait_off(driver, ctx, timeout, step.moid):
            report(step, Status.OK, "off (BMC)")
            continue
        server = step.server or step.target
        if server not in ctx.graceful_sent:
            try:
                driver.graceful_shutdown()
                ctx.graceful_sent.add(server)
            except EndpointError as exc:
                ctx.note(f"server {server}: still on after {timeout:.0f}s, and the BMC GracefulShutdown failed: {exc}")
            if server in ctx.graceful_sent and _wait_off(driver, ctx, timeout):
                report(step, Status.OK, "off (BMC) after GracefulShutdown")
                continue
        then = "ForceOff follows (policy.bmc_force_off)" if ctx.policy.bmc_force_off else "set policy.bmc_force_off = true to force it off"
        report(step, Status.FAILED, f"server still on; {then}")


def cut_power(steps: list[Step], ctx: Context, report: Report) -> None:
    """The server is off: its plug's relay is cut too, so its power supply draws nothing on standby."""
    for step in steps:
        _bmc(step, report, ctx.driver(step).force_off, lambda changed: "relay cut: no standby draw" if changed else "relay already off")


def force_off(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        driver = ctx.driver(step)
        if _bmc(step, report, driver.force_off, None):
            ok = _wait_off(driver, ctx, 60)
            report(step, Status.OK if ok else Status.FAILED, "off (BMC) after ForceOff" if ok else "still on 60s after ForceOff")


def _bmc(step: Step, report: Report, action: Callable[[], bool], ok: Callable[[bool], str] | None) -> bool:
    """Send one BMC request; report it (ok text from its result) unless ``ok`` is None; False on an error (reported)."""
    try:
        changed = action()
    except EndpointError as exc:
        report(step, Status.FAILED, str(exc))
        return False
    if ok is not None:
        report(step, Status.OK, ok(changed))
    return True


def _wait_off(driver: Driver, ctx: Context, timeout: float, host: str | None = None) -> bool:
    """Poll the BMC every policy.bmc_poll_interval until it says off. With the ESXi host's moid, the
    pause between two polls ends early, once, when vCenter's change feed says the host is gone (a
    clean shutdown's last sign before the power goes): the BMC is asked then, not up to an interval later."""
    deadline = time.monotonic() + timeout
    hinted = False
    while True:
        try:
            if driver.power_state() is Power.OFF:
                return True
        except EndpointError:
            pass  # a BMC busy during the power transition: ask again
        if time.monotonic() >= deadline:
            return False
        pause = min(ctx.policy.bmc_poll_interval, max(0.0, deadline - time.monotonic()))
        if hinted or host is None:
            ctx.cancel.sleep(pause)
        else:
            hinted = bool(ctx.port.wait([host], "gone", pause, reread=False))
