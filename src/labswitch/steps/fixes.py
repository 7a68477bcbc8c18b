"""The fixes for audit findings (plan.fix): each change read back; a read-back that does not show it fails the step,
whatever the task said."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from labswitch.audits import cbt_unmap, l1tf
from labswitch.errors import EndpointError
from labswitch.plan import Status, Step
from labswitch.steps import Context, Report


def l1tf_mitigate(steps: list[Step], ctx: Context, report: Report) -> None:
    _set_option(steps, ctx, report, l1tf.MITIGATION, "true")


def l1tf_suppress_warning(steps: list[Step], ctx: Context, report: Report) -> None:
    _set_option(steps, ctx, report, l1tf.SUPPRESS, "1")


def _set_option(steps: list[Step], ctx: Context, report: Report, key: str, value: str) -> None:
    port = ctx.port_for(steps[0])
    for step in steps:
        try:
            now = port.set_host_option(step.moid or "", key, value)
        except EndpointError as exc:  # reported per host; the others go on
            report(step, Status.FAILED, f"setting {key} failed: {exc}")
            continue
        if l1tf.truthy(now):
            report(step, Status.OK, f"{key} = {str(now).lower()} (read back)")
        else:
            report(step, Status.FAILED, f"{key} reads back as {now!r} after the change")


def cbt_reset(steps: list[Step], ctx: Context, report: Report) -> None:
    """KB 2139574, the VMs in parallel (at most policy.max_parallel calls at once, as every step)."""
    port = ctx.port_for(steps[0])
    timeout = ctx.policy.maintenance_timeout

    def one(step: Step) -> None:
        try:
            enabled, snapshots = port.reset_cbt(step.moid or "", cbt_unmap.RESET_SNAPSHOT, "labswitch fix cbt-reset (KB 2139574)", timeout)
        except EndpointError as exc:
            report(step, Status.FAILED, str(exc))
            return
        if not enabled:
            report(step, Status.FAILED, "CBT reads back as off after the reset")
        elif cbt_unmap.RESET_SNAPSHOT in snapshots:
            report(step, Status.FAILED, f"snapshot {cbt_unmap.RESET_SNAPSHOT!r} is still there; remove it in the vSphere Client")
        else:
            report(step, Status.OK, "CBT on, no snapshot left (read back)")

    with ThreadPoolExecutor(max_workers=max(1, min(ctx.policy.max_parallel, len(steps)))) as pool:
        list(pool.map(one, steps))
