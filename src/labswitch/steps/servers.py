"""Plain servers' steps (plan.servers): the OS's own shutdown over SSH, and waiting until its services answer."""

from __future__ import annotations

import time

from labswitch.errors import EndpointError
from labswitch.plan import Status, Step
from labswitch.platforms import servers
from labswitch.steps import Context, Report

POLL = 1.0  # seconds between two rounds of ready checks


def os_shutdown(steps: list[Step], ctx: Context, report: Report) -> None:
    """The server's ssh.command (default systemctl poweroff). A refused login, an untrusted host key or a failing
    command fail the step: the BMC's GracefulShutdown follows (its planned fallback); the BMC confirms it off."""
    for step in steps:
        try:
            said = servers.poweroff(ctx.servers[step.server or step.target])
        except EndpointError as exc:
            report(step, Status.FAILED, f"{exc}; the BMC's GracefulShutdown (ACPI) instead")
            continue
        report(step, Status.OK, said)


def wait_ready(steps: list[Step], ctx: Context, report: Report) -> None:
    """Each check of the server's ``ready`` answers, within policy.host_connect_timeout of the step's start."""
    timeout = ctx.policy.host_connect_timeout
    for step in steps:
        server = ctx.servers[step.server or step.target]
        deadline = time.monotonic() + timeout
        while waiting := servers.not_answering(server):
            if time.monotonic() >= deadline:
                report(step, Status.FAILED, f"not ready after {timeout:g}s: {', '.join(waiting)} on {server.address} does not answer")
                break
            ctx.cancel.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
        else:
            verb = "answers" if len(server.ready) == 1 else "answer"
            report(step, Status.OK, f"ready: {', '.join(server.ready)} {verb}")
