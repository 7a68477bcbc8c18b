"""The core cycle against govmomi's vCenter simulator as the library ships it (labsim/vcsim: the VPX
model, nothing overridden) with sushy-tools' Redfish emulator as every server's BMC: a vCenter and BMCs
this project did not shape.

What the plain simulator does differently from labsim, and a real vCenter can too: PowerOnMultiVM_Task
returns no per-VM result; PowerOnVM_Task on a VM already on fails with InvalidPowerState (task error
carrying the MethodFault itself, not a LocalizedMethodFault); ShutdownHost_Task is MethodNotFound (the BMC
takes over); its VMs report no running tools (a hard power-off, with hard_power_off = true); its hosts never
leave vCenter, so only the BMC says a server is off. Effects are read back through pyVmomi, the vAPI REST
endpoints and Redfish, not through labswitch.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from tests.conftest import Result, wait_until
from tests.labsim import REPO
from tests.peers import RedfishPeer, sushy_emulator

PASSWORD = "vcsim-s3cret"
USER = "administrator@vsphere.local"
STANDALONE = "DC0_H0"  # its two VMs start through one PowerOnMultiVM_Task, which answers no per-VM result
CLUSTER = ("DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2")
SERVERS = (STANDALONE, *CLUSTER)
AGENT = "vCLS-embedded-by-hand"  # a vCLS agent as 8.0 U3 marks one, made through the simulator's own API


@dataclass
class Vcsim:
    url: str
    thumbprint: str
    cert: Path

    @contextmanager
    def vsphere(self) -> Iterator[Any]:
        parts = urlsplit(self.url)
        si = SmartConnect(
            host=parts.hostname, port=parts.port, user=USER, pwd=PASSWORD, sslContext=ssl.create_default_context(cafile=str(self.cert))
        )
        try:
            yield si.RetrieveContent()
        finally:
            Disconnect(si)

    def rest(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify (peers.md)
        session.verify = str(self.cert)
        base = self.url.replace("/sdk", "/rest")
        r = session.post(f"{base}/com/vmware/cis/session", auth=(USER, PASSWORD), timeout=10)
        r.raise_for_status()
        session.headers["vmware-api-session-id"] = r.json()["value"]
        return session


@contextmanager
def vcsim(workdir: Path) -> Iterator[Vcsim]:
    binary = REPO / "labsim" / "bin" / "vcsim"
    if not binary.exists():
        raise RuntimeError(f"{binary} not found: run 'make labsim' (make test does)")
    cert = workdir / "vcsim.pem"
    proc = subprocess.Popen(
        [str(binary), "--password", PASSWORD, "--cert-out", str(cert)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        thumbprint = proc.stdout.readline().split()[1]
        url = proc.stdout.readline().split()[1]
        yield Vcsim(url, thumbprint, cert)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def config(sim: Vcsim, bmc: RedfishPeer) -> str:
    servers = "".join(
        f'[[servers]]\nname = "{name}"\nesxi = "{name}"\ngroup = "payload"\n'
        f'bmc = {{ driver = "redfish", address = "{bmc.url}", system = "/redfish/v1/Systems/{name}", user = "{bmc.user}", '
        f'password = {{ env = "SUSHY_PASSWORD" }}, tls = {{ thumbprint = "{bmc.thumbprint}" }} }}\n\n'
        for name in SERVERS
    )
    return (
        f'[vcenter]\nurl = "{sim.url}"\nuser = "{USER}"\npassword = {{ env = "VCSIM_PASSWORD" }}\n'
        f'tls = {{ thumbprint = "{sim.thumbprint}" }}\n\n'
        '[policy]\nstartup_tag = "Lab/StartUp"\nhard_power_off = true\nguest_shutdown_timeout = 5\nhost_off_timeout = 60\n\n'
        "[groups.payload]\nalways_on = false\n\n" + servers
    )


def vm_power(sim: Vcsim) -> dict[str, str]:
    with sim.vsphere() as content:
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        try:
            return {vm.name: vm.runtime.powerState for vm in view.view}
        finally:
            view.Destroy()


def bmc_power(bmc: RedfishPeer, name: str) -> str:
    r = requests.get(f"{bmc.url}/redfish/v1/Systems/{name}", auth=(bmc.user, bmc.password), verify=str(bmc.cert), timeout=10)
    r.raise_for_status()
    return str(r.json()["PowerState"])


def add_agent(sim: Vcsim) -> None:
    """An embedded vCLS agent on DC0_C0_H0, as vSphere 8.0 U3 marks one (managedBy, guest, extraConfig)."""
    with sim.vsphere() as content:
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        host = next(h for h in view.view if h.name == CLUSTER[0])
        view.Destroy()
        dc = content.rootFolder.childEntity[0]
        spec = vim.vm.ConfigSpec(
            name=AGENT,
            guestId="crxSys1Guest",
            files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"),
            managedBy=vim.ext.ManagedByInfo(extensionKey="VirtualCenter", type="vcls-entity"),
            extraConfig=[vim.option.OptionValue(key="HDCS.agent", value="true"), vim.option.OptionValue(key="vCLSCRX.agent", value="true")],
        )
        task = dc.vmFolder.CreateVM_Task(config=spec, pool=host.parent.resourcePool, host=host)
        wait_until(lambda: task.info.state in ("success", "error"), 10, "the agent created")
        assert task.info.state == "success", task.info.error
        on = task.info.result.PowerOnVM_Task()
        wait_until(lambda: on.info.state in ("success", "error"), 10, "the agent on")


def tag_startup(sim: Vcsim, vm_name: str) -> None:
    """Tag one VM Lab/StartUp through the simulator's vAPI REST endpoints."""
    session = sim.rest()
    base = sim.url.replace("/sdk", "/rest/com/vmware/cis/tagging")
    category = session.post(
        f"{base}/category", json={"create_spec": {"name": "Lab", "description": "", "cardinality": "MULTIPLE", "associable_types": []}}
    )
    category.raise_for_status()
    tag = session.post(f"{base}/tag", json={"create_spec": {"name": "StartUp", "description": "", "category_id": category.json()["value"]}})
    tag.raise_for_status()
    with sim.vsphere() as content:
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        moid = next(vm._moId for vm in view.view if vm.name == vm_name)
        view.Destroy()
    attach = session.post(
        f"{base}/tag-association/id:{tag.json()['value']}?~action=attach", json={"object_id": {"id": moid, "type": "VirtualMachine"}}
    )
    attach.raise_for_status()


@pytest.mark.labsim
def test_the_core_cycle_on_the_unmodified_simulator(cli: Callable[..., Result], tmp_path: Path, state_dir: Path) -> None:
    with vcsim(tmp_path) as sim, sushy_emulator(tmp_path / "bmc", systems=SERVERS, power="On") as bmc:
        cfg = tmp_path / "labswitch.toml"
        cfg.write_text(config(sim, bmc))
        env = {"VCSIM_PASSWORD": PASSWORD, "SUSHY_PASSWORD": bmc.password, "XDG_STATE_HOME": str(state_dir)}
        add_agent(sim)
        tag_startup(sim, "DC0_C0_RP0_VM0")
        before = vm_power(sim)
        workload = set(before) - {AGENT}
        assert workload and all(before[n] == "poweredOn" for n in workload) and before[AGENT] == "poweredOn"

        status = cli("--config", str(cfg), "status", "--json", env=env)
        assert status.code == 0, status.stderr
        vms = {vm["name"]: vm for vm in json.loads(status.stdout)["vms"]}
        assert vms[AGENT]["system"] == "vcls" and vms[AGENT]["embedded"] is True
        assert all(vms[n]["system"] is None for n in workload)

        down = cli("--config", str(cfg), "down", "--yes", "--json", env=env, timeout=240)
        assert down.code == 0, down.stderr
        steps = json.loads(down.stdout)["steps"]
        assert not [s for s in steps if AGENT in s["target"]], "the vCLS agent is never a step's target"
        assert {s["status"] for s in steps if s["action"] == "shutdown-host"} == {"fallback"}, "MethodNotFound: the BMC took over"
        after = vm_power(sim)
        assert all(after[n] == "poweredOff" for n in workload), after
        assert after[AGENT] == "poweredOn", "the agent was left to vCenter"
        assert {bmc_power(bmc, n) for n in SERVERS} == {"Off"}

        up = cli("--config", str(cfg), "up", "--yes", "--json", env=env, timeout=240)
        assert up.code == 0, up.stderr
        # The plain simulator's hosts never left vCenter, so up has no reconnect to wait for; the fake
        # driver lands the power-on 0-11 s after the request labswitch made.
        wait_until(lambda: {bmc_power(bmc, n) for n in SERVERS} == {"On"}, 20, "every cluster server on at its BMC")
        after = vm_power(sim)
        assert after["DC0_C0_RP0_VM0"] == "poweredOn", "the VM tagged Lab/StartUp"
        assert {n for n in workload if after[n] == "poweredOn"} == {"DC0_C0_RP0_VM0"}, "untagged: only --restore starts them"
        with sim.vsphere() as content:
            view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
            assert not [h.name for h in view.view if h.runtime.inMaintenanceMode]
            view.Destroy()

        # A VM started by hand before the restore, and DC0_H0's two VMs through one PowerOnMultiVM_Task that
        # answers no per-VM result (their state is read, not assumed; a second PowerOnVM_Task would fail).
        with sim.vsphere() as content:
            view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
            vm = next(v for v in view.view if v.name == "DC0_C0_RP0_VM1")
            view.Destroy()
            task = vm.PowerOnVM_Task()
            wait_until(lambda: task.info.state in ("success", "error"), 10, "the VM on by hand")
        restore = cli("--config", str(cfg), "up", "--restore", "--yes", "--json", env=env, timeout=240)
        assert restore.code == 0, restore.stderr
        after = vm_power(sim)
        assert all(after[n] == "poweredOn" for n in workload), after
        starts = [s for s in json.loads(restore.stdout)["steps"] if s["action"] == "power-on-vm"]
        assert {s["target"] for s in starts} == {"DC0_H0_VM0", "DC0_H0_VM1"}, "those already on are not started again"
        assert all(s["status"] == "ok" for s in starts), starts
