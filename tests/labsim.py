"""Start labsim (the simulated lab in labsim/) and read its effects back independently.

Readers here use pyVmomi and plain HTTP against labsim directly, never labswitch's
own code, so tests assert what really happened, not what labswitch reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

REPO = Path(__file__).resolve().parents[1]


def labsim_binary() -> Path:
    path = Path(os.environ.get("LABSIM_BIN") or REPO / "labsim" / "bin" / "labsim")
    if not path.exists():
        raise RuntimeError(f"labsim binary not found at {path}: run 'make labsim' (make test does)")
    return path


@dataclass
class Lab:
    proc: subprocess.Popen[str]
    url: str
    thumbprint: str
    env: dict[str, str]
    config: Path
    cert: Path
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "", parts.port or 443

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cert))
        return ctx

    @contextmanager
    def vsphere(self) -> Iterator[vim.ServiceInstanceContent]:
        """An independent pyVmomi session (verified against labsim's certificate)."""
        host, port = self.host_port
        si = SmartConnect(
            host=host, port=port, user="administrator@vsphere.local", pwd=self.env["LABSIM_VCENTER_PASSWORD"], sslContext=self.ssl_context()
        )
        try:
            yield si.RetrieveContent()
        finally:
            Disconnect(si)

    def objects(self, content: vim.ServiceInstanceContent, kind: type) -> dict[str, Any]:
        view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
        try:
            return {o.name: o for o in view.view}
        finally:
            view.Destroy()

    def properties(self, content: vim.ServiceInstanceContent, kind: type, *paths: str) -> dict[str, tuple[Any, ...]]:
        """Object name -> the values of ``paths``, in one PropertyCollector read: a snapshot, so an object
        deleted meanwhile (vCLS agents come and go) is absent rather than a ManagedObjectNotFound."""
        view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
        try:
            traverse = vmodl.query.PropertyCollector.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=["name", *paths])],
            )
            rows = {}
            for obj in content.propertyCollector.RetrieveContents([spec]):
                values = {p.name: p.val for p in obj.propSet}
                rows[values["name"]] = tuple(values.get(path) for path in paths)
            return rows
        finally:
            view.Destroy()

    def esxi_url(self, server: str) -> str:
        """The server's own ESXi API (labsim writes it to the config as esxi_url, or, without vCenter, as esxi)."""
        import tomllib

        cfg = tomllib.loads(self.config.read_text())
        entry = next(s for s in cfg["servers"] if s["name"] == server)
        return str(entry.get("esxi_url") or f"https://{entry['esxi']}")

    @contextmanager
    def host_api(self, server: str) -> Iterator[vim.ServiceInstanceContent]:
        """An independent pyVmomi session with the host itself, as root (verified against labsim's certificate)."""
        parts = urlsplit(self.esxi_url(server))
        si = SmartConnect(
            host=parts.hostname, port=parts.port, user="root", pwd=self.env["LABSIM_ESXI_PASSWORD"], sslContext=self.ssl_context()
        )
        try:
            yield si.RetrieveContent()
        finally:
            Disconnect(si)

    def bmc_url(self, server: str) -> str:
        import tomllib

        cfg = tomllib.loads(self.config.read_text())
        return next(s["bmc"]["address"] for s in cfg["servers"] if s["name"] == server)

    def redfish(
        self, server: str, method: str = "GET", path: str = "/redfish/v1/Systems/System.Embedded.1", **kw: Any
    ) -> requests.Response:
        return requests.request(
            method, self.bmc_url(server) + path, auth=("root", self.env["LABSIM_BMC_PASSWORD"]), verify=str(self.cert), timeout=10, **kw
        )

    def soap_calls(self, reset: bool = False) -> dict[str, int]:
        r = requests.request(
            "DELETE" if reset else "GET", self.url.replace("/sdk", "/labsim/soap-calls"), verify=str(self.cert), timeout=10
        )
        r.raise_for_status()
        return dict(json.loads(r.text))

    def first_calls(self) -> dict[str, float]:
        """When each SOAP method was first called since the last soap_calls(reset=True), unix seconds."""
        r = requests.get(self.url.replace("/sdk", "/labsim/first-calls"), verify=str(self.cert), timeout=10)
        r.raise_for_status()
        return {k: float(v) for k, v in r.json().items()}

    def fault(self, kind: str, name: str, mode: str) -> dict[str, str]:
        """Switch a fault at run time (labsim/faults.go): a BMC "hang" (connections accepted, never answered) or
        "error" (500s); a VM "ignore-shutdown"; a host "stuck" (boots, never reconnects); "none": that fault off."""
        url = self.url.replace("/sdk", "/labsim/faults")
        r = requests.post(url, params={kind: name, "mode": mode}, verify=str(self.cert), timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def physical(self) -> dict[str, Any]:
        """Each server's boot time and each VM's guest shutdown time, as labsim drew them (GET /labsim/physical)."""
        r = requests.get(self.url.replace("/sdk", "/labsim/physical"), verify=str(self.cert), timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(workdir: Path, *args: str, timeout: float = 60.0) -> Lab:
    workdir.mkdir(parents=True, exist_ok=True)
    config, cert = workdir / "labswitch.toml", workdir / "labsim.pem"
    cmd = [str(labsim_binary()), "--write-config", str(config), "--cert-out", str(cert), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    stderr_lines: list[str] = []
    threading.Thread(target=lambda: stderr_lines.extend(proc.stderr or []), daemon=True).start()
    env: dict[str, str] = {}
    thumbprint = ""
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            proc.kill()
            raise RuntimeError(f"labsim did not print READY within {timeout}s") from None
        if line is None:
            raise RuntimeError(f"labsim exited early: {''.join(stderr_lines)}")
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        elif line.startswith("THUMBPRINT "):
            thumbprint = line.split()[1]
        elif line.startswith("READY "):
            lab = Lab(proc, line.split()[1], thumbprint, env, config, cert, stderr_lines)
            pem = ssl.get_server_certificate(lab.host_port)
            assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() == thumbprint
            return lab


MUTATING = {
    "ShutdownGuest",
    "PowerOffVM_Task",
    "PowerOnVM_Task",
    "PowerOnMultiVM_Task",
    "EnterMaintenanceMode_Task",
    "ExitMaintenanceMode_Task",
    "ShutdownHost_Task",
    "RebootHost_Task",
    "ReconfigureComputeResource_Task",
    "UpdateOptions",
    "vsan:PerformClusterPowerAction",
}


def vm_power(lab: Lab) -> dict[str, str]:
    """VM name -> runtime.powerState, read with pyVmomi."""
    with lab.vsphere() as content:
        return {name: power for name, (power,) in lab.properties(content, vim.VirtualMachine, "runtime.powerState").items()}


def host_state(lab: Lab) -> dict[str, tuple[str, bool]]:
    """Host name (short) -> (connectionState, inMaintenanceMode), read with pyVmomi."""
    with lab.vsphere() as content:
        rows = lab.properties(content, vim.HostSystem, "runtime.connectionState", "runtime.inMaintenanceMode")
        return {name.split(".")[0]: (connection, bool(maintenance)) for name, (connection, maintenance) in rows.items()}


def answers(url: str) -> bool:
    """Whether anything accepts a TCP connection at the URL's host and port (labsim refuses while off)."""
    import socket

    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "", parts.port or 443), timeout=2).close()
    except OSError:
        return False
    return True


def bmc_power(lab: Lab, server: str) -> str:
    return str(lab.redfish(server).json()["PowerState"])


def tagged_vms(lab: Lab, tag: str = "StartUp") -> set[str]:
    """Names of the VMs carrying ``tag``, read through the tagging REST API."""
    base = lab.url.removesuffix("/sdk")
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would override the session's verify
    http.verify = str(lab.cert)
    auth = ("administrator@vsphere.local", lab.env["LABSIM_VCENTER_PASSWORD"])
    http.headers["vmware-api-session-id"] = http.post(f"{base}/rest/com/vmware/cis/session", auth=auth).json()["value"]
    tag_ids = [
        t
        for t in http.get(f"{base}/rest/com/vmware/cis/tagging/tag").json()["value"]
        if http.get(f"{base}/rest/com/vmware/cis/tagging/tag/id:{t}").json()["value"]["name"] == tag
    ]
    attached = http.post(
        f"{base}/rest/com/vmware/cis/tagging/tag-association?~action=list-attached-objects-on-tags", json={"tag_ids": tag_ids}
    ).json()["value"]
    moids = {o["id"] for entry in attached for o in entry.get("object_ids") or []}
    with lab.vsphere() as content:
        return {name for name, vm in lab.objects(content, vim.VirtualMachine).items() if vm._moId in moids}


def set_cpu(lab: Lab, vm: str, mhz: int) -> None:
    """Make a guest busy or idle (POST /labsim/cpu): its quickStats.overallCpuUsage while on."""
    r = requests.post(lab.url.replace("/sdk", "/labsim/cpu"), params={"vm": vm, "mhz": mhz}, verify=str(lab.cert), timeout=10)
    r.raise_for_status()


def vm_cpu(lab: Lab) -> dict[str, int]:
    """VM name -> summary.quickStats.overallCpuUsage (MHz), read with pyVmomi."""
    with lab.vsphere() as content:
        rows = lab.properties(content, vim.VirtualMachine, "summary.quickStats.overallCpuUsage")
        return {name: int(mhz or 0) for name, (mhz,) in rows.items()}
