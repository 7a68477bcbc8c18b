"""Home Assistant over MQTT (paho-mqtt), inside `labswitch serve`: one device per lab, found by Home
Assistant's MQTT discovery. A switch per group that is not always_on (ON runs `up`, OFF runs `down`,
through the same service, lock and safety as every run; its state is the servers' power, read, not the
last command), a power sensor per server (W, measurement), an energy sensor for the lab (kWh,
total_increasing, from the service's energy samples), with idle auto-down a timestamp sensor per group
(when it goes down if it stays idle), a binary sensor "run in progress", and
availability with a last will. paho reconnects by itself; the discovery and states are published again
on every (re)connection."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from labswitch import __version__, tls
from labswitch.config import Config, Mqtt
from labswitch.errors import ConfigError, LabswitchError
from labswitch.plan import Intent
from labswitch.usecases import energy, idle
from labswitch.usecases.automation import Automation
from labswitch.usecases.coordinator import Coordinator
from labswitch.usecases.service import Service

log = logging.getLogger(__name__)
COMMANDS = 8  # messages that may wait for the worker; more are said and dropped


class Topics:
    def __init__(self, m: Mqtt) -> None:
        self.m = m
        self.root = f"{m.base_topic}/{m.lab_id}"
        self.availability = f"{self.root}/availability"
        self.run = f"{self.root}/run"
        self.energy = f"{self.root}/energy"

    def group_set(self, group: str) -> str:
        return f"{self.root}/group/{group}/set"

    def group_state(self, group: str) -> str:
        return f"{self.root}/group/{group}/state"

    def auto_down(self, group: str) -> str:
        return f"{self.root}/group/{group}/auto_down"

    def watts(self, server: str) -> str:
        return f"{self.root}/server/{server}/watts"

    def config(self, component: str, object_id: str) -> str:
        return f"{self.m.discovery_prefix}/{component}/labswitch_{self.m.lab_id}/{object_id}/config"


def discovery(config: Config, t: Topics) -> dict[str, dict[str, Any]]:
    """Home Assistant discovery: config topic -> payload (retained)."""
    lab = t.m.lab_id
    device = {"identifiers": [f"labswitch_{lab}"], "name": f"labswitch {lab}", "manufacturer": "labswitch", "sw_version": __version__}
    common = {"availability_topic": t.availability, "payload_available": "online", "payload_not_available": "offline", "device": device}
    out: dict[str, dict[str, Any]] = {}
    for group, g in config.groups.items():
        if g.always_on:
            continue
        out[t.config("switch", group)] = {
            **common,
            "name": f"{group} group",
            "unique_id": f"labswitch_{lab}_{group}",
            "command_topic": t.group_set(group),
            "state_topic": t.group_state(group),
            "payload_on": "ON",
            "payload_off": "OFF",
            "icon": "mdi:server-network",
        }
    for server in config.servers:
        out[t.config("sensor", f"{server.name}_power")] = {
            **common,
            "name": f"{server.name} power",
            "unique_id": f"labswitch_{lab}_{server.name}_power",
            "state_topic": t.watts(server.name),
            "unit_of_measurement": "W",
            "device_class": "power",
            "state_class": "measurement",
        }
    if config.policy.idle_down_after is not None:
        for group in idle.eligible(config):
            out[t.config("sensor", f"{group}_auto_down")] = {
                **common,
                "name": f"{group} idle auto-down",
                "unique_id": f"labswitch_{lab}_{group}_auto_down",
                "state_topic": t.auto_down(group),
                "device_class": "timestamp",
                "icon": "mdi:timer-sand",
            }
    out[t.config("sensor", "energy")] = {
        **common,
        "name": "energy",
        "unique_id": f"labswitch_{lab}_energy",
        "state_topic": t.energy,
        "unit_of_measurement": "kWh",
        "device_class": "energy",
        "state_class": "total_increasing",
    }
    out[t.config("binary_sensor", "run")] = {
        **common,
        "name": "run in progress",
        "unique_id": f"labswitch_{lab}_run",
        "state_topic": t.run,
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "running",
    }
    return out


class Bridge:
    """The MQTT side of the service: started with it, stopped with it (availability offline)."""

    def __init__(self, config: Config, service: Service, automation: Automation, coordinator: Coordinator) -> None:
        assert config.mqtt is not None
        self.config = config
        self.m = config.mqtt
        self.service = service
        self.automation = automation
        self.coordinator = coordinator
        self.t = Topics(self.m)
        self._stop = threading.Event()
        self._kick = threading.Event()
        parts = urlsplit(self.m.url)
        self.host, self.port = parts.hostname or "", parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"labswitch-{self.m.lab_id}")
        if parts.username:
            password = self.m.password.get_secret_value() if isinstance(self.m.password, SecretStr) else None
            self.client.username_pw_set(parts.username, password)
        if parts.scheme == "mqtts":
            self.client.tls_set_context(tls_context(self.m))
        self.client.will_set(self.t.availability, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self._thread = threading.Thread(target=self._publish_states, name="mqtt-states", daemon=True)
        self._commands: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=COMMANDS)
        self._worker = threading.Thread(target=self._handle_commands, name="mqtt-commands", daemon=True)
        coordinator.subscribe(lambda reading: self._kick.set())  # every round of the lab is published

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()  # paho's network thread: reconnects by itself
        self._thread.start()
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        with contextlib.suppress(queue.Full):
            self._commands.put_nowait(("", b""))  # wakes the worker, which sees the stop
        self.client.publish(self.t.availability, "offline", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def _connected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        for topic, payload in discovery(self.config, self.t).items():
            client.publish(topic, json.dumps(payload), qos=1, retain=True)
        client.publish(self.t.availability, "online", qos=1, retain=True)
        for group, g in self.config.groups.items():
            if not g.always_on:
                client.subscribe(self.t.group_set(group), qos=1)
        self._kick.set()  # states now

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """On paho's thread: queued for the one worker, in the order the broker delivered them."""
        try:
            self._commands.put_nowait((msg.topic, bytes(msg.payload[:64])))
        except queue.Full:
            log.warning("MQTT: %d messages waiting already; one on %s dropped", COMMANDS, msg.topic)

    def _handle_commands(self) -> None:
        while not self._stop.is_set():
            topic, payload = self._commands.get()
            if self._stop.is_set():
                return
            group = topic.removeprefix(f"{self.t.root}/group/").removesuffix("/set")
            command = payload.decode(errors="replace").strip().upper()
            if group not in self.config.groups or command not in ("ON", "OFF"):
                log.warning("MQTT: ignored %r on %s", command[:20], topic)
                continue
            self._run(Intent.UP if command == "ON" else Intent.DOWN, group)

    def _run(self, intent: Intent, group: str) -> None:
        try:
            self.service.start(intent, [group], restore=intent is Intent.UP, reason="mqtt")  # the service logs it
        except LabswitchError as exc:  # refused, another run in progress, unreachable: said, and the state stays what it is
            log.warning("MQTT: %s of %s not started: %s", intent, group, exc)
        self._kick.set()

    def _publish_states(self) -> None:
        failing = False  # a failed round is said once, with its cause, and so is the round that works again
        while not self._stop.is_set():
            try:
                self._publish_once()
                if failing:
                    failing = False
                    self.client.publish(self.t.availability, "online", qos=1, retain=True)
                    log.warning("MQTT: the lab's states are published again")
            except Exception as exc:  # noqa: BLE001 - whatever it was, Home Assistant must not show stale states as current
                if not failing:
                    failing = True
                    self.client.publish(self.t.availability, "offline", qos=1, retain=True)
                    log.warning("MQTT: reading the lab failed (%s); Home Assistant shows it unavailable until a round works", _said(exc))
            running = self.service.running() is not None
            self._kick.wait(2.0 if running else self.m.state_interval)  # while a run goes on, states follow it closely
            self._kick.clear()

    def _publish_once(self) -> None:
        power: dict[str, str] = {}
        for server, (state, watts) in self.coordinator.read().power.items():  # its latest round: no read of its own
            power[server] = str(state)
            if watts is not None:
                self.client.publish(self.t.watts(server), f"{watts:g}", qos=0, retain=True)
        for group, switch in group_states(self.config, power).items():
            self.client.publish(self.t.group_state(group), switch, qos=1, retain=True)
        self.client.publish(self.t.run, "ON" if self.service.running() is not None else "OFF", qos=1, retain=True)
        kwh = sum(energy.totals(self.config).values())
        self.client.publish(self.t.energy, f"{kwh:.4f}", qos=1, retain=True)
        if self.config.policy.idle_down_after is not None:
            countdowns = self.automation.countdowns()
            for group in idle.eligible(self.config):
                c = countdowns.get(group)  # "None": Home Assistant shows unknown (not idle, or off)
                at = dt.datetime.fromtimestamp(c.down_at, dt.UTC).isoformat(timespec="seconds") if c else "None"
                self.client.publish(self.t.auto_down(group), at, qos=1, retain=True)


def tls_context(m: Mqtt) -> ssl.SSLContext:
    """How labswitch meets an mqtts:// broker: the broker verified per [mqtt] tls, and the client certificate when
    given."""
    parts = urlsplit(m.url)
    host, port = parts.hostname or "", parts.port or 8883
    return client_certificate(tls.ssl_context(m.tls, host, port, f"MQTT broker {host}:{port}"), m)


def client_certificate(context: ssl.SSLContext, m: Mqtt) -> ssl.SSLContext:
    """``context`` with [mqtt] client_cert and client_key loaded (if given); ConfigError in one line when they do not
    load (`serve` checks it on a context of its own before it starts)."""
    if m.client_cert and m.client_key:
        try:
            context.load_cert_chain(m.client_cert, m.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt.client_cert: cannot load it with mqtt.client_key ({exc}); check both paths") from exc
    return context


def group_states(config: Config, power: Mapping[str, str]) -> dict[str, str]:
    """A group is ON while any of its servers is on (its BMC says so), OFF when all are off, and "None" (Home
    Assistant: unknown) when none is on but a BMC does not answer: never off on a guess."""
    out = {}
    for group, g in config.groups.items():
        if g.always_on:
            continue
        states = [power.get(s.name, "Unknown") for s in config.servers if s.group == group]  # not read: unknown
        if states:
            out[group] = "ON" if "On" in states else "OFF" if all(s == "Off" for s in states) else "None"
    return out


def _said(exc: BaseException) -> str:
    from labswitch.config.secrets import redact

    return redact(f"{type(exc).__name__}: {exc}" if not isinstance(exc, LabswitchError) else str(exc))
