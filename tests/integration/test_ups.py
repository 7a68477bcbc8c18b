"""A UPS through a real NUT (Debian's upsd with the dummy-ups driver, its state driven by editing the dummy file)
takes a labsim lab down and back: read back through upsc, Redfish, pyVmomi and the journal's history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, Run, configure, payload, run
from tests.integration.test_serve import add_serve, serving
from tests.labsim import Lab, bmc_power, vm_power

PAYLOAD = ("esx11", "esx12", "esx21", "esx22")


@pytest.fixture
def nut(tmp_path: Path) -> Iterator[peers.NutPeer]:
    with peers.nut_server(tmp_path / "nut") as peer:
        yield peer


def with_ups(lab: Lab, nut: peers.NutPeer, **policy: str) -> Path:
    lab.env["UPS_PASSWORD"] = nut.password  # every command of the test loads [ups] with it
    config = configure(lab)
    lines = "".join(f"{k} = {v}\n" for k, v in policy.items())
    config.write_text(
        config.read_text() + f'\n[ups]\nurl = "{nut.url}"\npassword = {{ env = "UPS_PASSWORD" }}\npoll_interval = 0.3\n{lines}'
    )
    return config


class Watcher:
    """`labswitch ups watch` in the background, its stderr collected."""

    def __init__(self, lab: Lab, state: Path, config: Path, env: dict[str, str]) -> None:
        full = {**os.environ, **lab.env, **env, "XDG_STATE_HOME": str(state)}
        argv = [sys.executable, "-m", "labswitch", "--config", str(config), "ups", "watch"]
        self.proc = subprocess.Popen(argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout or []), daemon=True).start()

    def said(self, text: str, times: int = 1) -> bool:
        return sum(text in line for line in list(self.lines)) >= times

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def history(cli: Run, lab: Lab, state: Path, config: Path) -> list[dict[str, Any]]:
    result = run(cli, lab, state, config, "history", "--json")
    assert result.code == 0, result.stderr
    return list(reversed(result.json()))  # oldest first


def all_payload(lab: Lab, power: str) -> Callable[[], bool]:
    return lambda: all(bmc_power(lab, s) == power for s in PAYLOAD)


def test_ups_status_through_nut(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, nut: peers.NutPeer) -> None:
    lab = lab_factory(*FAST)
    config = with_ups(lab, nut)
    result = cli("--config", str(config), "ups", "status", "--json", env=lab.env)
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["status"] == nut.upsc("ups.status").split() == ["OL"]
    assert data["charge"] == float(nut.upsc("battery.charge")) and data["runtime"] == float(nut.upsc("battery.runtime"))
    wrong = cli("--config", str(config), "ups", "status", env={**lab.env, "UPS_PASSWORD": "not-it"})
    assert wrong.code == 1 and wrong.stderr.count("\n") == 1
    assert "LOGIN refused (ACCESS-DENIED); check the user in ups.url and ups.password" in wrong.stderr and "not-it" not in wrong.stderr


def test_on_battery_past_the_delay_takes_the_lab_down_once(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, nut: peers.NutPeer
) -> None:
    lab = lab_factory(*FAST)
    config = with_ups(lab, nut, on_battery_after='"3s"')
    watcher = Watcher(lab, state_dir, config, {})
    try:
        wait_until(lambda: watcher.said("UPS ups1: on line"), 20, "the watch reading the UPS")
        nut.set(ups_status="OB DISCHRG", battery_charge="90")
        outage = time.time()
        wait_until(lambda: nut.upsc("ups.status") == "OB DISCHRG", 10, "NUT on battery")
        wait_until(all_payload(lab, "Off"), 60, "the lab down")
        nut.set(ups_status="OL CHRG")
        wait_until(lambda: watcher.said("on line, charging"), 20, "the watch seeing the power back")
        nut.set(ups_status="OB DISCHRG")  # flapping
        wait_until(lambda: watcher.said("on battery, discharging", times=2), 20, "the flap seen")
        nut.set(ups_status="OB LB")
        wait_until(lambda: watcher.said("low battery"), 20, "low battery seen")
    finally:
        assert watcher.stop() == 0
    runs = history(cli, lab, state_dir, config)
    assert [(r["intent"], r["reason"]) for r in runs] == [("down", "ups: on battery for 3s")], "one down, no up (up_after unset)"
    started = datetime.strptime(runs[0]["started"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert started >= outage + 2, "not before ups.on_battery_after (3s; the journal keeps whole seconds)"
    assert bmc_power(lab, "mgmt01") == "On"


def test_low_battery_is_down_at_once_and_power_back_brings_it_up(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, nut: peers.NutPeer
) -> None:
    lab = lab_factory(*FAST)
    before = {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"}
    config = with_ups(lab, nut, on_battery_after='"10m"', up_after='"2s"', up_min_charge="50")
    watcher = Watcher(lab, state_dir, config, {})
    try:
        wait_until(lambda: watcher.said("UPS ups1: on line"), 20, "the watch reading the UPS")
        nut.set(ups_status="OB LB DISCHRG", battery_charge="20")
        wait_until(all_payload(lab, "Off"), 60, "the lab down at once on low battery")
        nut.set(ups_status="OL CHRG", battery_charge="30")
        wait_until(lambda: watcher.said("on line, charging, charge 30%"), 20, "the power back, charge too low")
        assert all_payload(lab, "Off")(), "not up while the charge is under ups.up_min_charge"
        nut.set(battery_charge="80")
        wait_until(all_payload(lab, "On"), 60, "the lab up again")
        wait_until(lambda: watcher.said("UPS up done"), 60, "the up finished")
    finally:
        assert watcher.stop() == 0
    runs = history(cli, lab, state_dir, config)
    assert [r["intent"] for r in runs] == ["down", "up"]
    assert runs[0]["reason"] == "ups: low battery (LB)" and runs[1]["reason"].startswith("ups: power back for")
    assert {n for n, p in payload(vm_power(lab)).items() if p == "poweredOn"} == before, "up --restore: what ran before"


def test_serve_watches_the_ups_too(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, nut: peers.NutPeer) -> None:
    lab = lab_factory(*FAST)
    config = with_ups(lab, nut, on_battery_after='"1s"')
    url = add_serve(lab, config)
    with serving(lab, config, url, state_dir):
        nut.set(ups_status="OB DISCHRG")
        wait_until(all_payload(lab, "Off"), 60, "the lab down by the service's UPS watch")
    assert [(r["intent"], r["reason"]) for r in history(cli, lab, state_dir, config)] == [("down", "ups: on battery for 1s")]
