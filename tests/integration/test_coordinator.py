"""`labswitch serve` reads the lab once per round for every consumer — Prometheus scrapes, Home Assistant
over MQTT, the page — over one kept connection per BMC, counted by labsim (GET /labsim/bmc-counts: TCP
connections, Redfish sessions and power reads per BMC), with a real broker (mosquitto) and the page logged in."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests import peers
from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, configure
from tests.integration.test_mqtt import mqtt_table
from tests.integration.test_serve import add_serve, serving
from tests.labsim import Lab

POLL = 3.0  # serve.poll_interval in this test
PAYLOAD = ("esx11", "esx12", "esx21", "esx22")
PASSWORD = "coordinator-pass"


def page_lab(html: str) -> dict[str, Any]:
    """The lab the page shows: the JSON it is drawn from (the script block its JavaScript reads on load)."""
    found = re.search(r'<script id="lab-data" type="application/json">(.*?)</script>', html, re.S)
    assert found is not None, html[:500]
    return dict(json.loads(found.group(1)))


def log_in(url: str) -> requests.Session:
    """The page's login as a browser does it: the form's CSRF token, then the password."""
    page = requests.Session()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get(url + "/login", timeout=30).text)
    assert csrf is not None
    page.post(url + "/login", data={"password": PASSWORD, "csrf_token": csrf.group(1)}, timeout=30)
    return page


def set_password(lab: Lab, config: Path) -> None:
    argv = [sys.executable, "-m", "labswitch", "--config", str(config), "serve", "passwd"]
    subprocess.run(argv, input=PASSWORD + "\n", text=True, env={**os.environ, **lab.env}, check=True, capture_output=True)


def bmc_counts(lab: Lab, reset: bool = False) -> dict[str, dict[str, int]]:
    url = lab.url.replace("/sdk", "/labsim/bmc-counts")
    return dict(requests.request("DELETE" if reset else "GET", url, verify=str(lab.cert), timeout=10).json())


def test_scrapes_mqtt_and_the_page_share_one_read_per_round_and_one_connection_per_bmc(
    lab_factory: Callable[..., Lab], state_dir: Path, tmp_path: Path
) -> None:
    lab = lab_factory(*FAST)
    with peers.mosquitto(tmp_path / "mqtt") as broker:
        config = configure(lab)
        url = add_serve(lab, config, f'poll_interval = "{POLL:g}s"\n' + mqtt_table(broker, 1))
        set_password(lab, config)
        with serving(lab, config, url, state_dir, {"MQTT_PASSWORD": broker.password}):
            assert broker.sub("labswitch/lab/group/payload/state", 1) == [("labswitch/lab/group/payload/state", "ON")]
            bmc_counts(lab, reset=True)  # from here on: what every consumer costs the BMCs
            started = time.monotonic()
            for _ in range(10):
                scrape = requests.get(url + "/metrics", timeout=30)
                assert scrape.status_code == 200 and 'labswitch_server_power_on{server="esx11"} 1.0' in scrape.text
            page = log_in(url)
            for _ in range(3):
                html = page.get(url + "/", timeout=60).text
                assert "payload" in [g["name"] for g in page_lab(html)["groups"]], html[:500]
            published = broker.sub("labswitch/lab/group/payload/state", 4)  # the retained state, then 3 rounds at 1 s
            assert [state for _, state in published] == ["ON"] * 4
            elapsed = time.monotonic() - started
            counts = bmc_counts(lab)
    rounds = elapsed / POLL + 2  # the coordinator's rounds in the window, with room for one at each end
    assert counts and set(counts) >= {"esx11", "esx12", "mgmt01"}, counts
    for server, c in counts.items():
        assert c["connections"] == 0, f"{server}: a new connection while serve ran ({c}): the kept one was not reused"
        assert c["sessions"] == 0, f"{server}: a new Redfish session while serve ran ({c})"
        reads = c["reads"]
        assert reads <= rounds, f"{server}: {reads} power reads in {elapsed:.1f}s of 10 scrapes, 3 pages, MQTT: > {rounds:.0f} rounds"


def test_a_silent_bmc_is_unknown_on_the_page_and_in_home_assistant_and_said_once(
    lab_factory: Callable[..., Lab], state_dir: Path, tmp_path: Path
) -> None:
    """BMCs that accept connections and never answer (every payload server's): the group is "unknown" on the
    page and "None" (unknown) for Home Assistant, never off; serve's log says so once per server, over rounds."""
    lab = lab_factory(*FAST)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    with silent, peers.mosquitto(tmp_path / "mqtt") as broker:
        quiet = f'"https://127.0.0.1:{silent.getsockname()[1]}"'
        config = configure(lab, policy="bmc_timeout = 2\n", replace=tuple((f'"{lab.bmc_url(s)}"', quiet) for s in PAYLOAD))
        url = add_serve(lab, config, 'poll_interval = "1s"\n' + mqtt_table(broker, 1))
        set_password(lab, config)
        log = tmp_path / "serve.log"
        with serving(lab, config, url, state_dir, {"MQTT_PASSWORD": broker.password}, log=log):
            assert broker.sub("labswitch/lab/group/payload/state", 1) == [("labswitch/lab/group/payload/state", "None")]
            lab_view = page_lab(log_in(url).get(url + "/", timeout=60).text)
            payload = next(g for g in lab_view["groups"] if g["name"] == "payload")
            assert payload["state"] == "unknown", payload
            assert next(h for h in lab_view["hosts"] if h["name"] == "esx12")["power"] == "Unknown"
            metrics = requests.get(url + "/metrics", timeout=30).text
            assert 'labswitch_server_power_state{server="esx12",state="unknown"} 1.0' in metrics, "unknown for Prometheus"
            assert 'labswitch_server_power_on{server="esx12"}' not in metrics, "never a 0 (off) on a guess"
            wait_until(lambda: "esx12: BMC not answering" in log.read_text(), 30, "the silent BMC said in serve's log")
            wait_until(lambda: len(broker.sub("labswitch/lab/group/payload/state", 3)) == 3, 30, "more rounds")
        text = log.read_text()
    assert text.count("esx12: BMC not answering") == 1, text
    assert lab.env["LABSIM_BMC_PASSWORD"] not in text
