"""What a person reads before and after a down or up: the plan in brief, the question, the summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from labswitch.plan import REGISTRY, VM_ACTIONS, Action, Plan, Subject
from labswitch.render.live import clock, in_its_words
from labswitch.run import StepResult
from labswitch.words import count

HOST_WORDS: dict[str, str] = {a: s.word for a, s in REGISTRY.items() if s.subject is Subject.HOST}
CLUSTER_WORDS: dict[str, str] = {a: s.word for a, s in REGISTRY.items() if s.subject is Subject.CLUSTER}


@dataclass(frozen=True)
class PlanCounts:
    vms: int  # VMs to stop (down) or start (up)
    hosts: int  # hosts with any step


def counts(plan: Plan) -> PlanCounts:
    vms = {s.target for s in plan.steps if s.action in VM_ACTIONS}
    hosts = {s.server for s in plan.steps if s.server}
    return PlanCounts(len(vms), len(hosts))


def question(plan: Plan) -> str:
    c = counts(plan)
    verb = {"down": "to stop", "up": "to start"}.get(str(plan.intent), "")
    return f"Proceed with {plan.intent} of {', '.join(plan.groups)}: {count(c.vms, 'VM')} {verb} on {count(c.hosts, 'host')}? [y/N] "


@dataclass(frozen=True)
class HostBrief:
    host: str
    group: str
    vms: tuple[str, ...]  # stopped by their guests (down) or started (up)
    hard: tuple[str, ...]  # powered off hard (policy.hard_power_off)
    left: tuple[str, ...]  # without Tools: left running
    steps: tuple[str, ...]  # the host's own steps, in its words ("maintenance", "shut down", "off (BMC)")


@dataclass(frozen=True)
class Brief:
    """A plan in brief, as a person reads it before saying yes: the terminal's table and the page's sheet."""

    intent: str
    groups: tuple[str, ...]
    hosts: tuple[HostBrief, ...]
    clusters: tuple[tuple[str, tuple[str, ...]], ...]  # cluster -> its changes, in order
    vcenter: str | None  # a whole-lab down: how vCenter's host goes last
    vms: int

    @property
    def cluster_note(self) -> str:
        return " (journaled; up gives them back)" if self.intent == "down" else ""


def brief(plan: Plan, groups: Mapping[str, str], power_by: Mapping[str, str] | None = None) -> Brief:
    """Per host: VMs to stop or start, the host's steps (``power_by``: servers whose power no BMC tells, and what does:
    their steps say so); the cluster changes; where vCenter goes (PURE)."""
    per_host: dict[str, dict[str, list[str]]] = {}
    for step in plan.steps:
        if step.fallback_of or step.server is None:
            continue  # fallbacks run only when needed; wave barriers belong to no host
        entry = per_host.setdefault(step.server or step.target, {"vms": [], "hard": [], "left": [], "host": []})
        if step.action in (Action.SHUTDOWN_GUEST, Action.POWER_ON_VM):
            entry["vms"].append(step.target)
        elif step.action == Action.POWER_OFF_VM:
            entry["hard"].append(step.target)
        elif step.action == Action.LEAVE_RUNNING:
            entry["left"].append(step.target)
        elif step.action != Action.WAIT_TOOLS:  # waiting for Tools is part of starting a VM
            entry["host"].append(in_its_words(HOST_WORDS.get(step.action, step.action), step.server, power_by or {}))
    hosts = tuple(
        HostBrief(name, groups.get(name, ""), tuple(e["vms"]), tuple(e["hard"]), tuple(e["left"]), tuple(dict.fromkeys(e["host"])))
        for name, e in per_host.items()
    )
    by_cluster: dict[str, list[str]] = {}
    for step in plan.steps:
        if step.action in CLUSTER_WORDS:
            by_cluster.setdefault(step.target, []).append(CLUSTER_WORDS[step.action])
    vcenter = None
    if plan.vcenter_host is not None:
        where = plan.vcenter_host
        stops = " then ".join([where.vcenter[0], *(name for name, _ in where.dependencies)])
        vcenter = (
            f"vCenter {where.vcenter[0]} runs on {where.server}: it goes last — once every other host is off, {stops} stop through "
            f"{where.server} itself, which then shuts down (`up` starts them there first)"
        )
    clusters = tuple((c, tuple(w)) for c, w in by_cluster.items())
    return Brief(str(plan.intent), tuple(plan.groups), hosts, clusters, vcenter, counts(plan).vms)


def plan_summary(console: Console, plan: Plan, groups: Mapping[str, str], power_by: Mapping[str, str] | None = None) -> None:
    """The brief on a terminal: per host (per group when the hosts do not fit), the cluster changes, vCenter."""
    b = brief(plan, groups, power_by)
    console.print(
        Text.assemble((f"{b.intent} of {', '.join(b.groups)}", "bold"), f": {count(b.vms, 'VM')} on {count(len(b.hosts), 'host')}")
    )
    vm_word = "VMS TO STOP" if b.intent == "down" else "VMS TO START"
    room = max(5, console.size.height - 10) if console.is_terminal else 10_000
    table = Table(box=None, pad_edge=False, header_style="bold")
    if len(b.hosts) <= room:
        for column in ("HOST", "GROUP", vm_word, "HOST STEPS"):
            table.add_column(column)
        for h in b.hosts:
            table.add_row(h.host, h.group, _vm_cell(h.vms, h.hard, h.left), " → ".join(h.steps) or "-")
    else:
        for column in ("GROUP", "HOSTS", vm_word, "HOST STEPS"):
            table.add_column(column)
        by_group: dict[str, list[HostBrief]] = {}
        for h in b.hosts:
            by_group.setdefault(h.group or "-", []).append(h)
        for group, members in by_group.items():
            merged = [tuple(v for h in members for v in getattr(h, k)) for k in ("vms", "hard", "left")]
            steps = " → ".join(dict.fromkeys(w for h in members for w in h.steps)) or "-"
            table.add_row(group, str(len(members)), _vm_cell(*merged), steps)
    console.print(table)
    for cluster, words in b.clusters:
        console.print(Text.assemble("cluster ", (cluster, "bold"), ": ", " → ".join(words), b.cluster_note))
    if b.vcenter is not None:
        console.print(b.vcenter, markup=False, highlight=False)


def _vm_cell(vms: Sequence[str], hard: Sequence[str], left: Sequence[str]) -> Text:
    text = Text(str(len(vms) + len(hard) + len(left)))
    if hard:
        text.append(f" ({len(hard)} hard power-off)", style="yellow")
    if left:
        text.append(f" ({len(left)} without Tools stay on)", style="red")
    return text


def hosts_up(plan: Plan, ok: Sequence[StepResult]) -> set[str]:
    """The servers each of whose own steps (not its VMs', not a fallback) is done: not one that failed, nor one an
    interruption left unrun (an interrupted up claims no host it did not bring back). A server the plan has only
    VM steps for was up already when it was planned."""
    achieved = {(str(r.action), r.target) for r in ok}
    needed: dict[str, set[tuple[str, str]]] = {s.server: set() for s in plan.steps if s.server}
    for s in plan.steps:
        if s.server and s.action not in VM_ACTIONS and not s.fallback_of:
            needed[s.server].add((str(s.action), s.target))
    return {server for server, steps in needed.items() if steps <= achieved}


UNKNOWN = "state is unknown"  # what a step says when its object could not be read: listed apart, never "left running"


def final_summary(
    console: Console,
    plan: Plan,
    results: Sequence[StepResult],
    run_id: str | None,
    seconds: float,
    interrupted: bool,
    retry: str,
) -> None:
    """What was done, what failed and why, what was left running, and the command to retry or finish."""
    ok = [r for r in results if r.ok]
    failed = [r for r in results if r.status.is_failure]
    vm_done = {r.target for r in ok if r.action in VM_ACTIONS}
    c = counts(plan)
    intent = str(plan.intent)
    if intent == "down":
        hosts_done = {r.target for r in ok if r.action == Action.CONFIRM_OFF}
        done = f"{len(vm_done)} of {c.vms} VMs stopped, {len(hosts_done)} of {c.hosts} hosts off (BMC)"
    else:  # a host is up when each of its own planned steps is done (its VMs' are counted apart)
        hosts_done = hosts_up(plan, ok)
        done = f"{len(hosts_done)} of {c.hosts} hosts up, {len(vm_done)} of {c.vms} VMs started"
    head = f"{intent} of {', '.join(plan.groups)}"
    if interrupted:
        console.print(Text.assemble((f"{head}: interrupted after {clock(seconds)}", "bold yellow"), f" — {done}"))
        console.print(f"  the run is journaled as interrupted (run {run_id}); to finish it: {retry}", markup=False, highlight=False)
        return
    style = "bold green" if not failed else "bold red"
    verdict = "done" if not failed else f"{len(failed)} steps not done"
    console.print(Text.assemble((f"{head}: {verdict} in {clock(seconds)}", style), f" — {done}"))
    for r in failed[:20]:
        line = f"  {r.status}: {r.action} {r.target}: {r.detail}"
        console.print(line, markup=False, highlight=False)
    if len(failed) > 20:
        console.print(f"  … and {len(failed) - 20} more", markup=False)
    unknown = sorted({r.target for r in failed if UNKNOWN in r.detail})  # an API or a BMC that did not answer: not a guess
    if unknown:
        console.print(f"  state unknown: {', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''}", markup=False, highlight=False)
    if intent == "down":
        left_vms = sorted({r.target for r in failed if r.action in VM_ACTIONS} - set(unknown))
        left_hosts = sorted({s.server for s in plan.steps if s.server} - hosts_done - set(unknown))
        if left_hosts or left_vms:
            listed = ", ".join(left_hosts + left_vms[:10]) + (f" (+{len(left_vms) - 10} VMs)" if len(left_vms) > 10 else "")
            console.print(f"  left running: {listed}", markup=False, highlight=False)
    if run_id:
        console.print(f"  steps: labswitch history {run_id}", markup=False, highlight=False)
    if failed:
        console.print(f"  to retry: {retry}", markup=False, highlight=False)
