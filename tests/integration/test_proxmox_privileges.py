"""The privileges Proxmox VE really checks (labsim --pve-token-acl: an API token with privilege separation, the GUI's
default, and exactly those ACLs; pve_perms.go lists the calls' checks from PVE's source). A token short of one is
refused before anything changes, each missing privilege named; the least-privilege set of docs/proxmox.md runs a
whole cycle. Effects read back as root@pam through the API and labsim's own account."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_proxmox import FAST, MANAGED, NODES, labswitch
from tests.pvesim import PveLab

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]
OLD_DOCS = "VM.PowerMgmt,Sys.PowerMgmt,Sys.Modify,Sys.Audit"  # what docs/proxmox.md said before: not enough
LEAST = "VM.Audit,VM.PowerMgmt,Sys.Audit,Sys.PowerMgmt,Sys.Modify,Sys.Console"  # docs/proxmox.md's least-privilege token


def least_privileges_in_docs() -> set[str]:
    text = (Path(__file__).parents[2] / "docs" / "proxmox.md").read_text()
    role = re.search(r'pveum role add \S+ --privs "([^"]+)"', text)
    assert role, "docs/proxmox.md gives the pveum command for the role"
    return set(role.group(1).split(","))


def test_a_token_with_the_old_documented_privileges_is_refused_before_anything_changes(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path
) -> None:
    lab = pve_factory(*FAST, "--pve-ceph", "--pve-ha", "--pve-auth", "token", "--pve-token-acl", OLD_DOCS)
    before = lab.state()
    status = labswitch(cli, lab, state_dir, "status")
    assert "lacks VM.Audit on /vms" in status.stdout + status.stderr, status.stdout + status.stderr
    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 3, (down.code, down.stderr)
    refusal = [line for line in down.stderr.splitlines() if "lacks" in line and "error" in line]
    assert len(refusal) == 1, down.stderr
    assert "Sys.Console on /" in refusal[0] and "VM.Audit on /vms" in refusal[0] and "nothing changed" in refusal[0], refusal
    assert "Sys.PowerMgmt on" not in refusal[0] and "Sys.Modify on" not in refusal[0], "only what is missing is named"
    after = lab.state()
    assert after["ha"] == before["ha"] and after["ceph_flags"] == before["ceph_flags"], "HA and Ceph untouched"
    assert {g["status"] for g in after["guests"].values()} == {g["status"] for g in before["guests"].values()}
    assert all(lab.bmc_power(n) == "On" for n in NODES)


def test_the_least_privilege_token_of_the_docs_runs_a_whole_cycle(cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path) -> None:
    assert least_privileges_in_docs() == set(LEAST.split(","))
    lab = pve_factory(*FAST, "--pve-ceph", "--pve-ha", "--pve-auth", "token", "--pve-token-acl", LEAST)
    ha_before = lab.ha()
    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 0, down.stderr
    assert all(lab.bmc_power(n) == "Off" for n in NODES) and set(lab.state()["ceph_flags"]) >= MANAGED
    up = labswitch(cli, lab, state_dir, "up", "--yes")
    assert up.code == 0, up.stderr
    wait_until(lambda: lab.ha() == ha_before, 10, "HA's states back")
    assert not MANAGED & set(lab.state()["ceph_flags"])
