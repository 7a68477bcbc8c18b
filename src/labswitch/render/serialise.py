"""One serialiser per result: the same object gives the same JSON in `--json`, the API, `history` and the
Server-Sent Events (tests/integration/test_json_contract.py holds the CLI and the API to it).

Plans, step outcomes (the runner's or the journal's), runs. The status and the energy report keep theirs
beside their use cases (``usecases.status.as_json``, ``usecases.energy.as_json``), used by both adapters too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from labswitch.journal import RunRecord
from labswitch.plan import Plan, Status
from labswitch.render.live import HostRow
from labswitch.render.runs import Brief


class StepOutcome(Protocol):
    """A step's outcome: the runner's StepResult, or the journal's StepRecord."""

    @property
    def phase(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def seconds(self) -> float: ...
    @property
    def server(self) -> str | None: ...


def plan(p: Plan) -> dict[str, Any]:
    """`plan --json`, `down/up --dry-run --json` and GET /api/plan/{intent}: every step with what it waits for."""
    return {
        "intent": str(p.intent),
        "groups": list(p.groups),
        "servers": list(p.servers),
        "steps": [
            {
                "phase": s.phase,
                "action": str(s.action),
                "target": s.target,
                "id": s.id,
                "after": list(s.after),
                "endpoint": s.endpoint,
                "fallback_of": s.fallback_of,
                "settled": list(s.settled),
            }
            for s in p.steps
        ],
        "refusals": list(p.refusals),
        "notes": list(p.notes),
    }


def brief(b: Brief) -> dict[str, Any]:
    """A plan in brief (render.runs.brief): the page's confirmation sheet, GET /api/plan/{intent}'s "brief"."""
    return {
        "intent": b.intent,
        "groups": list(b.groups),
        "vms": b.vms,
        "hosts": [
            {"host": h.host, "group": h.group, "vms": list(h.vms), "hard": list(h.hard), "left": list(h.left), "steps": list(h.steps)}
            for h in b.hosts
        ],
        "clusters": [{"cluster": c, "changes": list(words)} for c, words in b.clusters],
        "cluster_note": b.cluster_note.strip(" ()"),
        "vcenter": b.vcenter,
    }


def step(s: StepOutcome) -> dict[str, Any]:
    """A step's outcome: in a run's JSON, `history RUN --json`, GET /api/runs/{id} and each SSE ``event: step``."""
    return {
        "phase": s.phase,
        "action": str(s.action),
        "target": s.target,
        "status": str(s.status),
        "detail": s.detail,
        "seconds": s.seconds,
        "server": s.server,
    }


def steps(outcomes: Sequence[StepOutcome]) -> list[dict[str, Any]]:
    return [step(s) for s in outcomes]


def host_row(r: HostRow) -> dict[str, Any]:
    """A host's row of a run's live view (the SSE ``event: hosts``, the page's table)."""
    return {
        "server": r.server,
        "group": r.group,
        "state": r.state,
        "vms_done": r.vms_done,
        "vms_total": r.vms_total,
        "seconds": round(r.elapsed, 1),
        "note": r.note,
        "finished": r.finished,
        "failed": r.failed,
    }


def _when(at: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at)) if at is not None else None


def run_summary(record: RunRecord, outcomes: Sequence[StepOutcome]) -> dict[str, Any]:
    """A run in a list (`history --json`, GET /api/runs): its step counts, not its steps."""
    return {
        "run_id": record.id,
        "intent": record.intent,
        "groups": list(record.groups),
        "outcome": record.outcome,
        "reason": record.reason,
        "started": _when(record.started),
        "finished": _when(record.finished),
        "seconds": round(record.finished - record.started, 1) if record.finished else None,
        "steps": len(outcomes),
        "failed_steps": sum(1 for s in outcomes if Status(s.status).is_failure),
        "stopped_in": stopped_in(record, outcomes),
    }


def stopped_in(record: RunRecord, outcomes: Sequence[StepOutcome]) -> str | None:
    """Where an interrupted run stopped: the phase of its last journaled step ("before its first step" without one);
    None for a run that ended otherwise."""
    if record.outcome != "interrupted":
        return None
    if not outcomes:
        return "before its first step"
    last = outcomes[-1]
    return f"{last.phase} (last done: {last.action} {last.target})"


def run(record: RunRecord, outcomes: Sequence[StepOutcome]) -> dict[str, Any]:
    """One run with its steps (`history RUN --json`, GET /api/runs/{id})."""
    return {**run_summary(record, outcomes), "steps": steps(outcomes)}
