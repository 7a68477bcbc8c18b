"""A vSphere down keeps the reverse of the start-up waves as edges of its graph (plan/order.py), not merely the order
its requests go out in: each wave's guests are asked once every guest of the wave after it is off. Read back with
pyVmomi, by an observer polling every VM's power state while the down runs, never from labswitch's own report."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.integration.test_down_up import configure, run
from tests.labsim import Lab, vm_power

pytestmark = pytest.mark.labsim
Run = Callable[..., Result]
WAVES = """
[[startup.waves]]
name = "infra"
vms = ["esx21-vm01"]
wait = "none"

[[startup.waves]]
name = "apps"
vms = ["esx11-vm01", "esx22-vm02"]
wait = "none"
"""


def test_a_vsphere_down_asks_each_wave_only_once_the_wave_after_it_is_off(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab = lab_factory("--vms-per-host", "2", "--guest-shutdown-delay", "1s", "--host-shutdown-delay", "300ms", "--vcls-delay", "300ms")
    config = configure(lab)
    config.write_text(config.read_text() + WAVES)
    off_at: dict[str, float] = {}
    stop = threading.Event()

    def observe() -> None:  # when pyVmomi first sees each VM powered off
        while not stop.is_set():
            now = time.monotonic()
            for name, power in vm_power(lab).items():
                if power == "poweredOff":
                    off_at.setdefault(name, now)
            stop.wait(0.1)

    before = {n for n, p in vm_power(lab).items() if p == "poweredOn" and n.startswith("esx")}
    observer = threading.Thread(target=observe, daemon=True)
    observer.start()
    try:
        down = run(cli, lab, state_dir, config, "down", "--yes")
    finally:
        stop.set()
        observer.join(timeout=10)
    assert down.code == 0, down.stderr
    infra, apps = {"esx21-vm01"}, {"esx11-vm01", "esx22-vm02"}
    remaining = before - infra - apps
    assert before <= set(off_at) and remaining, (before, off_at)
    # each wave's guests take 1 s to shut down once asked: the next wave is off at least that long after the last of this one
    assert min(off_at[n] for n in apps) - max(off_at[n] for n in remaining) >= 0.7, off_at
    assert min(off_at[n] for n in infra) - max(off_at[n] for n in apps) >= 0.7, off_at
