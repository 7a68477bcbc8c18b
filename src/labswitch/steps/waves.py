"""The barriers between start-up waves (the wave's started VMs meet its condition, then its delay) and between a down's
shutdown order groups (plan.order: the executor starts one once every shutdown of the group before it ended)."""

from __future__ import annotations

import time

from labswitch.plan import VCENTER, Action, Status, Step
from labswitch.steps import Context, Report
from labswitch.words import count


def wave_ready(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        index = step.wave if step.wave is not None else 0
        wave = ctx.plan.waves[index] if index < len(ctx.plan.waves) else None
        condition = wave.wait if wave else "tools"
        timeout = wave.timeout if wave else 300.0
        with ctx.lock:
            started = sorted(ctx.started.get(index, ()))
        if condition != "none" and started:
            reached = _wait_each_endpoint(ctx, started, condition, timeout)
            if len(reached) < len(started):
                names = sorted(s.target for s in ctx.plan.steps if s.wave == index and s.moid in set(started) - reached)
                ctx.note(f"{step.phase}: {condition} not up after {timeout:.0f}s on {', '.join(names)}; next wave starts anyway")
        if wave and wave.delay:
            ctx.cancel.sleep(wave.delay)  # a configured pause between waves, not a wait on a condition
        report(step, Status.OK, f"{count(len(started), 'VM')} started" + (f", {condition} waited for" if condition != "none" else ""))


def _wait_each_endpoint(ctx: Context, vms: list[str], condition: str, timeout: float) -> set[str]:
    """Wait on each VM through the port it was started through (vCenter's, or its host's), within one deadline."""
    through = {s.moid: s for s in ctx.plan.steps if s.action == Action.POWER_ON_VM and s.moid in set(vms)}
    by_port: dict[str, list[str]] = {}
    for vm in vms:
        step = through.get(vm)
        by_port.setdefault(step.endpoint if step else VCENTER, []).append(vm)
    deadline = time.monotonic() + timeout
    reached: set[str] = set()
    for endpoint, members in by_port.items():
        port = ctx.ports.get(endpoint, ctx.port)
        reached |= port.wait(members, condition, max(0.0, deadline - time.monotonic()))
    return reached


def order_ended(steps: list[Step], ctx: Context, report: Report) -> None:
    """Nothing to wait for here: the executor starts this step once every shutdown it settles on has ended."""
    for step in steps:
        report(step, Status.OK, f"{count(len(step.settled), 'guest')} through (off, given up on, or not asked); the next order goes")
