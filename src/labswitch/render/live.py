"""Live progress of a run: one row per host (or per group when they do not fit), clocks that tick.

``RunView`` is the state, fed by the runner's events and read at any moment (pure: no terminal);
``LiveProgress`` draws it with Rich on a terminal, or prints plain timestamped lines elsewhere.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from labswitch.config import Plug, Server
from labswitch.plan import REGISTRY, VM_ACTIONS, Action, Plan, Step, direct
from labswitch.run import StepResult
from labswitch.words import count

DOING: dict[str, str] = {a: s.doing for a, s in REGISTRY.items()}  # what a host is doing while its first unfinished step runs
HOST_OFF_ACTIONS = {Action.SHUTDOWN_HOST, Action.BMC_GRACEFUL_SHUTDOWN}
VM_DOING: dict[str, str] = {a: s.doing_vm for a, s in REGISTRY.items() if s.doing_vm}  # the slowest VM, by name


def power_by(servers: Iterable[Server]) -> dict[str, str]:
    """Servers whose power no BMC tells: what does (a plug; Wake-on-LAN: its host no longer answering)."""
    out = {}
    for server in servers:
        if server.bmc.driver == "wol":
            out[server.name] = "host unreachable"
        elif isinstance(server.bmc, Plug):
            out[server.name] = "plug"
    return out


def in_its_words(text: str, server: str, power_by: Mapping[str, str]) -> str:
    """ "(BMC)" where the server has one; its plug, or its host not answering (Wake-on-LAN), where not."""
    word = power_by.get(server)
    return text.replace("(BMC)", f"({word})") if word else text


def clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


@dataclass
class HostRow:
    server: str
    group: str
    state: str
    vms_done: int
    vms_total: int
    elapsed: float
    note: str = ""
    finished: bool = False
    failed: bool = False
    alarm: bool = False  # the note is a failure (else a warning such as a slow step)


@dataclass
class _Host:
    steps: list[Step] = field(default_factory=list)
    done: set[int] = field(default_factory=set)  # indexes into steps
    started_at: float | None = None
    finished_at: float | None = None
    failures: list[str] = field(default_factory=list)
    confirmed_off: bool | None = None  # down: the BMC's confirm-off result
    skipped: bool = False


class RunView:
    """What every host is doing, from the plan and the runner's events; ``rows(now)`` at any moment.
    ``feed`` takes the runner's events as they come (the CLI's live table and the service's page both use it)."""

    def __init__(
        self,
        groups: Mapping[str, str],
        slow_after: Mapping[Action, float],
        clock_fn: Callable[[], float] = time.monotonic,
        power_by: Mapping[str, str] | None = None,
    ) -> None:
        self.groups = groups  # server -> group
        self.power_by = power_by or {}  # server -> what tells its power when it is no BMC ("plug", "host unreachable")
        self.slow_after = slow_after  # action -> seconds after which a step counts as slow
        self.now = clock_fn
        self.plan: Plan | None = None
        self.hosts: dict[str, _Host] = {}
        self.started_at = self.now()
        self.finished_at: float | None = None
        self.phase = ""
        self.step_started: dict[tuple[str, str], float] = {}  # (action, target) -> when
        self.shared: dict[str, Step] = {}  # steps of no one host (a cluster's), by id
        self.shared_done: set[str] = set()
        self.vm_steps: dict[str, Step] = {}  # every VM step of the plan, by id
        self.done_ids: set[str] = set()  # the steps of hosts that are done, by id
        self.interrupting = False

    # -- events --------------------------------------------------------------------
    def feed(self, kind: str, data: Any) -> None:
        """One runner event: "plan", "phase", "start" or "step" (others are not the view's)."""
        if kind == "plan":
            self.begin(data)
        elif kind == "phase":
            self.on_phase(str(data))
        elif kind == "start":
            self.on_start(data)
        elif kind == "step":
            self.on_result(data)

    def begin(self, plan: Plan) -> None:
        """A run's plan; a second one continues the same run (a whole-lab up: vCenter's side after the host's)."""
        if self.plan is None:
            self.plan = plan
            self.started_at = self.now()
        else:
            self.plan = replace(self.plan, steps=self.plan.steps + plan.steps)
        for step in plan.steps:  # each host's own chain; fallbacks show only when they run
            if step.action in VM_ACTIONS:
                self.vm_steps[step.id] = step
            if step.server and not step.fallback_of:
                host = self.hosts.setdefault(step.server, _Host())
                host.steps.append(step)
                host.finished_at = None
            elif not step.server:
                self.shared[step.id] = step

    def on_phase(self, name: str) -> None:
        """A phase's first step started somewhere (each host's own steps say when they start)."""
        self.phase = name

    def on_start(self, step: Step) -> None:
        at = self.now()
        self.step_started.setdefault((step.action, step.target), at)
        host = self.hosts.get(step.server or "")
        if host is not None:
            host.started_at = host.started_at or at

    def on_result(self, result: StepResult) -> None:
        self.shared_done |= {i for i, s in self.shared.items() if s.action == result.action and s.target == result.target}
        if result.server not in self.hosts:
            return  # a wave's barrier, or a host outside the plan
        host = self.hosts[result.server]
        host.started_at = host.started_at or self.now()
        if result.action == Action.CONFIRM_OFF:
            host.confirmed_off = result.status == "ok"
        for i, step in enumerate(host.steps):
            if i not in host.done and step.action == result.action and step.target == result.target:
                host.done.add(i)
                self.done_ids.add(step.id)
                break
        if result.status == "skipped":
            host.skipped = True
        if result.status == "failed":
            host.failures.append(f"{result.action} {result.target}: {result.detail}")
        if self._host_finished(host):
            host.finished_at = host.finished_at or self.now()

    def finish(self) -> None:
        self.finished_at = self.now()

    # -- reading -------------------------------------------------------------------
    def elapsed(self) -> float:
        return (self.finished_at or self.now()) - self.started_at

    def rows(self) -> list[HostRow]:
        return [self._row(name, host) for name, host in self.hosts.items()]

    def counts(self) -> tuple[int, int]:
        """(VM steps done, VM steps planned) over the run."""
        done = total = 0
        for host in self.hosts.values():
            vm = [i for i, s in enumerate(host.steps) if s.action in VM_ACTIONS]
            total += len(vm)
            done += len([i for i in vm if i in host.done])
        return done, total

    def slow(self) -> list[str]:
        """Steps under way for longer than half their timeout: the targets to name."""
        now = self.now()
        out = []
        for host in self.hosts.values():
            for i, step in enumerate(host.steps):
                limit = self.slow_after.get(step.action)
                since = self.step_started.get((step.action, step.target))
                if i not in host.done and limit and since is not None and now - since > limit:
                    out.append(step.target)
        return out

    def _host_finished(self, host: _Host) -> bool:
        if len(host.done) < len(host.steps) and not host.skipped:
            return False
        waits_for_bmc = any(s.action in HOST_OFF_ACTIONS for s in host.steps) and host.confirmed_off is None
        return host.skipped or not waits_for_bmc  # a host shut down is done once the BMC confirms it off

    def _row(self, name: str, host: _Host) -> HostRow:
        vm_steps = [i for i, s in enumerate(host.steps) if s.action in VM_ACTIONS]
        vms_done = len([i for i in vm_steps if i in host.done])
        end = host.finished_at or self.finished_at or self.now()
        elapsed = end - (host.started_at if host.started_at is not None else self.started_at)  # a waiting host's clock ticks
        note = host.failures[0] if host.failures else ""
        slow = [t for t in self.slow() if any(s.target == t for s in host.steps)]
        if slow and not note:
            note = "slow: " + ", ".join(slow[:3]) + (f" (+{len(slow) - 3})" if len(slow) > 3 else "")
        row = HostRow(name, self.groups.get(name, ""), "", vms_done, len(vm_steps), elapsed, note, alarm=bool(host.failures))
        if self._host_finished(host):
            row.finished = True
            row.failed = bool(host.failures) or host.skipped or host.confirmed_off is False
            row.state = self._final_state(host, row.failed)
            return self._in_its_words(row)
        pending = next((s for i, s in enumerate(host.steps) if i not in host.done), None)
        if self.finished_at is not None:  # the run ended (interrupted) before this host was through
            row.state = "not finished" + (f" ({DOING.get(pending.action, pending.action)})" if pending else "")
        elif pending is None:  # every planned step done; the BMC is still to confirm it off
            row.state = "waiting for off (BMC)"
        elif pending.action in VM_DOING and (vm := self._slowest([s for i, s in enumerate(host.steps) if i not in host.done])):
            row.state = vm + (" (host directly)" if direct(pending.endpoint) else "")
        elif (pending.action, pending.target) in self.step_started:
            row.state = DOING.get(pending.action, pending.action) + (" (host directly)" if direct(pending.endpoint) else "")
        elif direct(pending.endpoint) and pending.settled:
            row.state = "waiting: vCenter's host goes last"
        else:
            row.state = self._waiting_for(pending) or "waiting"
        return self._in_its_words(row)

    def _in_its_words(self, row: HostRow) -> HostRow:
        row.state = in_its_words(row.state, row.server, self.power_by)
        return row

    def _slowest(self, steps: list[Step]) -> str | None:
        """The VM step under way longest among ``steps``: "esx11-vm03: shutting down 00:45 (+2)"."""
        running = [
            (self.step_started[(s.action, s.target)], s)
            for s in steps
            if s.action in VM_DOING and (s.action, s.target) in self.step_started
        ]
        if not running:
            return None
        since, step = min(running, key=lambda r: r[0])
        more = f" (+{len(running) - 1})" if len(running) > 1 else ""
        return f"{step.target}: {VM_DOING[step.action]} {clock(self.now() - since)}{more}"

    def _waiting_for(self, step: Step) -> str | None:
        """What a host's next step waits for that is not its own: a cluster step under way (with its time), or
        one still to come and what it waits for (the slowest VM of the cluster): "vSAN cluster power-off (Cluster1)
        after esx11-vm03: shutting down 00:45"."""
        for dep in (*step.after, *step.settled):
            shared = self.shared.get(dep)
            if shared is None or dep in self.shared_done:
                continue
            label = f"{DOING.get(shared.action, shared.action)} ({shared.target})"
            if (since := self.step_started.get((shared.action, shared.target))) is not None:
                return f"{label} {clock(self.now() - since)}"
            if (deeper := self._waiting_for(shared)) is not None:
                return deeper
            vms = [self.vm_steps[d] for d in shared.after if d in self.vm_steps and d not in self.done_ids]
            slowest = self._slowest(vms)
            return f"waiting: {label} after " + (slowest or f"{len(vms)} VM(s)") if vms else f"waiting: {label}"
        return None

    def lab_wide(self) -> str | None:
        """A step of no host under way that holds the whole run (vCenter starting), with its time so far."""
        for step_id, step in self.shared.items():
            since = self.step_started.get((step.action, step.target))
            if step.action == Action.WAIT_VCENTER and since is not None and step_id not in self.shared_done:
                return f"vCenter is starting: waiting for its SOAP and REST APIs to answer ({clock(self.now() - since)})"
        return None

    def _final_state(self, host: _Host, failed: bool) -> str:
        intent = str(self.plan.intent) if self.plan else ""
        if host.confirmed_off:
            return "off (BMC)"
        if failed:
            return "left on" if intent == "down" else "failed"
        return {"down": "off", "up": "up", "reboot": "rebooted"}.get(intent, "done")


class LiveProgress:
    """The run's EventSink for the CLI: a live table on a terminal, timestamped lines elsewhere."""

    def __init__(self, console: Console, view: RunView, live: bool | None = None) -> None:
        self.console = console
        self.view = view
        self.live_mode = console.is_terminal if live is None else live
        self._live: Live | None = None
        self._lock = threading.RLock()  # events come from the run's workers; Rich draws from its own thread

    def __call__(self, kind: str, data: Any) -> None:
        with self._lock:
            self._on_event(kind, data)

    def _on_event(self, kind: str, data: Any) -> None:
        self.view.feed(kind, data)
        if kind == "plan":
            if self.live_mode and self._live is None:
                self._live = Live(_Renderable(self), console=self.console, refresh_per_second=4, transient=False)
                self._live.start()
        elif kind == "phase":
            if not self.live_mode:
                self._line(str(data))
        elif kind == "step":
            if not self.live_mode:
                self._line(f"{data.status:8} {data.action} {data.target}: {data.detail}")
        elif kind == "note":
            self.console.print(Text.assemble(("note: ", "yellow"), str(data)))

    def interrupting(self) -> None:
        self.view.interrupting = True
        if not self.live_mode:
            self._line("stopping: no new work is started; calls under way finish (Ctrl-C again to exit at once)")

    def stop(self) -> None:
        self.view.finish()
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def _line(self, text: str) -> None:
        """Off a terminal: plain text straight to the stream (Rich's rendering cost a run of 1,000 VMs half a second)."""
        self.console.file.write(f"[{clock(self.view.elapsed())}] {text}\n")
        self.console.file.flush()

    # -- drawing -------------------------------------------------------------------
    def render(self) -> RenderableType:
        with self._lock:
            return self._render()

    def _render(self) -> RenderableType:
        view = self.view
        plan = view.plan
        rows = view.rows()
        done, total = view.counts()
        finished = sum(1 for r in rows if r.finished)
        title = Text.assemble(
            (f"{plan.intent if plan else ''} of {', '.join(plan.groups) if plan else ''}", "bold"),
            f"  {count(len(rows), 'host')} · {count(total, 'VM')} · ",
            (clock(view.elapsed()), "bold cyan"),
            f"  {finished}/{len(rows)} hosts done",
        )
        parts: list[RenderableType] = [title]
        room = max(3, self.console.size.height - 6)
        if len(rows) <= room:
            parts.append(self._host_table(rows))
        else:
            parts.append(self._group_table(rows, room))
        if (waiting := view.lab_wide()) is not None and view.finished_at is None:
            parts.append(Text(waiting, style="cyan"))
        slow = view.slow()
        if slow and len(rows) > room:
            parts.append(Text(f"slow: {', '.join(slow[:5])}" + (f" (+{len(slow) - 5})" if len(slow) > 5 else ""), style="yellow"))
        footer = (
            Text(f"VMs {done}/{total} · " + ("interrupted" if view.interrupting else "finished"), style="dim")
            if view.finished_at is not None
            else Text(
                "stopping: calls under way finish, then the run is journaled as interrupted; Ctrl-C again exits now", style="bold yellow"
            )
            if view.interrupting
            else Text(f"VMs {done}/{total} · Ctrl-C stops after the calls under way (the same command finishes the run)", style="dim")
        )
        parts.append(footer)
        return Group(*parts)

    def _host_table(self, rows: list[HostRow]) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
        for column in ("HOST", "GROUP", "STATE", "VMS", "", "TIME", "NOTE"):
            table.add_column(column, no_wrap=column != "NOTE", overflow="ellipsis")
        for r in rows:
            table.add_row(
                r.server,
                r.group,
                Text(r.state, style=_style(r)),
                ProgressBar(total=max(r.vms_total, 1), completed=r.vms_done if r.vms_total else 1, width=12),
                f"{r.vms_done}/{r.vms_total}",
                clock(r.elapsed),
                Text(r.note, style="red" if r.alarm else "yellow"),
            )
        return table

    def _group_table(self, rows: list[HostRow], room: int) -> Table:
        """A row per group for labs taller than the terminal: its hosts' states by kind (a VM's name and the clocks
        left out, so ten hosts stopping VMs are "10 shutting down"), wrapped rather than cut at 80 columns."""
        narrow = self.console.size.width < 100
        table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
        table.add_column("GROUP", no_wrap=True, overflow="ellipsis", max_width=16)
        table.add_column("HOSTS", no_wrap=True, justify="right")
        table.add_column("STATES", overflow="fold", ratio=1)
        table.add_column("VMS", no_wrap=True)
        table.add_column("", no_wrap=True)
        by_group: dict[str, list[HostRow]] = {}
        for r in rows:
            by_group.setdefault(r.group or "-", []).append(r)
        for group, members in list(by_group.items())[: max(1, room - 1)]:
            states = Counter(_kind(r.state) for r in members)
            done = sum(r.vms_done for r in members)
            total = sum(r.vms_total for r in members)
            table.add_row(
                group,
                str(len(members)),
                ", ".join(f"{n} {s}" for s, n in states.most_common()),
                ProgressBar(total=max(total, 1), completed=done if total else 1, width=8 if narrow else 16),
                f"{done}/{total}",
            )
        return table


def _kind(state: str) -> str:
    """A host's state without its VM's name and its clock: "esx11-vm03: shutting down 00:45 (+2)" -> "shutting down"."""
    kind = re.sub(r"^\S+: ", "", state)
    return re.sub(r" \d\d:\d\d\b.*$", "", kind)


def _style(row: HostRow) -> str:
    if row.failed:
        return "bold red"
    if row.finished:
        return "green"
    if row.state.startswith("not finished"):
        return "yellow"
    return "dim" if row.state == "waiting" else "cyan"


class _Renderable:
    """Rebuilt on every refresh, so the clocks tick while nothing else happens."""

    def __init__(self, progress: LiveProgress) -> None:
        self.progress = progress

    def __rich__(self) -> RenderableType:
        return self.progress.render()
