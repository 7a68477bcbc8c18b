"""labsim --proxmox follows Proxmox VE where labswitch depends on it, each behaviour checked against the API directly
(requests, never labswitch) and cited from Proxmox's source: stopall's order groups (pve-manager Nodes.pm), 595 for a
request proxied to an offline node (pve-http-server), an HA-managed guest's shutdown task ending OK at once while HA
stops the guest later (qemu-server hands it to ha-manager), each node's own certificate signed by the cluster CA
(pve-cluster), and an offline node's guests losing their names in /cluster/resources (pmxcfs; scaled down here by
--pve-name-loss). Where labsim simplifies, pve_lab.go and tests/pvesim.py say so."""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import Result, wait_until
from tests.integration.test_proxmox import FAST, labswitch
from tests.pvesim import PveLab

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]


def test_stopall_takes_order_groups_highest_first_each_after_the_one_before(pve_factory: Callable[..., PveLab]) -> None:
    lab = pve_factory(*FAST[:4], "--guest-shutdown-delay", "500ms", "--pve-guests", "3", "--pve-lxc-every", "0")
    guests = lab.state()["guests"]
    for name, order in (("pve1-vm01", "order=2"), ("pve1-vm02", "order=1"), ("pve1-vm03", "order=2")):
        lab.api("PUT", f"/nodes/pve1/qemu/{guests[name]['vmid']}/config", startup=order)
    lab.api("POST", "/nodes/pve1/stopall")
    wait_until(lambda: all(lab.state()["guests"][f"pve1-vm0{i}"]["status"] == "stopped" for i in (1, 2, 3)), 10, "stopall done")
    after = lab.state()["guests"]
    assert after["pve1-vm02"]["asked"] >= max(after["pve1-vm01"]["stopped"], after["pve1-vm03"]["stopped"]), after


def test_an_offline_node_answers_595_and_an_ha_guests_shutdown_task_ends_at_once(pve_factory: Callable[..., PveLab]) -> None:
    lab = pve_factory(*FAST, "--pve-ha")
    ha_guest = lab.state()["guests"]["pve1-vm01"]
    upid = lab.api("POST", f"/nodes/pve1/qemu/{ha_guest['vmid']}/status/shutdown")
    status = lab.api("GET", f"/nodes/pve1/tasks/{upid}/status")
    assert status["status"] == "stopped" and status["exitstatus"] == "OK", status
    assert lab.state()["guests"]["pve1-vm01"]["status"] == "running", "HA stops it on its next round, not the task"
    wait_until(lambda: lab.state()["guests"]["pve1-vm01"]["status"] == "stopped", 5, "HA stopped it")
    lab.api("POST", "/nodes/pve3/status", command="shutdown")
    wait_until(lambda: lab.bmc_power("pve3") == "Off", 10, "pve3 off")
    with pytest.raises(requests.HTTPError) as refused:
        lab.api("GET", "/nodes/pve3/status")
    assert refused.value.response.status_code == 595


def test_every_node_has_its_own_certificate_signed_by_the_cluster_ca(pve_factory: Callable[..., PveLab]) -> None:
    lab = pve_factory(*FAST)
    ca = lab.config.parent / "pve-root-ca.pem"
    given = {n["node"]: n["ssl_fingerprint"].replace(":", "").lower() for n in lab.api("GET", "/nodes")}
    seen = {}
    for name, (url, _) in lab.nodes.items():
        parts = urlsplit(url)
        context = ssl.create_default_context(cafile=str(ca))  # verified by the cluster CA, hostname and all
        with (
            socket.create_connection((parts.hostname, parts.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            seen[name] = hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
    assert seen == given and len(set(seen.values())) == len(seen), "each node its own, as GET /nodes gives it"


def test_an_off_nodes_guests_lose_their_names_and_status_names_them_from_the_journal(
    cli: Run, pve_factory: Callable[..., PveLab], state_dir: Path
) -> None:
    lab = pve_factory(*FAST, "--pve-name-loss", "1s", "--pve-nodes", "5", "--pve-mgmt-nodes", "3")  # pve4, pve5 go down
    down = labswitch(cli, lab, state_dir, "down", "--yes")
    assert down.code == 0, down.stderr

    def unnamed() -> list[dict[str, object]]:
        return [g for g in lab.api("GET", "/cluster/resources", type="vm") if g["node"] in ("pve4", "pve5") and "name" not in g]

    wait_until(lambda: len(unnamed()) == 6, 10, "the off nodes' guests without their names (--pve-name-loss 1s)")
    status = labswitch(cli, lab, state_dir, "status", "--json")
    assert status.code == 0, status.stderr
    names = {v["name"] for v in status.json()["vms"]}
    assert {"pve4-vm01", "pve5-vm01"} <= names and not any(n.startswith(("qemu/", "lxc/")) for n in names), names
