"""`labswitch serve` against labsim: the REST API, its bearer token, runs in the background with the run lock,
Server-Sent Events, and Prometheus metrics — read back through HTTP as any client would, pyVmomi, Redfish
and prometheus_client's own parser, never labswitch's report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import peers
from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, Run, configure, run
from tests.labsim import Lab, bmc_power, host_state

TOKEN = "serve-t0ken-for-tests"
PAYLOAD = ("esx11", "esx12", "esx21", "esx22")


@dataclass
class Served:
    url: str
    lab: Lab
    config: Path
    proc: subprocess.Popen[str]

    def api(self, method: str, path: str, token: str | None = TOKEN, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.url + path, headers=headers, timeout=120, **kw)


def add_serve(lab: Lab, config: Path, extra: str = "") -> str:
    """The config's [serve] (a free loopback port, the token from LABSWITCH_TOKEN) and ``extra`` tables: its URL."""
    lab.env["LABSWITCH_TOKEN"] = TOKEN
    port = peers.free_port()
    config.write_text(config.read_text() + f'\n[serve]\ntoken = {{ env = "LABSWITCH_TOKEN" }}\nlisten = "127.0.0.1:{port}"\n' + extra)
    return f"http://127.0.0.1:{port}"


@contextmanager
def serving(
    lab: Lab, config: Path, url: str, state: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`labswitch serve` as a user starts it, until it answers; stopped with SIGTERM (unless the test did).
    ``log``: where its stderr goes (its activity log), for the test to read."""
    full = {**os.environ, **lab.env, **(env or {}), "XDG_STATE_HOME": str(state)}
    argv = [sys.executable, "-m", "labswitch", "--config", str(config), "serve"]
    log = log or config.with_name(f"serve-{os.getpid()}.log")  # its activity, said when it does not come up
    stderr = log.open("w")
    proc = subprocess.Popen(argv, env=full, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _up(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"labswitch serve did not answer at {url} (exit {proc.poll()}): {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


@pytest.fixture
def served(lab_factory: Callable[..., Lab], state_dir: Path) -> Iterator[Served]:
    lab = lab_factory(*FAST)
    config = configure(lab)
    url = add_serve(lab, config)
    with serving(lab, config, url, state_dir) as proc:
        yield Served(url, lab, config, proc)


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def events(served: Served, run_id: str) -> list[tuple[str, str]]:
    """The run's Server-Sent Events, read until the stream ends (at the run's end)."""
    out, kind = [], ""
    with served.api("GET", f"/api/runs/{run_id}/events", stream=True) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append((kind, line.removeprefix("data: ")))
    return out


def outcome(stream: list[tuple[str, str]]) -> str:
    """The stream's last event is its end, with the outcome and the run's seconds from start to finish."""
    kind, data = stream[-1]
    end = json.loads(data)
    assert kind == "end" and isinstance(end["seconds"], float) and 0 < end["seconds"] < 120, stream[-1]
    return str(end["outcome"])


def test_the_api_needs_its_token_and_says_no_secret(served: Served) -> None:
    assert served.api("GET", "/healthz", token=None).status_code == 200
    for token in (None, "wrong"):
        r = served.api("GET", "/api/status", token=token)
        assert r.status_code == 401 and TOKEN not in r.text
        assert served.api("POST", "/api/runs", token=token, json={"intent": "down"}).status_code == 401
    assert all(bmc_power(served.lab, s) == "On" for s in PAYLOAD), "nothing ran"
    status = served.api("GET", "/api/status").json()
    assert {h["name"]: h["connection_state"] for h in status["hosts"]} == {n: c for n, (c, _) in host_state(served.lab).items()}
    text = served.api("GET", "/api/status").text + served.api("GET", "/openapi.json").text
    assert served.lab.env["LABSIM_VCENTER_PASSWORD"] not in text and served.lab.env["LABSIM_BMC_PASSWORD"] not in text
    missing = served.api("POST", "/api/runs", json={"intent": "down", "groups": ["nope"]})
    assert missing.status_code == 404 and "groups: mgmt, payload" in missing.json()["detail"]


def test_a_down_started_over_the_api_runs_in_the_background_and_streams_its_steps(served: Served, cli: Run, state_dir: Path) -> None:
    started = served.api("POST", "/api/runs", json={"intent": "down"})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    stream = events(served, run_id)
    assert outcome(stream) == "ok"
    assert stream[0][0] == "run" and json.loads(stream[0][1])["run_id"] == run_id, "first the run, with its journaled start"
    assert sum(1 for kind, data in stream if kind == "step" and '"confirm-off"' in data) == len(PAYLOAD)
    assert all(bmc_power(served.lab, s) == "Off" for s in PAYLOAD)
    assert bmc_power(served.lab, "mgmt01") == "On"
    history = run(cli, served.lab, state_dir, served.config, "history", "--json").json()
    assert history[0]["run_id"] == run_id and history[0]["reason"] == "serve"


def test_one_run_at_a_time_across_the_service_and_the_cli(served: Served, cli: Run, state_dir: Path) -> None:
    assert served.api("POST", "/api/runs", json={"intent": "down"}).status_code == 202
    wait_until(lambda: served.api("GET", "/api/lock").json()["running"] is False, 60, "the down finished")
    up = served.api("POST", "/api/runs", json={"intent": "up"})
    assert up.status_code == 202
    run_id = up.json()["run_id"]
    second = served.api("POST", "/api/runs", json={"intent": "down"})
    assert second.status_code == 409 and second.json()["run_id"] == run_id
    refused = run(cli, served.lab, state_dir, served.config, "down", "--yes")
    assert refused.code == 1 and run_id in refused.stderr, refused.stderr
    assert outcome(events(served, run_id)) == "ok"
    assert all(bmc_power(served.lab, s) == "On" for s in PAYLOAD), "the up finished; the refused down changed nothing"


def test_metrics_are_prometheus_text_with_the_bmcs_readings(served: Served) -> None:
    def scrape() -> dict[str, Any]:
        return {f.name: f for f in text_string_to_metric_families(requests.get(served.url + "/metrics", timeout=60).text)}

    # A scrape answers from the coordinator's last round: the lab's metrics come with the first round.
    wait_until(lambda: "labswitch_lab_read_age_seconds" in scrape(), 30, "the coordinator's first round in /metrics")
    families = scrape()
    watts = {s.labels["server"]: s.value for s in families["labswitch_server_power_watts"].samples}
    for server in ("mgmt01", *PAYLOAD):
        reading = served.lab.redfish(server, path="/redfish/v1/Chassis/System.Embedded.1/Power").json()
        assert watts[server] == reading["PowerControl"][0]["PowerConsumedWatts"]
    assert {s.labels["server"]: s.value for s in families["labswitch_server_power_on"].samples} == dict.fromkeys(("mgmt01", *PAYLOAD), 1.0)
    assert families["labswitch_run_in_progress"].samples[0].value == 0.0
    assert {s.labels["group"] for s in families["labswitch_group_vms_on"].samples} == {"mgmt", "payload"}


def test_sigterm_leaves_the_run_in_progress_resumable(served: Served, cli: Run, state_dir: Path) -> None:
    run_id = served.api("POST", "/api/runs", json={"intent": "down"}).json()["run_id"]
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=60) in (0, -signal.SIGTERM), "a clean stop (uvicorn re-raises SIGTERM once it has shut down)"
    assert not _up(served.url)
    history = run(cli, served.lab, state_dir, served.config, "history", "--json").json()
    assert history[0]["run_id"] == run_id and history[0]["outcome"] == "interrupted"
    again = run(cli, served.lab, state_dir, served.config, "down", "--yes")
    assert again.code == 0, again.stderr
    assert all(bmc_power(served.lab, s) == "Off" for s in PAYLOAD)
