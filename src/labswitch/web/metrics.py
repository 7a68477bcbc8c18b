"""Prometheus metrics, collected when scraped: each server's power and watts (its BMC or meter), each
host's connection, VMs on per group, whether a run is in progress, the last run of each intent, the
energy counter from the journal's samples, and how long each group has been idle."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.usecases import energy
from labswitch.usecases.automation import Automation
from labswitch.usecases.coordinator import Coordinator
from labswitch.usecases.service import Service


class LabCollector(Collector):
    def __init__(self, config: Config, service: Service, automation: Automation, coordinator: Coordinator) -> None:
        self.config = config
        self.service = service
        self.automation = automation
        self.coordinator = coordinator

    def collect(self) -> Iterator[Metric]:
        power = GaugeMetricFamily(
            "labswitch_server_power_on", "1 when the server is on (its BMC or power driver says), 0 off", labels=["server"]
        )
        watts = GaugeMetricFamily("labswitch_server_power_watts", "The server's power draw now, in watts", labels=["server"])
        reading = self.coordinator.latest()  # the coordinator's latest round: a scrape never reads the lab, nor waits on it
        report, readings = (reading.report, reading.power) if reading is not None else (None, {})
        age = GaugeMetricFamily("labswitch_lab_read_age_seconds", "How old the lab's state in these metrics is (the last round)")
        if reading is not None:
            age.add_metric([], max(0.0, time.time() - reading.at))
            yield age
        states = GaugeMetricFamily(
            "labswitch_server_power_state",
            "1 for the server's power state as its BMC last said: on, off, or unknown (the BMC did not answer)",
            labels=["server", "state"],
        )
        for server, (state, draw) in readings.items():
            if state in (Power.ON, Power.OFF):  # unknown is no 0: absent here, "unknown" in power_state
                power.add_metric([server], 1.0 if state is Power.ON else 0.0)
            for name in ("on", "off", "unknown"):
                states.add_metric([server, name], 1.0 if str(state).lower() == name else 0.0)
            if draw is not None:
                watts.add_metric([server], draw)
        yield power
        yield states
        yield watts
        connected = GaugeMetricFamily(
            "labswitch_host_connected", "1 when the host is connected (to vCenter, or its API answers)", labels=["server"]
        )
        vms_on = GaugeMetricFamily(
            "labswitch_group_vms_on", "VMs powered on per group (vSphere's own agents not counted)", labels=["group"]
        )
        if report is not None:  # vCenter unreachable: those metrics are absent, the others stand
            group_of = {h.name: h.group for h in report.hosts}
            counts: dict[str, int] = {}
            for h in report.hosts:
                connected.add_metric([h.name], 1.0 if h.connection_state == "connected" else 0.0)
            for vm in report.vms:
                if vm.power_state == "poweredOn" and vm.system is None and group_of.get(vm.host or ""):
                    group = group_of[vm.host or ""] or ""
                    counts[group] = counts.get(group, 0) + 1
            for group in self.config.groups:
                vms_on.add_metric([group], float(counts.get(group, 0)))
            yield connected
            yield vms_on
        running = GaugeMetricFamily("labswitch_run_in_progress", "1 while a down or up runs (CLI or service)")
        running.add_metric([], 1.0 if self.service.running() is not None else 0.0)
        yield running
        last_ok = GaugeMetricFamily("labswitch_last_run_ok", "1 when the last run of this intent succeeded", labels=["intent"])
        last_seconds = GaugeMetricFamily(
            "labswitch_last_run_duration_seconds", "How long the last run of this intent took", labels=["intent"]
        )
        seen: set[str] = set()
        for run in self.service.history(200):
            if run.intent in seen or run.finished is None:
                continue
            seen.add(run.intent)
            last_ok.add_metric([run.intent], 1.0 if run.outcome == "ok" else 0.0)
            last_seconds.add_metric([run.intent], run.finished - run.started)
        yield last_ok
        yield last_seconds
        yield from self._energy()

    def _energy(self) -> Iterator[Metric]:
        kwh = CounterMetricFamily(
            "labswitch_energy_kwh", "Energy drawn since sampling began, from the service's samples (kWh)", labels=["server"]
        )
        totals = energy.totals(self.config)
        for server in self.config.servers:
            kwh.add_metric([server.name], totals.get(server.name, 0.0))
        yield kwh
        idle = GaugeMetricFamily(
            "labswitch_group_idle_seconds", "How long the group has been idle (policy.idle_down_after counts it)", labels=["group"]
        )
        for c in self.automation.countdowns().values():
            idle.add_metric([c.group], max(0.0, time.time() - c.idle_since))
        yield idle
