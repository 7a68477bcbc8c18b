"""The barrier between start-up waves: the wave's started VMs meet its condition, then its delay."""

from __future__ import annotations

from labswitch.plan import Status, Step
from labswitch.steps import Context, Report


def wave_ready(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        index = step.wave if step.wave is not None else 0
        wave = ctx.plan.waves[index] if index < len(ctx.plan.waves) else None
        condition = wave.wait if wave else "tools"
        timeout = wave.timeout if wave else 300.0
        with ctx.lock:
            started = sorted(ctx.started.get(index, ()))
        if condition != "none" and started:
            reached = ctx.port.wait(started, condition, timeout)
            if len(reached) < len(started):
                names = sorted(s.target for s in ctx.plan.steps if s.wave == index and s.moid in set(started) - reached)
                ctx.note(f"{step.phase}: {condition} not up after {timeout:.0f}s on {', '.join(names)}; next wave starts anyway")
        if wave and wave.delay:
            ctx.cancel.sleep(wave.delay)  # a configured pause between waves, not a wait on a condition
        report(step, Status.OK, f"{len(started)} VMs started" + (f", {condition} waited for" if condition != "none" else ""))
