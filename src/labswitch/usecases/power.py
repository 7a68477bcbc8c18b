"""`plan`, `down` and `up`: preflight, facts, the plan, safety, the journal, the run."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from labswitch import lock, platform, vsphere
from labswitch.bmc import Driver
from labswitch.cancel import Cancel
from labswitch.config import Config, VCenter
from labswitch.errors import ConfigError, ConnectionFailed, VSphereError
from labswitch.journal import Journal, VMState, WholeLab, state_base
from labswitch.plan import Action, Facts, Intent, Plan, make_plan, make_proxmox_plan, target_groups, through_hosts, whole_lab
from labswitch.plan import groups as group_order
from labswitch.run import EventSink, Runner
from labswitch.snapshot import Snapshot
from labswitch.usecases import bmc, lifecycle
from labswitch.usecases.lifecycle import Outcome
from labswitch.vsphere import session as vsphere_session


@dataclass(frozen=True)
class Request:
    intent: Intent
    groups: Sequence[str] = ()
    restore: bool = False
    tag: str | None = None  # up: a start-up tag other than policy.startup_tag
    skip_unreachable: bool = False
    lock_wait: float = 0.0  # seconds to wait for a run in progress to finish (0: refuse at once)
    pipeline: bool = True  # False: the old lab-wide phase barriers, for the benchmark's comparison
    cluster_barrier: bool = False  # True: every whole cluster one unit (the design before 2026-12), for the benchmark
    vsan_no_action: bool = False  # a vSAN cluster going down in part: maintenance without moving data, not a refusal
    whole_lab: bool = False  # down: vCenter's own host too, last, through its own API (plan.whole_lab)
    reason: str | None = None  # why (journaled): "ups", a schedule's name; None: by hand


def make(config: Config, request: Request) -> Plan:
    """The plan from live state, changing nothing (`labswitch plan`)."""
    groups = target_groups(config, request.groups, request.intent)
    _check_whole_lab(config, request, groups)
    side = _whole_lab_side(config, request)
    if side is not None:
        with _host_side(config, request, groups, side) as (plan, *_):
            return plan
    with _session(config, request) as (plan, *_):
        return plan


def _check_whole_lab(config: Config, request: Request, groups: Sequence[str]) -> None:
    """A whole-lab down needs the hosts' own login: bad input, said before anything is contacted."""
    wanted = request.whole_lab or any(config.groups[g].holds_vcenter for g in groups)
    if request.intent is Intent.DOWN and wanted and config.esxi is None:
        raise ConfigError(
            "a whole-lab down stops vCenter through its host: add [esxi] with user and password (the hosts' root login) to the config"
        )


def _whole_lab_side(config: Config, request: Request) -> WholeLab | None:
    """The journaled whole-lab down still to be finished from the host's side: an up (vCenter is off), or
    a down run again once vCenter no longer answers. None: vCenter's side, as usual."""
    with Journal.of(config) as journal:
        pending = journal.pending_whole_lab()
    if pending is None or config.esxi is None or config.vcenter is None:
        return None
    if request.intent is Intent.UP:
        return pending
    if request.intent is Intent.DOWN and not _answers(config.vcenter):
        return pending
    return None


def _answers(vcenter: VCenter) -> bool:
    try:
        with vsphere.connect(vcenter):
            return True
    except (ConnectionFailed, VSphereError):
        return False


def execute(
    config: Config,
    request: Request,
    confirm: Callable[[Plan], bool],
    on_event: EventSink,
    cancel: Cancel | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Outcome:
    """Hold the run lock, plan, refuse or confirm, then run and journal (`labswitch down|up`).

    Another run in progress: RunInProgress before anything is contacted. The cancel switch set
    during the run: the outcome says interrupted, and the journal too.
    """
    groups = target_groups(config, request.groups, request.intent)
    _check_whole_lab(config, request, groups)
    with lock.hold(state_base(config.state_dir), str(request.intent), groups, request.lock_wait, on_wait, lab=config.lab_id) as held:
        side = _whole_lab_side(config, request)
        if side is None:
            outcome = _execute(config, request, confirm, on_event, cancel, held)
            if config.vcenter is None and request.intent is Intent.UP and outcome.ok and _powered_on(outcome.plan):
                # No vCenter knew what ran on the hosts that were off: now that they answer, their VMs.
                rest = _execute(config, request, lambda plan: True, on_event, cancel, held, run_id=outcome.run_id)
                return lifecycle.continued(outcome, rest)
            return outcome
        with _host_side(config, request, groups, side) as (first, drivers, journal):
            outcome = lifecycle.run_plan(
                journal,
                first,
                confirm,
                lambda run_id: Runner(None, config, drivers, journal, run_id, on_event, cancel),
                on_event,
                held,
                request.reason,
                leave_open=first.intent is Intent.UP,  # vCenter's side follows in the same run
            )
        if request.intent is Intent.DOWN or not outcome.ok or outcome.run_id is None:
            return outcome
        # vCenter answers again: the usual up, in the same run.
        rest = _execute(config, request, lambda plan: True, on_event, cancel, held, run_id=outcome.run_id)
        return lifecycle.continued(outcome, rest)


def _powered_on(plan: Plan) -> bool:
    return any(s.action == Action.BMC_POWER_ON for s in plan.steps)


@contextlib.contextmanager
def _host_side(
    config: Config, request: Request, groups: Sequence[str], pending: WholeLab
) -> Iterator[tuple[Plan, dict[str, Driver], Journal]]:
    """The plan of a whole-lab cycle's host side, made from the journal and the BMCs (vCenter is off)."""
    servers = [s for s in config.servers if s.group in groups or s.name in (pending.server, *pending.peers)]
    with Journal.of(config) as journal, bmc.opened(config, servers) as drivers:
        power = bmc.power_states(bmc.on_drivers(drivers, lambda d: d.power_state(), config.policy.max_parallel))
        bmc_power = {name: p for name, (p, _) in power.items()}
        refusals = [f"{error}; fix it and run again" for name, (p, error) in power.items() if error and name == pending.server]
        if request.intent is Intent.UP:
            steps = whole_lab.boot(servers, pending.server, pending.vcenter, pending.dependencies, bmc_power, pending.peers)
            note = f"vCenter is off (whole-lab down {pending.run_id}); it is started on {pending.server}, then the usual up follows"
        else:
            stop = (pending.vcenter, *reversed(pending.dependencies))
            steps = whole_lab.resume_down(config, servers, pending.server, stop, bmc_power, pending.peers)
            note = f"vCenter no longer answers: the whole-lab down {pending.run_id} is finished through {pending.server}"
        plan = Plan(
            request.intent,
            tuple(groups),
            tuple(s.name for s in servers),
            tuple(steps),
            tuple(refusals),
            (note,),
            tuple(config.startup.waves),
        )
        yield plan, drivers, journal


def _execute(
    config: Config,
    request: Request,
    confirm: Callable[[Plan], bool],
    on_event: EventSink,
    cancel: Cancel | None,
    held: lock.RunLock,
    run_id: str | None = None,
) -> Outcome:
    """The run through vCenter; ``run_id``: continue that run (a whole-lab up once vCenter answers)."""
    with _session(config, request) as (plan, vc, drivers, snap, journal):
        # Decided before this run is journaled: a down after a down keeps the first one's states.
        record_for = journal.groups_needing_states(plan.groups) if request.intent is Intent.DOWN else []

        def before(run_id: str) -> None:
            if record_for:
                _record_states(journal, run_id, config, snap, plan, record_for)
            if monitors := _monitors(snap):  # Ceph's monitor nodes, for an up while the cluster cannot say (all off)
                journal.record_fact(run_id, CEPH_MONITORS, ",".join(sorted(monitors)))
            if plan.vcenter_host is not None:
                where = plan.vcenter_host
                journal.record_whole_lab(run_id, where.server, where.vcenter, where.dependencies, where.peers)

        return lifecycle.run_plan(
            journal,
            plan,
            confirm,
            lambda run_id: Runner(vc.actions(), config, drivers, journal, run_id, on_event, cancel, port=vc.run_port(cancel or Cancel())),
            on_event,
            held,
            request.reason,
            run_id=run_id,
            before=before,
            after_ok=journal.whole_lab_done if request.intent is Intent.UP else None,
        )


@contextlib.contextmanager
def _session(config: Config, request: Request) -> Iterator[tuple[Plan, platform.Lab, dict[str, Driver], Snapshot, Journal]]:
    groups = target_groups(config, request.groups, request.intent)
    if request.tag:
        config = config.model_copy(update={"policy": config.policy.model_copy(update={"startup_tag": request.tag})})
    linked = group_order.linked(config, groups)  # groups that need these or that these need: their power decides refusals
    servers = [s for s in config.servers if s.group in groups or s.group in linked]
    with (
        Journal.of(config) as journal,
        bmc.opened(config, servers) as drivers,
        ThreadPoolExecutor(max_workers=1) as side,  # the BMCs are read while vCenter (or the hosts) are
    ):
        reading = side.submit(bmc.on_drivers, drivers, lambda d: d.power_state(), config.policy.max_parallel)
        with platform.lab(config) as vc:
            proxmox = config.proxmox is not None
            tags = request.intent is Intent.UP and not request.restore and not config.policy.startup_from_autostart and not proxmox
            snap = vc.snapshot(tags_required=tags)
            power = bmc.power_states(reading.result())
            facts = Facts(
                vcenter_addresses=vcenter_addresses(config.vcenter.https_url) if config.vcenter else frozenset(),
                self_addresses=self_addresses(config),
                bmc_power={name: p for name, (p, _) in power.items()},
                bmc_errors={name: e for name, (_, e) in power.items() if e},
                restore=_restore_set(journal, groups) if request.restore else None,
                changed=changed_settings(journal),
                ceph_monitors=_monitors(snap) or frozenset(filter(None, (journal.last_fact(CEPH_MONITORS) or "").split(","))),
            )
            if proxmox:
                plan = make_proxmox_plan(snap, config, facts, request.intent, groups, request.skip_unreachable, request.tag)
                if request.intent is Intent.UP and not snap.hosts:
                    note = "the cluster answers no call while its nodes are off: its guests are planned once they are back, in the same run"
                    plan = replace(plan, notes=(*plan.notes, note))
                elif request.intent is Intent.UP and not request.restore and not request.tag:
                    plan = _what_up_leaves_off(plan, journal, groups, "those that start at boot")
            else:
                plan = make_plan(
                    snap,
                    config,
                    facts,
                    request.intent,
                    groups,
                    request.skip_unreachable,
                    request.pipeline,
                    request.vsan_no_action,
                    request.whole_lab,
                    cluster_barrier=request.cluster_barrier,
                )
            plan = group_order.in_order(plan, config, facts, snap)  # groups that need groups: edges and refusals
            if config.vcenter is None and not proxmox:
                plan = through_hosts(plan)
            if tags:
                plan = _what_up_leaves_off(plan, journal, groups, f"tag {config.policy.startup_tag}")
            if plan.vcenter_host is not None and config.esxi is not None and not plan.refusals:
                _check_host_login(config, plan.vcenter_host.server)
            yield (
                _privileges(plan, vc, snap),
                vc,
                drivers,
                snap,
                journal,
            )


def _check_host_login(config: Config, server_name: str) -> None:
    """A whole-lab down ends through vCenter's host: its login is tried before anything changes (a wrong
    password or an untrusted certificate is an error now, not once the rest of the lab is off)."""
    server = config.server(server_name)
    assert server is not None and config.esxi is not None
    login = vsphere_session.login_for_host(config.esxi, server)
    vsphere_session.close_session(vsphere_session.open_session(login), login.where)


def _privileges(plan: Plan, vc: platform.Lab, snap: Snapshot) -> Plan:
    """What the run's steps need that the user or token may not do (vCenter's privileges for a down's cluster
    changes; on Proxmox VE, the API's own permission checks), refused before the first change."""
    return replace(plan, refusals=plan.refusals + tuple(vc.refusals(plan, snap)))


CEPH_MONITORS = "ceph-monitors"


def _monitors(snap: Snapshot) -> frozenset[str]:
    return frozenset(n for c in snap.clusters for n in c.ceph_monitors)


def _record_states(journal: Journal, run_id: str, config: Config, snap: Snapshot, plan: Plan, groups: Sequence[str]) -> None:
    states = []
    for server in (s for s in config.servers if s.group in groups and s.name in plan.servers):
        host = snap.host_by_name(server.esxi)
        if host is not None:
            states += [VMState(server.group, vm.moid, vm.name, server.name, vm.power_state) for vm in snap.workload_on(host.moid)]
    journal.record_vm_states(run_id, states)


def changed_settings(journal: Journal) -> dict[str, frozenset[str]]:
    """cluster moid -> the settings a down changed there and no up has restored yet."""
    out: dict[str, set[str]] = {}
    for change in journal.pending_changes():
        out.setdefault(change.cluster_moid, set()).add(change.setting)
    return {moid: frozenset(settings) for moid, settings in out.items()}


def _what_up_leaves_off(plan: Plan, journal: Journal, groups: Sequence[str], chosen: str) -> Plan:
    """An up by tag after a down that stopped more VMs says so, before the question and after the run: "58 of the
    120 VMs the last down stopped will start (tag Lab/StartUp); labswitch up --restore starts all 120"."""
    stopped = _restore_set(journal, groups, required=False)
    starting = {s.moid for s in plan.steps if s.action == Action.POWER_ON_VM and s.moid}
    if not stopped or stopped <= starting:
        return plan
    note = (
        f"{len(stopped & starting)} of the {len(stopped)} VMs the last down stopped will start ({chosen}); "
        f"`labswitch up --restore` starts all {len(stopped)}"
    )
    return replace(plan, notes=(*plan.notes, note))


def _restore_set(journal: Journal, groups: Sequence[str], required: bool = True) -> frozenset[str]:
    """The VMs that ran when the groups' last down began (what --restore starts). ``required``: a group with no down
    journaled is an error (--restore), else it adds nothing."""
    moids: set[str] = set()
    for group in groups:
        states = journal.states_before_down(group)
        if states is None and not required:
            continue
        if states is None:
            raise ConfigError(
                f"--restore: no down of group {group} is in the journal {journal.path}; start the tagged VMs instead (no --restore)"
            )
        moids |= {s.moid for s in states if s.power_state == "poweredOn"}
    return frozenset(moids)


def vcenter_addresses(url: str) -> frozenset[str]:
    """The vCenter URL's host name and the addresses it resolves to, lower case."""
    name = urlsplit(url).hostname or ""
    found = {name.lower()} if name else set()
    with contextlib.suppress(OSError, UnicodeError):
        found |= {str(info[4][0]).lower() for info in socket.getaddrinfo(name, None)}
    return frozenset(found)


def self_addresses(config: Config) -> frozenset[str]:
    """This machine's names, and the address it reaches vCenter (or the first host) from (no packet is sent)."""
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    if config.vcenter:
        url = config.vcenter.https_url
    elif config.proxmox:
        url = config.proxmox.https_url
    else:
        url = config.servers[0].direct_url if config.servers else ""
    parts = urlsplit(url)
    with contextlib.suppress(OSError, UnicodeError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((parts.hostname or "", parts.port or 443))
        names.add(s.getsockname()[0])
    return frozenset(n for n in names if n)
