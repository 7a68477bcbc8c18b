"""Shutdown order as edges of the graph (PURE), not as the order requests happen to be sent in.

Proxmox VE's stopall (pve-manager PVE/API2/Nodes.pm, ``stopall``) shuts the guests of a node down order group by
order group, the highest ``startup: order`` first and the guests without an order before every ordered one, and asks
a group only once every shutdown task of the group before it has ended. labswitch keeps that rule across every node
and host of a run (a database on one node, its application on another) and for vSphere's start-up waves alike: a
group's shutdowns settle on a barrier that settles on every shutdown of the group before it, stopped, stopped hard
by its fallback, or given up after its timeout (left on, said in the run). One barrier per group keeps the graph
linear in the number of guests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from labswitch.plan.model import Action, Step

PHASE = "guest-shutdown"
LABSWITCH = "labswitch"  # a barrier's endpoint: labswitch keeps it itself, no API is called


def in_groups(groups: Sequence[tuple[str, Sequence[Step]]]) -> list[Step]:
    """``groups``: (its name, its shutdown steps and their fallbacks), in the order they stop. The steps come back
    with each group after the previous one's barrier ("order 3 ended": every shutdown of that group ended)."""
    out: list[Step] = []
    barrier: tuple[str, ...] = ()
    live = [(name, steps) for name, steps in groups if steps]
    for n, (name, steps) in enumerate(live):
        out += [s if s.fallback_of else _settled_on(s, barrier) for s in steps]
        if n < len(live) - 1:  # the last group is waited for by its nodes' shutdowns, not by a barrier
            ended = tuple(s.id for s in steps if not s.fallback_of)
            gate = Step(PHASE, Action.SHUTDOWN_ORDER_ENDED, name, None, None, settled=ended, endpoint=LABSWITCH)
            out.append(gate)
            barrier = (gate.id,)
    return out


def _settled_on(step: Step, barrier: tuple[str, ...]) -> Step:
    return step if not barrier else replace(step, settled=(*step.settled, *barrier))
