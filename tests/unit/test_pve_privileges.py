"""Proxmox VE privileges (pure): what a plan needs, read from the action registry, and whether effective permissions
(GET /access/permissions: path -> privilege -> propagate) hold it, as pve-access-control resolves a path."""

from __future__ import annotations

from labswitch.plan import Action
from labswitch.plan.actions import REGISTRY
from labswitch.proxmox.privileges import held, needed, refusals
from tests.unit.test_plan_proxmox import down


def test_a_privilege_holds_at_its_path_or_from_the_nearest_listed_path_above_when_it_propagates() -> None:
    perms = {"/": {"Sys.Audit": 1}, "/vms": {"VM.Audit": 1, "VM.PowerMgmt": 0}, "/vms/100": {"VM.Audit": 1}}
    assert held(perms, "/nodes/pve1", "Sys.Audit")
    assert held(perms, "/vms/101", "VM.Audit") and not held(perms, "/vms/101", "VM.PowerMgmt"), "not propagated"
    assert held(perms, "/vms", "VM.PowerMgmt"), "at the path itself"
    assert not held(perms, "/vms/100", "VM.PowerMgmt"), "the nearest listed path decides"
    assert not held({}, "/", "Sys.Audit")


def test_a_down_needs_what_each_of_its_steps_declares_and_a_short_token_is_one_line() -> None:
    plan = down()
    need = needed(plan)
    assert ("/", "Sys.Console") in need and ("/", "Sys.Modify") in need, "HA and Ceph"
    assert ("/vms/101", "VM.PowerMgmt") in need and ("/nodes/pve1", "Sys.PowerMgmt") in need
    assert ("/vms", "VM.Audit") in need, "any run must see every guest"
    every = {"/": dict.fromkeys(["Sys.Audit", "Sys.Console", "Sys.Modify", "Sys.PowerMgmt", "VM.Audit", "VM.PowerMgmt"], 1)}
    assert refusals(every, plan, "API token t") == []
    short = {"/": dict.fromkeys(["Sys.Audit", "Sys.Modify", "Sys.PowerMgmt", "VM.PowerMgmt"], 1)}
    (line,) = refusals(short, plan, "API token t")
    assert "Sys.Console on /" in line and "VM.Audit on /vms" in line and "Sys.Modify on" not in line


def test_every_proxmox_step_that_calls_the_api_declares_its_privileges() -> None:
    through_api = {
        Action.SHUTDOWN_GUEST,
        Action.POWER_OFF_VM,
        Action.POWER_ON_VM,
        Action.SHUTDOWN_HOST,
        Action.WAIT_CONNECTED,
        Action.PVE_HA_IGNORE,
        Action.PVE_HA_RESTORE,
        Action.CEPH_FLAGS_SET,
        Action.CEPH_FLAGS_CLEAR,
        Action.CEPH_READY,
    }
    assert all(REGISTRY[a].pve for a in through_api), [a for a in through_api if not REGISTRY[a].pve]
