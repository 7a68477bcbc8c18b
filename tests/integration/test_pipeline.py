"""Every host goes down and comes up as soon as it can: watched from outside while labswitch runs.

labsim draws each VM's guest shutdown and each server's boot with jitter (GET /labsim/physical);
an observer thread reads the servers' power through Redfish and the VMs' and hosts' state through
pyVmomi while the run goes on, and the assertions compare those times, not labswitch's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Result, wait_until
from tests.integration.test_cluster_cycle import settings as all_cluster_settings
from tests.integration.test_down_up import configure, payload, run
from tests.integration.test_vcls_releases import vcls
from tests.labsim import Lab, bmc_power, host_state, tagged_vms, vm_power

Run = Callable[..., Result]


def cluster_settings(lab: Lab) -> tuple[bool, str | None, str]:
    """Cluster1's (HA on, vCLS setting, vSAN power), read with pyVmomi (test_cluster_cycle.settings)."""
    return all_cluster_settings(lab)["Cluster1"]


SERVERS = ("esx11", "esx12", "esx21", "esx22")
# The default lab: vSphere 8.0 U3 with vCLS. Only a vSAN cluster goes down as one unit now.
NO_CLUSTER_UNIT: tuple[str, ...] = ()


@contextmanager
def observe(lab: Lab) -> Iterator[dict[str, float]]:
    """First time (seconds since start) each server was seen Off/On by its BMC, each host connected,
    and each VM powered off/on: keys "off:esx11", "on:esx11", "connected:esx11", "vm-off:NAME", "vm-on:NAME";
    "start": when the watch began (unix seconds), to compare with labsim's own record."""
    seen: dict[str, float] = {"start": time.time()}
    stop = threading.Event()
    start = time.monotonic()

    def watch() -> None:
        while True:
            last = stop.is_set()  # one more look after the run ended: a change in its last 0.2 s is seen too
            now = time.monotonic() - start
            for server in SERVERS:
                seen.setdefault(f"{bmc_power(lab, server).lower()}:{server}", now)
            for name, (connection, _) in host_state(lab).items():
                if connection == "connected":
                    seen.setdefault(f"connected:{name}", now)
            for name, power in payload(vm_power(lab)).items():
                seen.setdefault(f"vm-{'off' if power == 'poweredOff' else 'on'}:{name}", now)
            if last:
                return
            stop.wait(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_host_goes_down_while_another_hosts_guest_is_still_stopping(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(
        "--guest-shutdown-delay", "300ms", "--guest-shutdown-jitter", "8s", "--host-shutdown-delay", "300ms",
        "--host-boot-delay", "1s", "--tools-delay", "100ms", "--seed", "4", *NO_CLUSTER_UNIT,
    )  # fmt: skip
    physical = lab.physical()["hosts"]
    slowest_vm_of = {s: max(physical[s]["guest_shutdown_seconds"].values()) for s in SERVERS}
    quick = min(SERVERS, key=slowest_vm_of.__getitem__)
    slow = max(SERVERS, key=slowest_vm_of.__getitem__)
    slowest_vm = max(physical[slow]["guest_shutdown_seconds"], key=physical[slow]["guest_shutdown_seconds"].__getitem__)
    assert slowest_vm_of[slow] - slowest_vm_of[quick] > 3, "the seed must spread the hosts apart for this test to mean anything"
    config = configure(lab, replace=(("guest_shutdown_timeout = 5", "guest_shutdown_timeout = 30"),))
    with observe(lab) as seen:
        result = run(cli, lab, state_dir, config, "down", "--yes")
    assert result.code == 0, result.stderr
    # The quick host was off at its BMC before the slowest guest of another host had stopped.
    assert seen[f"off:{quick}"] < seen[f"vm-off:{slowest_vm}"], seen
    assert {bmc_power(lab, s) for s in SERVERS} == {"Off"}
    assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
    went_off = {s: h["power_changed"] for s, h in lab.physical()["hosts"].items() if s in SERVERS}  # labsim's own record
    assert went_off[quick] < went_off[slow] - 2


def test_a_host_starts_its_vms_while_another_still_boots(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(
        "--host-boot-delay", "500ms", "--host-boot-jitter", "8s", "--host-shutdown-delay", "300ms",
        "--guest-shutdown-delay", "300ms", "--tools-delay", "100ms", "--seed", "4", *NO_CLUSTER_UNIT,
    )  # fmt: skip
    config = configure(lab, replace=(("host_connect_timeout = 10", "host_connect_timeout = 30"),))
    assert run(cli, lab, state_dir, config, "down", "--yes").code == 0
    boot = {s: lab.physical()["hosts"][s]["boot_seconds"] for s in SERVERS}
    startup = {n for n in tagged_vms(lab) if n.startswith("esx")}
    first = min((s for s in SERVERS if any(n.startswith(f"{s}-") for n in startup)), key=boot.__getitem__)
    last = max(SERVERS, key=boot.__getitem__)
    assert boot[last] - boot[first] > 3, "the seed must spread the boots apart for this test to mean anything"
    with observe(lab) as seen:
        result = run(cli, lab, state_dir, config, "up", "--yes")
    assert result.code == 0, result.stderr
    first_vm_on = seen["start"] + min(seen[f"vm-on:{n}"] for n in startup if n.startswith(f"{first}-"))  # seen on by then
    physical = lab.physical()["hosts"][last]
    last_back = physical["power_changed"] + physical["boot_seconds"]  # labsim's record: powered on, then its boot
    assert first_vm_on < last_back, (seen, physical)  # its VMs ran before the last host was even back
    assert {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"} == startup
    assert all(host_state(lab)[s] == ("connected", False) for s in SERVERS)


@pytest.mark.parametrize("release", ["8.0.3", "8.0.2"])
def test_one_slow_guest_keeps_only_its_own_host_on_in_a_cluster_with_vcls_and_ha(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, release: str
) -> None:
    """The default lab (8.0.3: embedded agents) and 8.0.2 (EAM's agents, retreat mode): the cluster's other hosts
    are off at their BMCs while esx11's slow guest still stops; HA and vCLS come back as they were after up."""
    lab = lab_factory(
        "--vsphere", release, "--ha", "--clusters", "1", "--hosts-per-cluster", "3", "--vms-per-host", "2",
        "--guest-shutdown-delay", "300ms", "--slow-guests", "esx11-vm01=12s", "--host-shutdown-delay", "300ms",
        "--host-boot-delay", "1s", "--tools-delay", "100ms", "--vcls-delay", "300ms", "--vcls-repower-delay", "300ms",
    )  # fmt: skip
    config = configure(lab, replace=(("guest_shutdown_timeout = 5", "guest_shutdown_timeout = 30"),))
    before = cluster_settings(lab)
    assert before[0] is True
    env = {**lab.env, "XDG_STATE_HOME": str(state_dir)}
    cmd = [sys.executable, "-m", "labswitch", "--config", str(config), "down", "--yes"]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: bmc_power(lab, "esx12") == "Off" and bmc_power(lab, "esx13") == "Off", 30, "esx12 and esx13 off")
        assert vm_power(lab)["esx11-vm01"] == "poweredOn", "the slow guest is still stopping"
        assert bmc_power(lab, "esx11") == "On", "its host alone stays on"
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert {bmc_power(lab, s) for s in ("esx11", "esx12", "esx13")} == {"Off"}
    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    assert cluster_settings(lab) == before, "HA and vCLS as they were before the down"
    running = lambda: sum(1 for _, _, power in vcls(lab).values() if power == "poweredOn")  # noqa: E731
    wait_until(lambda: running() == (3 if release == "8.0.2" else 2), 15, "vCLS agents running again")
