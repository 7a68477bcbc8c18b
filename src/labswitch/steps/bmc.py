"""BMC steps: power-on, GracefulShutdown, confirming a server off, ForceOff."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

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
        entry = ctx.servers.get(step.server or step.target)
        if step.fallback_of:
            what = "BMC GracefulShutdown"
        elif entry is not None and entry.plain:
            what = "BMC GracefulShutdown (the ACPI power button: no ssh configured)"
        else:
            what = "host not connected; BMC GracefulShutdown"
        if _bmc(step, report, ctx.driver(step).graceful_shutdown, lambda _, what=what: what):  # type: ignore[misc]
            with ctx.lock:
                ctx.graceful_sent.add(step.server or step.target)


def confirm_off(steps: list[Step], ctx: Context, report: Report) -> None:
    """Off when the BMC says so; still on after policy.host_off_timeout: one GracefulShutdown of its own
    (unless one was sent already) and another wait; then ForceOff only where policy.bmc_force_off planned it.
    A BMC that stops answering leaves the server's state unknown: said so, and never forced off."""
    timeout = ctx.policy.host_off_timeout
    for step in steps:
        driver = ctx.driver(step)
        server = step.server or step.target
        seen = _wait_off(driver, ctx, timeout, server, step.moid)
        if seen is Seen.ON and server not in ctx.graceful_sent:
            try:
                driver.graceful_shutdown()
                ctx.graceful_sent.add(server)
            except EndpointError as exc:
                ctx.note(f"server {server}: still on after {timeout:.0f}s, and the BMC GracefulShutdown failed: {exc}")
            if server in ctx.graceful_sent:
                seen = _wait_off(driver, ctx, timeout, server)
                if seen is Seen.OFF:
                    report(step, Status.OK, "off (BMC) after GracefulShutdown")
                    continue
        if seen is Seen.OFF:
            report(step, Status.OK, "off (BMC)")
        elif seen is Seen.SILENT:
            report(step, Status.FAILED, _unknown(ctx, server))
        else:
            forced = ctx.policy.bmc_force_off
            then = "ForceOff follows (policy.bmc_force_off)" if forced else "set policy.bmc_force_off = true to force it off"
            report(step, Status.FAILED, f"server still on; {then}")


def _unknown(ctx: Context, server: str) -> str:
    with ctx.lock:
        ctx.unknown.add(server)
        since = ctx.silent_since.get(server)
    return f"BMC of {server} stopped answering at {ctx.at(since)}; the server's state is unknown; check it, then `labswitch down` again"


def cut_power(steps: list[Step], ctx: Context, report: Report) -> None:
    """The server is off: its plug's relay is cut too, so its power supply draws nothing on standby."""
    for step in steps:
        _bmc(step, report, ctx.driver(step).force_off, lambda changed: "relay cut: no standby draw" if changed else "relay already off")


def force_off(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        server = step.server or step.target
        if server in ctx.unknown:  # never a ForceOff on a guess: the server may be finishing a clean shutdown
            report(step, Status.FAILED, "not forced off: the server's state is unknown (its BMC stopped answering)")
            continue
        driver = ctx.driver(step)
        if _bmc(step, report, driver.force_off, None):
            seen = _wait_off(driver, ctx, 60, server)
            if seen is Seen.SILENT:
                report(step, Status.FAILED, _unknown(ctx, server))
            else:
                ok = seen is Seen.OFF
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


class Seen(enum.Enum):
    """What a wait for off saw last."""

    OFF = "off"
    ON = "on"  # the BMC answered, and not off
    SILENT = "silent"  # the BMC did not answer its last read: the state is unknown


def _wait_off(driver: Driver, ctx: Context, timeout: float, server: str, host: str | None = None) -> Seen:
    """Poll the BMC every policy.bmc_poll_interval until it says off, for ``timeout`` at most whatever the BMC
    does: each read is bounded by the time left (a read that hangs counts as no answer). The first read that
    fails is told at once; so is the BMC answering again. With the ESXi host's moid, the pause between two
    polls ends early, once, when vCenter's change feed says the host is gone (a clean shutdown's last sign
    before the power goes): the BMC is asked then, not up to an interval later."""
    deadline = time.monotonic() + timeout
    hinted = False
    reads = Reads(driver)
    try:
        while True:
            budget = max(MIN_READ, deadline - time.monotonic())
            answer = reads.power_state(budget)
            if isinstance(answer, EndpointError):
                _silent(ctx, server, answer, reads.asked)
            else:
                _answers(ctx, server)
                if answer is Power.OFF:
                    return Seen.OFF
            if time.monotonic() >= deadline:
                return Seen.SILENT if isinstance(answer, EndpointError) else Seen.ON
            pause = min(ctx.policy.bmc_poll_interval, max(0.0, deadline - time.monotonic()))
            if hinted or host is None:
                ctx.cancel.sleep(pause)
            else:
                hinted = _gone_hint(ctx, host, pause)
    finally:
        reads.close()


def _gone_hint(ctx: Context, host: str, pause: float) -> bool:
    """The platform's word that the host left (vCenter's feed, the cluster's status) ends a pause early. Only a hint:
    a platform API that fails (gone with its node, an untrusted certificate, vCenter restarting) is not asked again
    in this wait, and the BMC's word alone decides."""
    started = time.monotonic()
    try:
        return bool(ctx.port.wait([host], "gone", pause, reread=False))
    except EndpointError:
        ctx.cancel.sleep(max(0.0, pause - (time.monotonic() - started)))
        return True


MIN_READ = 0.5  # seconds: the least a read is given, so a wait overshoots its deadline by at most this


def _silent(ctx: Context, server: str, error: EndpointError, asked: float) -> None:
    """The BMC did not answer the read asked at ``asked``: told once, the first time."""
    with ctx.lock:
        first = server not in ctx.silent_since
        if first:
            ctx.silent_since[server] = asked
    if first:
        ctx.note(f"server {server}: BMC not answering since {ctx.at(asked)} ({error}); its power state is unknown until it answers")


def _answers(ctx: Context, server: str) -> None:
    with ctx.lock:
        was = ctx.silent_since.pop(server, None)
    if was is not None:
        ctx.note(f"server {server}: BMC answers again at {ctx.at()}")


class Reads:
    """A BMC's power reads, each with a deadline: a read not back in time counts as no answer and goes on in its
    thread (the driver's own timeout ends it); no second read starts while it hangs."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bmc-read")
        self._pending: Future[Power] | None = None
        self.asked = time.monotonic()  # when the read under way (or the last one) was asked

    def power_state(self, budget: float) -> Power | EndpointError:
        if self._pending is None or self._pending.done():
            self._pending = self._pool.submit(self.driver.power_state)  # a late answer is stale: asked anew
            self.asked = time.monotonic()
        try:
            answer = self._pending.result(timeout=budget)
        except FutureTimeout:
            return EndpointError(f"no answer within {budget:.1f}s")
        except EndpointError as exc:
            self._pending = None
            return exc
        self._pending = None
        return answer

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
