"""What `labswitch serve` does by itself, against labsim: energy samples in the journal (read with sqlite3 and
compared with Redfish), `energy` reporting them as measured, the Prometheus counter and the MQTT energy sensor;
idle auto-down (labsim's guest CPU load, read back with pyVmomi); and [[serve.schedules]]."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import peers
from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, Run, configure, payload, run
from tests.integration.test_serve import TOKEN, add_serve, serving
from tests.labsim import Lab, bmc_power, set_cpu, vm_cpu, vm_power

PAYLOAD = ("esx11", "esx12", "esx21", "esx22")
POWER = "/redfish/v1/Chassis/System.Embedded.1/Power"


def journal(state: Path) -> sqlite3.Connection:
    return sqlite3.connect(next(state.rglob("journal.sqlite3")))


def samples(state: Path) -> list[tuple[float, str, str, float, float, float]]:
    try:
        with journal(state) as db:
            return list(db.execute("SELECT at, server, power, watts, seconds, kwh FROM energy_samples ORDER BY at"))
    except (StopIteration, sqlite3.OperationalError):
        return []


def kwh_totals(state: Path) -> dict[str, float]:
    with journal(state) as db:
        return dict(db.execute("SELECT server, SUM(kwh) FROM energy_samples GROUP BY server"))


def api(url: str, path: str) -> requests.Response:
    return requests.get(url + "/api" + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def test_energy_samples_are_measured_counted_and_published(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path, tmp_path: Path
) -> None:
    lab = lab_factory(*FAST)
    with peers.mosquitto(tmp_path / "mqtt") as broker:
        config = configure(lab, policy='idle_down_after = "1h"\n')
        extra = f'\n[energy]\nsample_interval = "1s"\nprice_per_kwh = 0.5\n\n[mqtt]\nurl = "{broker.url}"\n'
        extra += 'password = { env = "MQTT_PASSWORD" }\nstate_interval = 1\n'
        url = add_serve(lab, config, extra)
        lab.env["MQTT_PASSWORD"] = broker.password  # for serve and for the CLI alike
        with serving(lab, config, url, state_dir):
            wait_until(lambda: len({at for at, *_ in samples(state_dir)}) >= 4, 30, "four sample rounds in the journal")
            truth = {s: lab.redfish(s, path=POWER).json()["PowerControl"][0]["PowerConsumedWatts"] for s in (*PAYLOAD, "mgmt01")}
            rows = samples(state_dir)
            latest = {server: (power, watts) for _, server, power, watts, _, _ in rows}
            assert latest == {s: ("On", float(w)) for s, w in truth.items()}, "each sample is the BMC's reading"
            steps = [seconds for at, server, _, _, seconds, _ in rows if server == "esx11"]
            assert steps[0] == 0 and all(0.5 < s < 3 for s in steps[1:]), "each later sample covers the time since the one before"

            before = kwh_totals(state_dir)
            text = requests.get(url + "/metrics", timeout=30).text
            after = kwh_totals(state_dir)
            counters = {
                s.labels["server"]: s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "labswitch_energy_kwh_total"
            }
            assert set(counters) == set(truth)
            assert all(before[s] - 1e-9 <= counters[s] <= after[s] + 1e-9 for s in truth), (before, counters, after)
            assert sum(after.values()) > 0

            published = float(broker.sub("labswitch/lab/energy", 1)[0][1])
            assert 0 < published <= sum(kwh_totals(state_dir).values()) + 1e-4
            sensor = json.loads(broker.sub("homeassistant/sensor/labswitch_lab/payload_auto_down/config", 1)[0][1])
            assert sensor["device_class"] == "timestamp" and sensor["state_topic"] == "labswitch/lab/group/payload/auto_down"
            down_at = dt.datetime.fromisoformat(broker.sub("labswitch/lab/group/payload/auto_down", 1)[0][1])
            assert abs((down_at - dt.datetime.now(dt.UTC)).total_seconds() - 3600) < 60, "idle since the first sample: down in an hour"

            result = run(cli, lab, state_dir, config, "energy", "--json", "--days", "1")
            assert result.code == 0, result.stderr
            report = result.json()
            sampled = kwh_totals(state_dir)
            assert 0 < report["measured_kwh"] <= sum(sampled.values()) + 1e-3
            # nothing is counted before the lab's first sample (counted_since); only the moments since the last sample are
            # estimated, which may be none when a sample lands as the report is made: not asserted as more than nothing
            # (each figure is rounded to 6 places)
            assert report["estimated_kwh"] >= 0 and abs(report["kwh"] - report["measured_kwh"] - report["estimated_kwh"]) < 1e-5
            assert report["sampled_since"] is not None
            assert abs(report["cost"] - report["kwh"] * 0.5) < 0.01
            assert abs(report["saving"] - (report["always_on_cost"] - report["cost"])) < 0.01

            answer = api(url, "/energy?days=1")
            assert answer.status_code == 200 and answer.json()["measured_kwh"] > 0
            today = api(url, f"/energy?since={dt.date.today().isoformat()}")
            assert today.status_code == 200 and today.json()["since"].startswith(dt.date.today().isoformat())
            bad = api(url, "/energy?since=yesterday")
            assert bad.status_code == 400 and "--since yesterday:" in bad.json()["detail"]
    bad = run(cli, lab, state_dir, config, "energy", "--since", "yesterday")
    assert bad.code == 2 and "--since yesterday:" in bad.stderr and "Traceback" not in bad.stderr
    both = run(cli, lab, state_dir, config, "energy", "--since", "2026-01-01", "--days", "3")
    assert both.code == 2 and "not both" in both.stderr


def test_idle_auto_down_waits_for_every_vm_to_be_idle(lab_factory: Callable[..., Lab], state_dir: Path, tmp_path: Path) -> None:
    busy = "esx11-vm01"
    lab = lab_factory(*FAST, "--busy-vms", busy)
    assert vm_cpu(lab)[busy] == 1500 and vm_cpu(lab)["esx12-vm01"] == 20, "labsim's loads as vCenter reports them"
    config = configure(lab, policy='idle_down_after = "3s"\nidle_cpu_mhz = 200\n')
    url = add_serve(lab, config, '\n[energy]\nsample_interval = "1s"\n')
    log = tmp_path / "serve.log"
    with serving(lab, config, url, state_dir, log=log):
        rounds = len({at for at, *_ in samples(state_dir)})
        wait_until(lambda: len({at for at, *_ in samples(state_dir)}) >= rounds + 6, 30, "six sample rounds (twice idle_down_after)")
        assert all(bmc_power(lab, s) == "On" for s in PAYLOAD), "one busy VM keeps its group on"
        assert api(url, "/automation").json()["idle"] == []

        set_cpu(lab, busy, 10)
        wait_until(lambda: api(url, "/automation").json()["idle"], 20, "the countdown starting")
        countdown = api(url, "/automation").json()["idle"][0]
        assert countdown["group"] == "payload" and abs(countdown["down_at"] - countdown["idle_since"] - 3) < 0.01
        wait_until(lambda: all(bmc_power(lab, s) == "Off" for s in PAYLOAD), 60, "the idle group down")
        assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
        assert bmc_power(lab, "mgmt01") == "On", "always_on groups are never idled down"
        with journal(state_dir) as db:
            (intent, groups, outcome, reason), *_ = db.execute("SELECT intent, groups, outcome, reason FROM runs ORDER BY started DESC")
        assert (intent, groups) == ("down", '["payload"]') and outcome in ("ok", "running")
        assert reason == "idle: no VM over 200 MHz for 3s"
        wait_until(lambda: api(url, "/lock").json()["running"] is False, 30, "the idle down finished")
        with journal(state_dir) as db:
            (run_id,) = db.execute("SELECT id FROM runs ORDER BY started DESC").fetchone()
        wait_until(lambda: "ended" in log.read_text(), 10, "the service's log saying how the run ended")
    text = log.read_text()
    started = re.search(rf"^(\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d) INFO down of payload started \(run {run_id}; idle: no VM", text, re.M)
    assert started, text
    assert re.search(rf"INFO run {run_id} \(down of payload\) ended: ok after \d\d:\d\d", text), text
    assert all(secret not in text for secret in (TOKEN, *(v for k, v in lab.env.items() if "PASSWORD" in k))), "no secret in the log"


def test_a_schedule_in_the_service_runs_by_the_clock(lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*FAST)
    config = configure(lab)
    now = dt.datetime.now()
    at = (now + dt.timedelta(seconds=70 if now.second > 50 else 60)).strftime("%H:%M")  # the next minute at least 10 s away
    url = add_serve(lab, config, f'\n[[serve.schedules]]\naction = "down"\nat = "Mon..Sun {at}"\ngroups = ["payload"]\n')
    with serving(lab, config, url, state_dir):
        upcoming = api(url, "/automation").json()["schedules"]
        assert [(s["action"], s["groups"], s["next"][11:16]) for s in upcoming] == [("down", ["payload"], at)]
        assert all(bmc_power(lab, s) == "On" for s in PAYLOAD)
        wait_until(lambda: all(bmc_power(lab, s) == "Off" for s in PAYLOAD), 130, f"the scheduled down at {at}")
        with journal(state_dir) as db:
            (started, reason), *_ = db.execute("SELECT started, reason FROM runs ORDER BY started DESC")
        assert reason == f"schedule: down Mon..Sun {at}"
        assert dt.datetime.fromtimestamp(started).strftime("%H:%M") == at
        wait_until(lambda: api(url, "/lock").json()["running"] is False, 30, "the scheduled down finished")


def test_bad_schedule_and_idle_settings_are_one_line(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*FAST)
    config = configure(lab)
    base = config.read_text()
    cases = {
        '\n[serve]\n[[serve.schedules]]\naction = "up"\nat = "Mon..Fri 25:00"\n': "25:00 is not a time of day",
        '\n[serve]\n[[serve.schedules]]\naction = "up"\nat = "07:00"\ngroups = ["nope"]\n': "unknown group 'nope'",
        '\n[serve]\n[[serve.schedules]]\naction = "down"\nat = "07:00"\nrestore = true\n': "restore goes with",
        "\n[energy]\nsample_interval = 0\n": None,
    }
    for extra, message in cases.items():
        config.write_text(base + extra)
        result = run(cli, lab, state_dir, config, "status", "--json")
        if message is None:
            assert result.code == 0, result.stderr
            continue
        assert result.code == 2, (extra, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    config.write_text(base.replace("[policy]\n", '[policy]\nidle_down_after = "3h"\n') + "\n[energy]\nsample_interval = 0\n")
    result = run(cli, lab, state_dir, config, "status")
    assert result.code == 2 and "idle_down_after needs energy samples" in result.stderr
