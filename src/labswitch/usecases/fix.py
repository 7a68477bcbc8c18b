"""`labswitch fix`: planned from a fresh bulk read (plan.fix), refused or dry-run, then run and journaled as a
power cycle is (usecases.lifecycle): one run, its steps in the journal, `history` and `--json` alike.

Every fix step reads back what it changed; a read-back that does not show the change fails the step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from labswitch import lock, vsphere
from labswitch.cancel import Cancel
from labswitch.config import Config
from labswitch.errors import SafetyRefusal
from labswitch.journal import Journal, state_base
from labswitch.plan import Facts, Plan, fix
from labswitch.run import EventSink, Runner
from labswitch.usecases import lifecycle
from labswitch.usecases.power import self_addresses, vcenter_addresses  # the identities down/up refuse on

Confirm = Callable[[Plan], bool]


@contextlib.contextmanager
def _run_lock(config: Config, what: str, targets: Sequence[str], dry_run: bool) -> Iterator[lock.RunLock | None]:
    """A fix changes the lab: it holds the run lock like down and up (a dry run changes nothing and needs none)."""
    if dry_run:
        yield None
        return
    with lock.hold(state_base(config.state_dir), what, targets, lab=config.lab_id) as held:
        yield held


def l1tf_fix(
    config: Config,
    hosts: Sequence[str],
    mitigate: bool,
    reboot: bool,
    dry_run: bool,
    confirm: Confirm,
    on_event: EventSink,
    cancel: Cancel | None = None,
) -> lifecycle.Outcome:
    """The option on each host (the hosts the audit flags by default), then, with ``reboot``, a rolling reboot."""

    def plan_for(vc: vsphere.VSphere) -> Plan:
        facts = Facts(vcenter_addresses(vc.config.https_url), self_addresses(config), {})
        return fix.l1tf_plan(vc.audit_snapshot(), config, facts, hosts, mitigate, reboot)

    reason = "fix l1tf " + ("--mitigate" if mitigate else "--suppress-warning") + (" --reboot" if reboot else "")
    return _fix(config, "fix l1tf", reason, hosts, dry_run, plan_for, confirm, on_event, cancel)


def cbt_reset(
    config: Config,
    vms: Sequence[str],
    with_snapshots: bool,
    dry_run: bool,
    confirm: Confirm,
    on_event: EventSink,
    cancel: Cancel | None = None,
) -> lifecycle.Outcome:
    def plan_for(vc: vsphere.VSphere) -> Plan:
        return fix.cbt_plan(vc.audit_snapshot(), config, vms, with_snapshots)

    reason = "fix cbt-reset" + (" --with-snapshots" if with_snapshots else "")
    return _fix(config, "fix cbt-reset", reason, vms, dry_run, plan_for, confirm, on_event, cancel)


def _fix(
    config: Config,
    command: str,
    reason: str,
    targets: Sequence[str],
    dry_run: bool,
    plan_for: Callable[[vsphere.VSphere], Plan],
    confirm: Confirm,
    on_event: EventSink,
    cancel: Cancel | None,
) -> lifecycle.Outcome:
    """Plan, then (unless ``dry_run``: the plan, not confirmed) the journaled run; refused before anything changes."""
    vcenter = config.need_vcenter(f"labswitch {command}")
    with _run_lock(config, command, targets, dry_run) as held, vsphere.connect(vcenter) as vc:
        plan = plan_for(vc)
        if dry_run:
            if plan.refusals:
                raise SafetyRefusal("; ".join(plan.refusals))
            return lifecycle.Outcome(plan, None, (), confirmed=False)
        with Journal.of(config) as journal:
            return lifecycle.run_plan(
                journal,
                plan,
                confirm,
                lambda run_id: Runner(vc.actions(), config, {}, journal, run_id, on_event, cancel),
                on_event,
                held,
                reason,
            )
