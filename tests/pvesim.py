"""Start labsim --proxmox (a simulated Proxmox VE cluster) and read its effects back independently: its API with a
plain HTTP client (requests, the API token, labsim's certificate) and each node's BMC through Redfish, never through
labswitch's own code.

What labsim's Proxmox VE simplifies (labsim/pve_lab.go): one vote per node; Ceph is one OSD per node in a pool of
size 3, min_size 2, its placement groups counted as one number; the HA manager applies a resource's requested state
once a second (no fencing, no recovery onto other nodes); nodes do not start their onboot guests by themselves at
boot (a real node's pve-guests may start them before labswitch's up does, which then finds them running); guests
have no guest agent."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.labsim import labsim_binary

RESET = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset"


@dataclass
class PveLab:
    proc: subprocess.Popen[str]
    url: str
    env: dict[str, str]
    config: Path
    cert: Path
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (its API, its BMC)
    control: str = ""  # labsim's own port: the cluster's truth (GET /labsim/pve), its faults
    _cookies: dict[str, str] = field(default_factory=dict)
    _csrf: str = ""

    def state(self) -> dict[str, Any]:
        """What the cluster is, from labsim itself (it answers while every node is off): nodes, guests (and when each
        last started), HA's requested states, Ceph's flags."""
        return dict(requests.get(self.control + "/labsim/pve", verify=str(self.cert), timeout=10).json())

    def api(self, method: str, path: str, **data: Any) -> Any:
        """A call to the cluster's API as root@pam (a ticket: every privilege, whatever --pve-token-acl gives the token;
        any node that answers), its data."""
        last: Exception | None = None
        for url, _ in self.nodes.values():
            try:
                headers, cookies = self._ticket(url) if method != "GET" or not self._cookies else ({}, self._cookies)
                answer = requests.request(
                    method,
                    f"{url}/api2/json{path}",
                    headers=headers,
                    cookies=cookies,
                    params=data if method == "GET" else None,
                    data=data if method != "GET" else None,
                    verify=str(self.cert),
                    timeout=10,
                )
            except requests.ConnectionError as exc:
                last = exc
                continue
            answer.raise_for_status()
            return answer.json()["data"]
        raise RuntimeError(f"no node answers: {last}")

    def _ticket(self, url: str) -> tuple[dict[str, str], dict[str, str]]:
        """root@pam's ticket (cookie) and CSRF token (a write's header), asked for once."""
        if not self._cookies:
            answer = requests.post(
                f"{url}/api2/json/access/ticket",
                data={"username": "root@pam", "password": self.env["LABSIM_PVE_PASSWORD"]},
                verify=str(self.cert),
                timeout=10,
            )
            answer.raise_for_status()
            data = answer.json()["data"]
            self._cookies = {"PVEAuthCookie": data["ticket"]}
            self._csrf = data["CSRFPreventionToken"]
        return {"CSRFPreventionToken": self._csrf}, self._cookies

    def fault(self, kind: str, name: str, mode: str) -> dict[str, str]:
        """Switch a fault at run time (labsim/faults.go): a node's API "hang" or "eof" (api=NODE or all), a node
        "stuck" (boots, never rejoins), a guest "ignore-shutdown", Ceph "stuck" (peering), a BMC "hang"/"error"."""
        answer = requests.post(self.control + "/labsim/faults", params={kind: name, "mode": mode}, verify=str(self.cert), timeout=10)
        answer.raise_for_status()
        return dict(answer.json())

    def guests(self) -> dict[str, dict[str, Any]]:
        """name -> its /cluster/resources entry."""
        return {g["name"]: g for g in self.api("GET", "/cluster/resources", type="vm")}

    def ha(self) -> dict[str, str]:
        return {r["sid"]: r["state"] for r in self.api("GET", "/cluster/ha/resources")}

    def ceph_flags(self) -> set[str]:
        return {f["name"] for f in self.api("GET", "/cluster/ceph/flags") if f["value"]}

    def bmc_power(self, node: str) -> str:
        answer = requests.get(
            self.nodes[node][1] + "/redfish/v1/Systems/System.Embedded.1",
            auth=("root", self.env["LABSIM_BMC_PASSWORD"]),
            verify=str(self.cert),
            timeout=10,
        )
        return str(answer.json()["PowerState"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start(directory: Path, *flags: str) -> PveLab:
    directory.mkdir(parents=True, exist_ok=True)
    config, secrets, cert = directory / "pve.toml", directory / "pve.env", directory / "cert.pem"
    argv = [str(labsim_binary()), "--proxmox", "--write-config", str(config), "--secrets-file", str(secrets), "--cert-out", str(cert)]
    proc = subprocess.Popen([*argv, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    nodes: dict[str, tuple[str, str]] = {}
    control = ""
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if line.startswith("NODE "):
            _, name, api, bmc = line.split()
            nodes[name] = (api, bmc)
        if line.startswith("CONTROL "):
            control = line.split()[1]
        if line.startswith("READY "):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("labsim --proxmox did not say READY")
    env = dict(line.strip().split("=", 1) for line in secrets.read_text().splitlines() if "=" in line)
    return PveLab(proc, next(iter(nodes.values()))[0], env, config, cert, nodes, control)


@pytest.fixture
def pve_factory(tmp_path: Path) -> Iterator[Any]:
    labs: list[PveLab] = []

    def make(*flags: str) -> PveLab:
        lab = start(tmp_path / f"pve{len(labs)}", *flags)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.stop()
