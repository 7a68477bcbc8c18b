"""Benchmarks against labsim (`make bench`; never part of `make test`).

Now: `labswitch status --json` wall time and SOAP calls at 100 and 1,000 VMs,
beside a naive reference that reads each VM's attributes through pyVmomi one by
one, as simple scripts do. The benchmark issue extends this to down/up and audit.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyVmomi import vim
from tests.labsim import Lab, start

TOPOLOGIES = {
    100: ("--clusters", "2", "--hosts-per-cluster", "5", "--vms-per-host", "10"),
    1000: ("--clusters", "5", "--hosts-per-cluster", "10", "--vms-per-host", "20"),
}


def labswitch_status(lab: Lab) -> float:
    start_time = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "labswitch", "--config", str(lab.config), "status", "--json"],
        env={**os.environ, **lab.env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.startswith("{")
    return time.perf_counter() - start_time


def labswitch_inventory(lab: Lab) -> float:
    """The same VM reads as the naive reference, through labswitch's bulk reader, in process."""
    from labswitch import config, vsphere

    os.environ.update(lab.env)
    cfg = config.load(lab.config)
    start_time = time.perf_counter()
    with vsphere.connect(cfg.vcenter) as vc:
        assert vc.snapshot().vms
    return time.perf_counter() - start_time


def naive_status(lab: Lab) -> float:
    start_time = time.perf_counter()
    with lab.vsphere() as content:
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        rows = [(vm.name, vm.runtime.powerState, vm.guest.toolsRunningStatus, vm.runtime.host.name) for vm in view.view]
        assert rows
    return time.perf_counter() - start_time


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    columns = ["VMs", "hosts+BMCs", "`status --json` CLI, whole (s)", "labswitch inventory read (s)", "SOAP calls"]
    columns += ["naive per-attribute read (s)", "SOAP calls", "inventory speed-up"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for vms, args in TOPOLOGIES.items():
            lab = start(Path(tmp) / str(vms), *args, "--mgmt-hosts", "1")
            try:
                lab.soap_calls(reset=True)
                whole = min(labswitch_status(lab) for _ in range(3))
                lab.soap_calls(reset=True)
                ours = min(labswitch_inventory(lab) for _ in range(3))
                our_calls = sum(lab.soap_calls(reset=True).values()) // 3
                naive = naive_status(lab)
                naive_calls = sum(lab.soap_calls(reset=True).values())
                hosts = len([line for line in lab.config.read_text().splitlines() if line == "[[servers]]"])
                print(f"| {vms} | {hosts} | {whole:.2f} | {ours:.2f} | {our_calls} | {naive:.2f} | {naive_calls} | {naive / ours:.0f}x |")
            finally:
                lab.stop()


if __name__ == "__main__":
    main()
