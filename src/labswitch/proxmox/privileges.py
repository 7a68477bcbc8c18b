"""What a run needs of the Proxmox VE user or API token, checked before anything changes.

Each step kind declares the privileges the API checks for it (plan.actions: ``Spec.pve``, from each call's
``permissions`` in pve-manager, qemu-server, pve-container and pve-ha-manager). The user's or token's effective
privileges come from ``GET /access/permissions`` (pve-access-control: path -> privilege -> propagate); an API
token with privilege separation (the GUI's default) holds only what its own ACLs grant, however much its user may.
A privilege at a path holds there, or from the nearest listed path above it when it propagates."""

from __future__ import annotations

from collections.abc import Mapping

from labswitch.plan import REGISTRY, Plan

Permissions = Mapping[str, Mapping[str, int]]  # path -> privilege -> propagate (1) or not (0)
READS = (("/", "Sys.Audit", "read the cluster's status"), ("/vms", "VM.Audit", "see every guest"))  # any run, any status


def held(perms: Permissions, path: str, privilege: str) -> bool:
    p = path
    while True:
        if p in perms:
            privs = perms[p]
            return privilege in privs and (p == path or bool(privs[privilege]))
        if p == "/":
            return False
        p = p.rsplit("/", 1)[0] or "/"


def needed(plan: Plan) -> dict[tuple[str, str], list[str]]:
    """(path, privilege) -> what needs it ("shutdown-guest db"), for every step of the plan and the reads of any run."""
    out: dict[tuple[str, str], list[str]] = {(path, priv): [what] for path, priv, what in READS}
    for step in plan.steps:
        kind, _, key = (step.moid or "").partition("/")
        for template, priv in REGISTRY[step.action].pve:
            path = template.format(vmid=key, node=key if kind == "node" else "")
            out.setdefault((path, priv), []).append(f"{step.action} {step.target}")
    return out


def refusals(perms: Permissions, plan: Plan, who: str) -> list[str]:
    """One line naming every privilege the plan needs and ``who`` lacks, where and for what, and how to grant them."""
    missing: dict[str, list[tuple[str, list[str]]]] = {}
    for (path, priv), users in needed(plan).items():
        if not held(perms, path, priv):
            missing.setdefault(priv, []).append((path, users))
    if not missing:
        return []
    parts = []
    for priv, places in sorted(missing.items()):
        paths = sorted({p for p, _ in places})
        what = sorted({u for _, users in places for u in users})
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        said = ", ".join(what[:2]) + (f" and {len(what) - 2} more" if len(what) > 2 else "")
        parts.append(f"{priv} on {shown} ({said})")
    return [
        f"the Proxmox VE {who} lacks {'; '.join(parts)}: nothing changed; grant {'it' if len(parts) == 1 else 'them'} on / "
        "(docs/proxmox.md: a least-privilege token and its pveum commands)"
    ]


def blind_note(perms: Permissions, who: str, seen: int) -> str | None:
    """Said by status: guests the user or token may not audit are not listed by the API at all."""
    if held(perms, "/vms", "VM.Audit"):
        return None
    return (
        f"the Proxmox VE {who} lacks VM.Audit on /vms: the API lists no guest it may not audit ({seen} seen); "
        "grant VM.Audit on / or /vms (docs/proxmox.md)"
    )
