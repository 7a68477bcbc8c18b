"""What a vSphere down needs of the vCenter user beyond its role's basics, checked before anything changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from labswitch.plan import Intent, Plan, clusters
from labswitch.snapshot import Snapshot


def refusals(lacking: Callable[[Mapping[str, Iterable[str]]], set[tuple[str, str]]], plan: Plan, snap: Snapshot) -> list[str]:
    """A down whose cluster changes the user may not make: one line per privilege lacking, naming where and what for.
    ``lacking``: the session's own check (a lab of standalone hosts lacks none: their root has them all)."""
    if plan.intent is not Intent.DOWN:
        return []
    needed = clusters.privileges_needed(plan.steps)
    if not needed:
        return []
    out = []
    for entity, priv in sorted(lacking({entity: set(privs) for entity, privs in needed.items()})):
        cluster = snap.cluster(entity)
        where = "vCenter" if entity == "vcenter" else f"cluster {cluster.name if cluster else entity}"
        steps = ", ".join(sorted(needed[entity][priv]))
        out.append(f"the vCenter user lacks privilege {priv} on {where} ({steps}); grant it to the user's role, or leave out the cluster")
    return out
