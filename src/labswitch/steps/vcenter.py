"""Waiting for vCenter to answer after its VM started (a whole-lab up): its SOAP login and its REST API."""

from __future__ import annotations

from labswitch.plan import Status, Step
from labswitch.steps import Context, Report, settle
from labswitch.vsphere.esxi import wait_for_vcenter


def wait_vcenter(steps: list[Step], ctx: Context, report: Report) -> None:
    timeout = ctx.policy.vcenter_boot_timeout
    for step in steps:
        if ctx.vcenter is None:
            report(step, Status.FAILED, "no [vcenter] in the config")
            continue
        error = wait_for_vcenter(ctx.vcenter, timeout, ctx.cancel)
        settle(report, step, error, "vCenter answers (SOAP and REST)")
