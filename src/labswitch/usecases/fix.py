"""`labswitch fix`: plan from a fresh bulk read, refuse or dry-run, apply, read the result back.

Every fix reports per target what it did and what it read back afterwards; a fix whose
read-back does not show the change is a failure, whatever the task said.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyVmomi import VmomiSupport, vim

from labswitch import lock, vsphere
from labswitch.audits import FixPlan, FixStep, cbt_unmap, l1tf
from labswitch.config import Config
from labswitch.errors import EndpointError, Interrupted, SafetyRefusal, VSphereError
from labswitch.journal import Journal, default_path, state_base
from labswitch.plan import Facts, Plan, make_reboot_plan
from labswitch.run import EventSink, Runner, StepResult
from labswitch.usecases import lifecycle
from labswitch.usecases.power import self_addresses, vcenter_addresses  # the identities down/up refuse on
from labswitch.vsphere.actions import Actions

Confirm = Callable[[FixPlan], bool]


@dataclass(frozen=True)
class FixResult:
    target: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class FixOutcome:
    plan: FixPlan
    results: tuple[FixResult, ...] = ()
    reboots: tuple[StepResult, ...] = ()
    applied: bool = False  # False on --dry-run

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and all(r.ok for r in self.reboots)


@contextlib.contextmanager
def _run_lock(config: Config, what: str, targets: Sequence[str], dry_run: bool) -> Iterator[lock.RunLock | None]:
    """A fix changes the lab: it holds the run lock like down and up (a dry run changes nothing and needs none)."""
    if dry_run:
        yield None
        return
    with lock.hold(state_base(config.state_dir), what, targets) as held:
        yield held


def l1tf_fix(
    config: Config,
    hosts: Sequence[str],
    mitigate: bool,
    reboot: bool,
    dry_run: bool,
    confirm: Confirm,
    on_event: EventSink,
) -> FixOutcome:
    vcenter = config.need_vcenter("labswitch fix l1tf")
    with _run_lock(config, "fix l1tf", hosts, dry_run) as held, vsphere.connect(vcenter) as vc:
        snap = vc.audit_snapshot()
        plan, targets = l1tf.plan_fix(snap, hosts, mitigate)
        reboot_plans: list[Plan] = []
        if reboot and mitigate:
            facts = Facts(vcenter_addresses(vcenter.https_url), self_addresses(config), {})
            reboot_plans = [make_reboot_plan(snap, config, facts, h) for h in targets]
            plan = FixPlan(
                plan.steps + tuple(_reboot_step(p) for p in reboot_plans),
                plan.refusals + tuple(r for p in reboot_plans for r in p.refusals),
                plan.notes + tuple(n for p in reboot_plans for n in p.notes),
            )
        if plan.refusals:
            raise SafetyRefusal("; ".join(plan.refusals))
        if dry_run or not plan.steps or not confirm(plan):
            return FixOutcome(plan)
        key, value = (l1tf.MITIGATION, True) if mitigate else (l1tf.SUPPRESS, VmomiSupport.GetVmodlType("long")(1))
        by_name = {h.name: h for h in targets}
        actions = vc.actions()
        results = []
        for step in (s for s in plan.steps if s.action == "set-option"):
            results.append(_set_option(actions, by_name[step.target].moid, step.target, key, value, mitigate))
        reboots: list[StepResult] = []
        if reboot_plans and all(r.ok for r in results):
            reboots = _rolling_reboot(actions, config, reboot_plans, on_event, held)
        return FixOutcome(plan, tuple(results), tuple(reboots), applied=True)


def _reboot_step(plan: Plan) -> FixStep:
    running = len(plan.phase("start:restore"))
    return FixStep(plan.servers[0], "rolling-reboot", f"maintenance mode, reboot, back; {running} running VMs stopped and started again")


def _set_option(actions: Actions, host_moid: str, name: str, key: str, value: object, mitigate: bool) -> FixResult:
    try:
        manager = actions.call(lambda: actions.host(host_moid).configManager.advancedOption)
        actions.call(lambda: manager.UpdateOptions(changedValue=[vim.option.OptionValue(key=key, value=value)]))
        now = {o.key: o.value for o in actions.call(lambda: manager.QueryOptions(name=key))}.get(key)
    except EndpointError as exc:  # reported per host; the others go on
        return FixResult(name, False, f"setting {key} failed: {exc}")
    if not l1tf.truthy(now):
        return FixResult(name, False, f"{key} reads back as {now!r} after the change")
    detail = f"{key} = {str(now).lower()} (read back)" + ("; takes effect after a reboot" if mitigate else "")
    return FixResult(name, True, detail)


def _rolling_reboot(
    actions: Actions, config: Config, plans: list[Plan], on_event: EventSink, held: lock.RunLock | None
) -> list[StepResult]:
    """One host at a time, each its own journaled run; stops at the first host that does not come back whole."""
    results: list[StepResult] = []
    with Journal(default_path(config.state_dir)) as journal:
        for plan in plans:
            outcome = lifecycle.run_plan(
                journal,
                plan,
                lambda plan: True,  # confirmed with the fix
                lambda run_id: Runner(actions, config, {}, journal, run_id, on_event),
                on_event,
                held,
                f"fix l1tf: rolling reboot of {plan.servers[0]}",
            )
            results += outcome.results
            if outcome.interrupted:
                raise Interrupted("the rolling reboot was interrupted")
            if not outcome.ok:
                on_event("note", f"rolling reboot stopped at {plan.servers[0]}: it did not come back whole; the next hosts are untouched")
                break
    return results


def cbt_reset(config: Config, vms: Sequence[str], with_snapshots: bool, dry_run: bool, confirm: Confirm) -> FixOutcome:
    vcenter = config.need_vcenter("labswitch fix cbt-reset")
    with _run_lock(config, "fix cbt-reset", vms, dry_run), vsphere.connect(vcenter) as vc:
        snap = vc.audit_snapshot()
        plan = cbt_unmap.plan_reset(snap, vms, with_snapshots)
        if plan.refusals:
            raise SafetyRefusal("; ".join(plan.refusals))
        if dry_run or not plan.steps or not confirm(plan):
            return FixOutcome(plan)
        targets = [snap.vm_by_name(n) for n in dict.fromkeys(s.target for s in plan.steps)]
        actions = vc.actions()
        with ThreadPoolExecutor(max_workers=config.policy.max_parallel) as pool:
            results = list(pool.map(lambda vm: _reset_one(actions, vm.moid, vm.name, config.policy.maintenance_timeout), targets))
        return FixOutcome(plan, tuple(results), applied=True)


def _reset_one(actions: Actions, moid: str, name: str, timeout: float) -> FixResult:
    vm = actions.vm(moid)

    def wait(task: Any, what: str, result: bool = False) -> Any:
        error = actions.wait_tasks({"t": task}, timeout)["t"]
        if error is not None:
            raise VSphereError(f"{what}: {error}")
        return task.info.result if result else None

    def reconfigure(cbt: bool) -> None:
        wait(actions.call(lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(changeTrackingEnabled=cbt))), f"CBT {'on' if cbt else 'off'}")

    started = time.monotonic()
    try:
        reconfigure(False)
        try:
            snapshot = wait(
                actions.call(
                    lambda: vm.CreateSnapshot_Task(
                        name=cbt_unmap.RESET_SNAPSHOT, description="labswitch fix cbt-reset (KB 2139574)", memory=False, quiesce=False
                    )
                ),
                "create snapshot",
                result=True,
            )
            wait(actions.call(lambda: snapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True)), "remove snapshot")
        finally:
            reconfigure(True)  # never leave the VM without CBT, whatever failed in between
        now = actions.read(vm, ["config.changeTrackingEnabled", "snapshot.rootSnapshotList"])
        enabled = now.get("config.changeTrackingEnabled")
        left = [s.name for s in _tree(now.get("snapshot.rootSnapshotList") or []) if s.name == cbt_unmap.RESET_SNAPSHOT]
    except EndpointError as exc:
        return FixResult(name, False, str(exc))
    if not enabled:
        return FixResult(name, False, "CBT reads back as off after the reset")
    if left:
        return FixResult(name, False, f"snapshot {cbt_unmap.RESET_SNAPSHOT!r} is still there; remove it in the vSphere Client")
    return FixResult(name, True, f"CBT reset in {time.monotonic() - started:.1f}s: on, no snapshot left (read back)")


def _tree(nodes: Sequence[Any]) -> list[Any]:
    out = []
    for node in nodes or []:
        out.append(node)
        out += _tree(node.childSnapshotList)
    return out
