"""What the page shows of the lab, as one JSON-able value: built from the coordinator's latest round (the same
status `labswitch status` reads), the run lock and the journal. The page renders it on load and again from every
``event: lab`` of /ui/lab/events, so its groups, hosts, VMs and runs follow the lab while a run goes on, with no
reload. Energy figures are the page's own panel (web/page.py), read from the journal, not from here."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.journal import RunRecord
from labswitch.usecases.automation import Automation
from labswitch.usecases.coordinator import Reading
from labswitch.usecases.service import Service
from labswitch.usecases.status import HostStatus, StatusReport, VMStatus

RUNS_SHOWN = 8


def lab(config: Config, service: Service, automation: Automation, reading: Reading) -> dict[str, Any]:
    """The page's lab: groups and their servers, every host's VMs, vCenter, cluster changes, the run in progress and
    the last runs. A round that could not read vCenter still shows every server's power from its BMC."""
    report = reading.report
    holder = service.running()
    hosts = _hosts(config, report, reading.power)
    return {
        "read_at": reading.at,
        "read_error": reading.error,
        "vcenter": _vcenter(config, report, reading.error),
        "groups": _groups(config, automation, hosts, holder.groups if holder else (), holder.intent if holder else None),
        "hosts": list(hosts.values()),
        "cluster_changes": [{"cluster": c.cluster, "setting": c.setting, "text": c.text} for c in report.cluster_changes] if report else [],
        "running": {"run_id": holder.run_id, "what": holder.describe()} if holder else None,
        "runs": [run_row(r) for r in service.history(RUNS_SHOWN)],
        "watts": round(sum(w or 0 for _, w in reading.power.values())),
        "notes": list(report.notes) if report else [],
    }


def _hosts(config: Config, report: StatusReport | None, power: Mapping[str, tuple[Power, float | None]]) -> dict[str, dict[str, Any]]:
    """Every host by name: the configured servers first (in the config's order), then hosts vCenter has that no
    server names; each with its power, connection, draw and VMs."""
    by_name: dict[str, HostStatus] = {h.name: h for h in report.hosts} if report else {}
    vms: dict[str | None, list[VMStatus]] = {}
    for vm in report.vms if report else ():
        vms.setdefault(vm.host, []).append(vm)
    out: dict[str, dict[str, Any]] = {}
    names = [s.name for s in config.servers] + [h for h in by_name if h not in {s.name for s in config.servers}]
    for name in names:
        h = by_name.get(name)
        read = power.get(name)
        mine = sorted(vms.get(name, []), key=lambda v: (v.system is not None, v.name))
        out[name] = {
            "name": name,
            "group": h.group if h else next((s.group for s in config.servers if s.name == name), None),
            "cluster": h.cluster if h else None,
            "power": h.bmc_power if h else (str(read[0]) if read else "Unknown"),
            "power_error": h.bmc_error if h else None,
            "connection": h.connection_state if h else None,
            "maintenance": h.in_maintenance if h else None,
            "watts": h.watts if h else (read[1] if read else None),
            "vms_on": sum(1 for v in mine if v.power_state == "poweredOn" and v.system is None),
            "vms": [
                {"name": v.name, "power": v.power_state, "tags": list(v.tags), "system": v.system, "tools": v.tools_running} for v in mine
            ],
        }
    return out


def _groups(
    config: Config, automation: Automation, hosts: Mapping[str, dict[str, Any]], running: tuple[str, ...], intent: str | None
) -> list[dict[str, Any]]:
    countdowns = automation.countdowns()
    upcoming = automation.upcoming()
    out = []
    for name, group in config.groups.items():
        members = [s.name for s in config.servers if s.group == name]
        powers = [hosts[m]["power"] for m in members]
        if not powers:
            state = "no servers"
        elif any(p not in ("On", "Off") for p in powers):
            state = "unknown"  # a BMC that does not answer: never "off" (or "on") on a guess
        elif all(p == "On" for p in powers):
            state = "on"
        else:
            state = "off" if all(p == "Off" for p in powers) else "partly on"
        if name in running:
            state = "going down" if intent == "down" else "coming up"
        countdown = countdowns.get(name)
        nxt = next((u for u in upcoming if name in u.schedule.groups or (not u.schedule.groups and not group.always_on)), None)
        out.append(
            {
                "name": name,
                "always_on": group.always_on,
                "state": state,
                "servers": members,
                "down_at": countdown.down_at if countdown else None,
                "next": f"{nxt.schedule.action} {nxt.at:%a %H:%M}" if nxt else None,
            }
        )
    return out


def _vcenter(config: Config, report: StatusReport | None, error: str | None) -> dict[str, Any] | None:
    """vCenter's state in words: up (and where its VM runs), off (a whole-lab down stopped it), or not answering."""
    if config.vcenter is None:
        return None
    if report is None:
        return {"state": "not answering", "text": f"not answering: {error}" if error else "not answering", "vm": None, "host": None}
    if report.vcenter is None:
        return None
    v = report.vcenter
    return {"state": v.state, "text": v.text, "vm": v.vm, "host": v.host}


def run_row(r: RunRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "intent": r.intent,
        "groups": ", ".join(r.groups),
        "outcome": r.outcome,
        "reason": r.reason or "",
        "started": time.strftime("%b %d %H:%M", time.localtime(r.started)),
        "started_at": r.started,
    }
