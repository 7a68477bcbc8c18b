"""One host of a rolling reboot (PURE): guests down, maintenance, reboot, back, the same guests up."""

from __future__ import annotations

from labswitch.config import Config
from labswitch.plan.down import _guest_steps, _stop_vms
from labswitch.plan.model import Action, Facts, Intent, Plan, Step
from labswitch.plan.safety import _host_safety
from labswitch.snapshot import HostInfo, Snapshot, VMInfo


def make_reboot_plan(snap: Snapshot, config: Config, facts: Facts, host: HostInfo) -> Plan:
    """One host of a rolling reboot: its running VMs stopped, maintenance, reboot through vSphere,
    reconnected, out of maintenance, and the same VMs started again."""
    label = host.name
    refusals = _host_safety(snap, config, facts, host, label)
    if host.connection_state != "connected":
        refusals.append(f"host {label} is {host.connection_state}; it cannot be rebooted through vCenter")
    guest: list[tuple[VMInfo, str]] = []
    hard: list[Step] = []
    notes = []
    if _stop_vms(snap, config, host, label, guest, hard):
        refusals.append(f"host {label} runs VMs without VMware Tools and policy.hard_power_off is false; it cannot be emptied")
    running = [vm for vm in snap.workload_on(host.moid) if vm.power_state == "poweredOn"]
    steps = _guest_steps(guest, config.startup.waves, config) + hard
    last = tuple(s.id for s in steps if not s.fallback_of)
    chain: list[tuple[str, Action]] = []
    if not host.in_maintenance:
        chain.append(("maintenance", Action.ENTER_MAINTENANCE))
    else:
        notes.append(f"host {label} is in maintenance mode already; it is left in it after the reboot")
    chain += [("reboot", Action.REBOOT_HOST), ("connect", Action.WAIT_CONNECTED)]
    if not host.in_maintenance:
        chain.append(("maintenance-exit", Action.EXIT_MAINTENANCE))
    for phase, action in chain:
        step = Step(phase, action, label, host.moid, label, after=last)
        steps.append(step)
        last = (step.id,)
    steps += [
        Step("start:restore", Action.POWER_ON_VM, vm.name, vm.moid, label, after=last) for vm in sorted(running, key=lambda v: v.name)
    ]
    groups = tuple(dict.fromkeys(s.group for s in config.servers if s.esxi == host.name))  # none: a host labswitch does not manage
    return Plan(Intent.REBOOT, groups, (label,), tuple(steps), tuple(refusals), tuple(notes))
