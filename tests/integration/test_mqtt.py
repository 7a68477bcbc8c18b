"""Home Assistant over MQTT, through a real broker (Debian's mosquitto): `labswitch serve` publishes the discovery
Home Assistant reads, and a switch's OFF takes its group down — read back with mosquitto_sub, pyVmomi and Redfish."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests import peers
from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, configure, payload
from tests.integration.test_serve import add_serve, serving
from tests.labsim import Lab, bmc_power, vm_power

PAYLOAD = ("esx11", "esx12", "esx21", "esx22")


def mqtt_table(broker: peers.MqttPeer, state_interval: float) -> str:
    """The config's [mqtt] for the broker, its password from MQTT_PASSWORD (serve's environment)."""
    return f'\n[mqtt]\nurl = "{broker.url}"\npassword = {{ env = "MQTT_PASSWORD" }}\nstate_interval = {state_interval:g}\n'


def test_home_assistant_discovery_and_a_switch_that_takes_its_group_down(
    lab_factory: Callable[..., Lab], state_dir: Path, tmp_path: Path
) -> None:
    lab = lab_factory(*FAST)
    with peers.mosquitto(tmp_path / "mqtt") as broker:
        config = configure(lab)
        url = add_serve(lab, config, mqtt_table(broker, 2))
        with serving(lab, config, url, state_dir, {"MQTT_PASSWORD": broker.password}):
            # 1 switch, 5 power sensors, the energy sensor, run in progress
            configs = dict(broker.sub("homeassistant/+/labswitch_lab/+/config", count=1 + 5 + 1 + 1))
            switch = json.loads(configs["homeassistant/switch/labswitch_lab/payload/config"])
            assert switch["command_topic"] == "labswitch/lab/group/payload/set" and switch["payload_off"] == "OFF"
            assert switch["device"]["identifiers"] == ["labswitch_lab"] and switch["availability_topic"] == "labswitch/lab/availability"
            assert "homeassistant/switch/labswitch_lab/mgmt/config" not in configs, "always_on groups have no switch"
            sensor = json.loads(configs["homeassistant/sensor/labswitch_lab/esx11_power/config"])
            assert sensor["unit_of_measurement"] == "W" and sensor["state_class"] == "measurement" and sensor["device_class"] == "power"
            assert json.loads(configs["homeassistant/binary_sensor/labswitch_lab/run/config"])["device_class"] == "running"
            energy = json.loads(configs["homeassistant/sensor/labswitch_lab/energy/config"])
            assert (energy["unit_of_measurement"], energy["device_class"], energy["state_class"]) == ("kWh", "energy", "total_increasing")
            assert broker.sub("labswitch/lab/availability", 1) == [("labswitch/lab/availability", "online")]
            assert broker.sub("labswitch/lab/group/payload/state", 1) == [("labswitch/lab/group/payload/state", "ON")]
            watts = dict(broker.sub("labswitch/lab/server/+/watts", 5))
            reading = lab.redfish("esx11", path="/redfish/v1/Chassis/System.Embedded.1/Power").json()["PowerControl"][0]
            assert float(watts["labswitch/lab/server/esx11/watts"]) == reading["PowerConsumedWatts"]
            text = "".join(configs.values())
            assert broker.password not in text and lab.env["LABSIM_BMC_PASSWORD"] not in text

            broker.pub("labswitch/lab/group/payload/set", "OFF")
            wait_until(lambda: all(bmc_power(lab, s) == "Off" for s in PAYLOAD), 60, "the payload group down")
            assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
            wait_until(
                lambda: broker.sub("labswitch/lab/group/payload/state", 1) == [("labswitch/lab/group/payload/state", "OFF")],
                30,
                "the state following",
            )
            assert bmc_power(lab, "mgmt01") == "On"
        assert broker.sub("labswitch/lab/availability", 1) == [("labswitch/lab/availability", "offline")], "offline once stopped"


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_acl() -> str:
    """The mosquitto ACL the README's Security section gives (the block after its `mosquitto-acl` marker)."""
    text = README.read_text()
    block = text.split("<!-- mosquitto-acl -->", 1)[1].split("```", 2)[1]
    return block.split("\n", 1)[1]  # without the fence's language line


def test_with_the_readmes_acl_an_anonymous_client_cannot_switch_the_lab(
    lab_factory: Callable[..., Lab], state_dir: Path, tmp_path: Path
) -> None:
    lab = lab_factory(*FAST)
    ha = {"homeassistant": "ha-s3cret"}
    # A careless broker lets anonymous clients in; the README's ACL still keeps them off labswitch's topics.
    with peers.mosquitto(tmp_path / "mqtt", others=ha, acl=readme_acl(), anonymous=True) as broker:
        config = configure(lab)
        url = add_serve(lab, config, mqtt_table(broker, 2))
        log = tmp_path / "serve.log"
        with serving(lab, config, url, state_dir, {"MQTT_PASSWORD": broker.password}, log=log):
            assert broker.sub("labswitch/lab/availability", 1) == [("labswitch/lab/availability", "online")]
            anonymous = ["-h", "127.0.0.1", "-p", str(broker.port), "-q", "1"]
            subprocess.run(["mosquitto_pub", *anonymous, "-t", "labswitch/lab/group/payload/set", "-m", "OFF"], check=True, timeout=30)
            subprocess.run(["mosquitto_pub", *anonymous, "-r", "-t", "labswitch/lab/availability", "-m", "offline"], check=True, timeout=30)
            # Home Assistant's own login may command: a marker it sends after the anonymous OFF, on the same topic.
            login = ["-h", "127.0.0.1", "-p", str(broker.port), "-u", "homeassistant", "-P", ha["homeassistant"], "-q", "1"]
            subprocess.run(["mosquitto_pub", *login, "-t", "labswitch/lab/group/payload/set", "-m", "MARKER"], check=True, timeout=30)
            wait_until(lambda: "ignored 'MARKER'" in log.read_text(), 30, "Home Assistant's message handled")
            text = log.read_text()
            assert "down of payload" not in text and "ignored 'OFF'" not in text, text
            assert all(bmc_power(lab, s) == "On" for s in PAYLOAD), "the anonymous OFF never reached labswitch"
            assert broker.sub("labswitch/lab/availability", 1) == [("labswitch/lab/availability", "online")], "nor overwrote it"
