"""A Proxmox VE cluster's steps: HA resources ignored and given back, Ceph's flags set and cleared, Ceph ready.

Each change is journaled before it is made, with what it replaces (the first record stands while it is not
restored: a down interrupted and run again keeps what the cluster had before); the restoring step sets exactly
that back and marks the record restored."""

from __future__ import annotations

import json
import time

from labswitch.plan import Intent, Status, Step
from labswitch.plan.proxmox import CEPH_DOWN_FLAGS
from labswitch.steps import Context, Report, attempt, settle

POLL = 2.0  # seconds between two looks at Ceph's placement groups


def ha_ignore(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        cluster = step.moid or ""
        now = ctx.port.cluster_setting(cluster, "pve-ha") or "{}"
        ctx.remember(step, "pve-ha", now)  # a down run again keeps the first record: the states before the first down
        states = json.loads(now)
        error = attempt(
            ctx.port.change_cluster_setting, cluster, "pve-ha", json.dumps(dict.fromkeys(states, "ignored")), ctx.policy.maintenance_timeout
        )
        settle(report, step, error, f"{len(states)} HA resource(s) set to ignored (up gives each its state back)")


def ha_restore(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        previous = ctx.previous(step, "pve-ha")
        if previous is None:
            report(step, Status.OK, "no HA change of a down to give back")
            continue
        error = attempt(ctx.port.change_cluster_setting, step.moid or "", "pve-ha", previous, ctx.policy.maintenance_timeout)
        if error is not None:
            report(step, Status.FAILED, f"{error}; HA resources are not back as they were (labswitch status reports it)")
            continue
        ctx.restored(step, "pve-ha")
        states = json.loads(previous)
        said = ", ".join(f"{sid} {state}" for sid, state in sorted(states.items()))
        report(step, *_ha_started(ctx, states, f"HA resources back as before the down: {said}"))


def _ha_started(ctx: Context, states: dict[str, str], said: str) -> tuple[Status, str]:
    """HA starts its started resources' guests itself (labswitch never does): wait for them, within
    policy.ha_start_timeout, so the guests that need them start after them."""
    wanted = {guest_of(sid): sid for sid, state in states.items() if state == "started"}
    if not wanted:
        return Status.OK, said
    timeout = ctx.policy.ha_start_timeout
    running = ctx.port.wait(sorted(wanted), "on", timeout)
    late = sorted(sid for moid, sid in wanted.items() if moid not in running)
    if late:
        return Status.FAILED, f"{said}; HA had not started {', '.join(late)} after {timeout:.0f}s (ha-manager status says why)"
    return Status.OK, f"{said}; HA started {len(wanted)} guest(s) itself"


def guest_of(sid: str) -> str:
    """An HA resource's guest: vm:100 is QEMU VM 100 ("qemu/100"), ct:101 container 101 ("lxc/101")."""
    kind, _, vmid = sid.partition(":")
    return f"{'lxc' if kind == 'ct' else 'qemu'}/{vmid}"


def ha_disarm(steps: list[Step], ctx: Context, report: Report) -> None:
    """PVE 9.2+: HA disarmed cluster-wide, resource mode ignore: no fencing, no recovery, its guests labswitch's to stop
    while the cluster goes down (the armed state journaled first; up arms it again)."""
    for step in steps:
        cluster = step.moid or ""
        ctx.remember(step, "pve-ha-armed", ctx.port.cluster_setting(cluster, "pve-ha-armed") or "armed")
        error = attempt(ctx.port.change_cluster_setting, cluster, "pve-ha-armed", "disarmed:ignore", ctx.policy.maintenance_timeout)
        settle(report, step, error, "HA disarmed, resource mode ignore (up arms it again)")


def ha_arm(steps: list[Step], ctx: Context, report: Report) -> None:
    """HA armed again as before the down; it then starts its started resources' guests itself: waited for."""
    for step in steps:
        previous = ctx.previous(step, "pve-ha-armed")
        if previous is None or previous.startswith("disarmed"):
            report(step, Status.OK, "HA was disarmed before the down: left disarmed")
            if previous is not None:
                ctx.restored(step, "pve-ha-armed")
            continue
        error = attempt(ctx.port.change_cluster_setting, step.moid or "", "pve-ha-armed", "armed", ctx.policy.maintenance_timeout)
        if error is not None:
            report(step, Status.FAILED, f"{error}; HA is still disarmed (labswitch status reports it)")
            continue
        ctx.restored(step, "pve-ha-armed")
        states = json.loads(ctx.port.cluster_setting(step.moid or "", "pve-ha") or "{}")
        report(step, *_ha_started(ctx, states, "HA armed again"))


def ceph_flags_set(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        cluster = step.moid or ""
        now = ctx.port.cluster_setting(cluster, "ceph-flags") or ""
        ctx.remember(step, "ceph-flags", now)
        error = attempt(ctx.port.change_cluster_setting, cluster, "ceph-flags", ",".join(CEPH_DOWN_FLAGS), ctx.policy.maintenance_timeout)
        settle(report, step, error, "Ceph: noout, norebalance, nobackfill, norecover set (up clears them)")


def ceph_flags_clear(steps: list[Step], ctx: Context, report: Report) -> None:
    for step in steps:
        previous = ctx.previous(step, "ceph-flags") or ""
        kept = sorted(set(filter(None, previous.split(","))) & set(CEPH_DOWN_FLAGS))
        error = attempt(ctx.port.change_cluster_setting, step.moid or "", "ceph-flags", ",".join(kept), ctx.policy.maintenance_timeout)
        if error is not None:
            report(step, Status.FAILED, f"{error}; Ceph's flags are still set (labswitch status reports it)")
            continue
        ctx.restored(step, "ceph-flags")
        report(step, Status.OK, "Ceph's flags cleared" + (f" (kept, set before the down: {', '.join(kept)})" if kept else ""))


def ceph_ready(steps: list[Step], ctx: Context, report: Report) -> None:
    """Until every placement group is active (Ceph serves I/O), for policy.ceph_ready_timeout at most: on an up before
    any guest starts on it; on a down before its flags are set (pveceph.adoc: healthy, then noout, then the nodes)."""
    then = "its flags are not set and its nodes stay on" if ctx.plan.intent is Intent.DOWN else "guests are not started on it"
    for step in steps:
        _until(step, ctx, report, "ceph-health", "active", "every placement group active", f"Ceph not ready after {{}}: {{}}; {then}")


def ceph_services(steps: list[Step], ctx: Context, report: Report) -> None:
    """Up: every monitor in quorum and every OSD up before the flags are cleared (pveceph.adoc)."""
    for step in steps:
        _until(
            step,
            ctx,
            report,
            "ceph-services",
            "ready",
            "monitors in quorum, every OSD up",
            "Ceph's services not up after {}: {}; its flags are kept, guests are not started on it",
        )


def _until(step: Step, ctx: Context, report: Report, setting: str, wanted: str, done: str, not_done: str) -> None:
    """Read a Ceph setting until it says ``wanted``, for policy.ceph_ready_timeout at most (``not_done``: its two {}
    are the timeout and the last answer)."""
    timeout = ctx.policy.ceph_ready_timeout
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        error = None
        try:
            state = ctx.port.cluster_setting(step.moid or "", setting) or ""
        except Exception as exc:  # noqa: BLE001 - EndpointError while the monitors form their quorum: read again
            error = str(exc)
        if state == wanted:
            report(step, Status.OK, done)
            return
        if time.monotonic() >= deadline:
            report(step, Status.FAILED, not_done.format(f"{timeout:.0f}s", state or error))
            return
        ctx.cancel.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
