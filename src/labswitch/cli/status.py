"""labswitch status"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer

from labswitch import render
from labswitch.bmc.grouped import grouped
from labswitch.cli import Json, State, app
from labswitch.errors import EXIT_FAILED
from labswitch.usecases.status import StatusReport, VMStatus, as_json, status


@app.command("status")
def status_command(
    ctx: typer.Context,
    vms: Annotated[
        bool | None,
        typer.Option(
            "--vms/--no-vms",
            help=f"List every VM (default: when the lab has at most {VM_TABLE_UP_TO}; else one line: how many are on).",
            show_default=False,
        ),
    ] = None,
    json_out: Json = False,
) -> None:
    """Show hosts (connection, maintenance, BMC power) and VMs (power, tools, tags), and every
    cluster setting a down changed that no up has restored yet (HA, vCLS retreat mode, vSAN power).

    Reads vCenter in bulk (without vCenter: every host through its own API, in parallel) and every
    BMC in parallel; changes nothing. Exit 1 when a BMC or vCenter could not be read (what was read is
    shown, the rest is unknown, each cause said once), else 0.

    Examples:

      labswitch status

      labswitch status --vms

      labswitch --config lab.toml status --json | jq '.vms[] | select(.power_state=="poweredOn") | .name'
    """
    state: State = ctx.obj
    report = status(state.config())
    if json_out:
        render.emit_json(as_json(report))
    else:
        show(report, vms if vms is not None else len(report.vms) <= VM_TABLE_UP_TO)
    if report.vcenter is not None and not json_out:
        render.stdout.print(f"vCenter: {report.vcenter.text}", markup=False, highlight=False)
    for cluster in report.clusters if not json_out else ():
        render.stdout.print(cluster.text, markup=False, highlight=False)
    for note in report.notes:
        render.note(note)
    for change in report.cluster_changes:
        render.note(change.text)
    for line in grouped({h.name: h.bmc_error for h in report.hosts if h.bmc_error}):
        render.note(line)
    if report.unread:
        raise typer.Exit(EXIT_FAILED)


VM_TABLE_UP_TO = 40  # a lab this small lists its VMs; a larger one says how many, and --vms lists them


def show(report: StatusReport, vm_table: bool = True) -> None:
    if report.platform == "proxmox":
        _show_proxmox(report, vm_table)
        return
    vms_on = Counter(v.host for v in report.vms if v.power_state == "poweredOn")
    vms_all = Counter(v.host for v in report.vms)
    render.table(
        "Hosts",
        ["HOST", "GROUP", "CLUSTER", "CONNECTION", "MAINTENANCE", "BMC POWER", "VMS ON"],
        (
            (
                h.name,
                h.group,
                h.cluster,
                h.connection_state,
                render.yes_no(h.in_maintenance),
                h.bmc_power,
                f"{vms_on[h.name]}/{vms_all[h.name]}" if vms_all[h.name] or h.in_maintenance is not None else "",
            )
            for h in report.hosts
        ),
    )
    on = sum(1 for v in report.vms if v.power_state == "poweredOn")
    if not vm_table:
        agents = sum(1 for v in report.vms if v.system == "vcls")
        among = f" (vCLS agents: {agents})" if agents else ""
        render.stdout.print(f"VMs: {on} of {len(report.vms)} on{among}; labswitch status --vms lists them", markup=False)
        return
    render.stdout.print()
    render.table(
        f"VMs ({on} of {len(report.vms)} on)",
        ["VM", "HOST", "POWER", "TOOLS", "TAGS"],
        ((_vm_label(v), v.host, v.power_state, "running" if v.tools_running else "-", ", ".join(v.tags)) for v in report.vms),
    )


def _vm_label(vm: VMStatus) -> str:
    """vSphere's own agents are marked: labswitch never stops or starts them."""
    return f"{vm.name} (vCLS)" if vm.system == "vcls" else vm.name


PVE_POWER = {"poweredOn": "running", "poweredOff": "stopped", "suspended": "paused"}


def _show_proxmox(report: StatusReport, vm_table: bool) -> None:
    """A Proxmox VE lab in its own words: nodes (in the cluster or not), guests (running, stopped)."""
    on = Counter(v.host for v in report.vms if v.power_state == "poweredOn")
    every = Counter(v.host for v in report.vms)
    in_cluster = {"connected": "online", "notResponding": "offline"}
    render.table(
        "Nodes",
        ["NODE", "GROUP", "CLUSTER", "IN CLUSTER", "BMC POWER", "GUESTS RUNNING"],
        (
            (h.name, h.group, h.cluster, in_cluster.get(h.connection_state or "", "-"), h.bmc_power, f"{on[h.name]}/{every[h.name]}")
            for h in report.hosts
        ),
    )
    running = sum(on.values())
    if not vm_table:
        render.stdout.print(f"Guests: {running} of {len(report.vms)} running; labswitch status --vms lists them", markup=False)
        return
    render.stdout.print()
    render.table(
        f"Guests ({running} of {len(report.vms)} running)",
        ["GUEST", "NODE", "STATE", "TAGS"],
        ((v.name, v.host, PVE_POWER.get(v.power_state, v.power_state), ", ".join(v.tags)) for v in report.vms),
    )
