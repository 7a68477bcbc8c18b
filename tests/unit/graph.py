"""Reading a plan's graph in tests: what a step waits for, directly or through others (after and settled alike)."""

from __future__ import annotations

from labswitch.plan import Plan


def waits_for(plan: Plan, later: str, earlier: str) -> bool:
    """Whether the step ``later`` (an id) cannot start before ``earlier`` has ended, through any chain of edges."""
    by_id = {s.id: s for s in plan.steps}
    seen: set[str] = set()
    todo = [later]
    while todo:
        step = by_id[todo.pop()]
        for dep in (*step.after, *step.settled):
            if dep == earlier:
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False
