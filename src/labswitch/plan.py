"""The planner. PURE: (snapshot, config, facts, intent) -> Plan. No I/O, so every ordering
and safety rule is a fast unit test on a hand-built snapshot.

down: guest-shutdown -> power-off -> maintenance -> host-shutdown (vSphere, confirmed off by the BMC)
up:   power-on (BMC) -> connect -> maintenance (exit) -> start:<wave> ... -> start:remaining
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from labswitch.bmc import Power
from labswitch.config import Config, Server, Wave
from labswitch.errors import ConfigError
from labswitch.hostnet import is_ip
from labswitch.snapshot import HostInfo, Snapshot, VMInfo


class Intent(enum.StrEnum):
    DOWN = "down"
    UP = "up"
    REBOOT = "reboot"  # one host: guests down, maintenance, reboot, back, guests up again


class Action(enum.StrEnum):
    """What a step does; the same words in plan, run, journal, JSON and the live view."""

    SHUTDOWN_GUEST = "shutdown-guest"
    POWER_OFF_VM = "power-off-vm"
    LEAVE_RUNNING = "leave-running"
    ENTER_MAINTENANCE = "enter-maintenance"
    SHUTDOWN_HOST = "shutdown-host"
    BMC_GRACEFUL_SHUTDOWN = "bmc-graceful-shutdown"
    CONFIRM_OFF = "confirm-off"
    BMC_FALLBACK = "bmc-fallback"
    BMC_POWER_ON = "bmc-power-on"
    WAIT_CONNECTED = "wait-connected"
    EXIT_MAINTENANCE = "exit-maintenance"
    POWER_ON_VM = "power-on-vm"
    REBOOT_HOST = "reboot-host"


class Status(enum.StrEnum):
    """How a step ended."""

    OK = "ok"
    FALLBACK = "fallback"  # did not work; the policy's fallback completed it
    FAILED = "failed"
    SKIPPED = "skipped"  # not attempted: what it needed did not happen

    @property
    def is_failure(self) -> bool:
        """Not done: failed, or skipped because something it needed failed (a fallback counts as done)."""
        return self in (Status.FAILED, Status.SKIPPED)


@dataclass(frozen=True)
class Facts:
    """What the planner knows beyond the snapshot, gathered by the use case."""

    vcenter_addresses: frozenset[str]  # the vCenter URL's host and its addresses, lower case
    self_addresses: frozenset[str]  # this machine's host names and addresses, lower case
    bmc_power: Mapping[str, Power]  # server name -> power (Unknown when unreadable)
    bmc_errors: Mapping[str, str] = field(default_factory=dict)
    restore: frozenset[str] | None = None  # VM moids to start (up --restore); None: the start-up tag


@dataclass(frozen=True)
class Step:
    phase: str
    action: str
    target: str  # a VM name or a server name
    moid: str | None = None  # the VM or host it acts on
    server: str | None = None  # the config server it belongs to
    wave: int | None = None  # up: index into the waves (len(waves) for "remaining")


@dataclass(frozen=True)
class Plan:
    intent: Intent
    groups: tuple[str, ...]
    servers: tuple[str, ...]
    steps: tuple[Step, ...]
    refusals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    waves: tuple[Wave, ...] = ()

    def phase(self, name: str) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.phase == name)

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.phase for s in self.steps))


def target_groups(config: Config, requested: Sequence[str], intent: Intent) -> tuple[str, ...]:
    """The groups a command acts on: those named, or every group that is not always_on."""
    for name in requested:
        if name not in config.groups:
            known = ", ".join(sorted(config.groups)) or "none"
            raise ConfigError(f"--group {name}: no such group (groups: {known}); see [groups.NAME] in the config")
    if requested:
        return tuple(dict.fromkeys(requested))
    return tuple(name for name, group in config.groups.items() if not group.always_on)


def make_plan(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    intent: Intent,
    groups: Sequence[str],
    skip_unreachable: bool = False,
) -> Plan:
    refusals: list[str] = []
    notes: list[str] = []
    if intent is Intent.DOWN:
        for name in groups:
            if config.groups[name].always_on:
                refusals.append(f"group {name} is always_on; it is never switched off (set always_on = false to allow it)")
    servers: list[Server] = []
    for server in (s for s in config.servers if s.group in groups):
        if facts.bmc_power.get(server.name, Power.UNKNOWN) is Power.UNKNOWN:
            reason = facts.bmc_errors.get(server.name, f"server {server.name}: BMC unreachable")
            if skip_unreachable:
                notes.append(f"{reason}; left out (--skip-unreachable)")
                continue
            refusals.append(f"{reason}; fix it or pass --skip-unreachable to leave the server out")
        servers.append(server)
    hosts = {s.name: snap.host_by_name(s.esxi) for s in servers}
    for s in servers:
        if hosts[s.name] is None:
            notes.append(f"server {s.name}: no host {s.esxi!r} in vCenter; only its BMC is used")
    if intent is Intent.DOWN:
        refusals += _safety(snap, config, facts, servers, hosts)
        steps = _down(snap, config, facts, servers, hosts, notes)
    else:
        steps = _up(snap, config, facts, servers, hosts)
    return Plan(
        intent=intent,
        groups=tuple(groups),
        servers=tuple(s.name for s in servers),
        steps=tuple(steps),
        refusals=tuple(refusals),
        notes=tuple(notes),
        waves=tuple(config.startup.waves),
    )


# -- safety ------------------------------------------------------------------------------
def _safety(snap: Snapshot, config: Config, facts: Facts, servers: list[Server], hosts: Mapping[str, HostInfo | None]) -> list[str]:
    refusals = []
    for server in servers:
        host = hosts[server.name]
        if host is not None:
            refusals += _host_safety(snap, config, facts, host, server.name)
    return refusals


def _host_safety(snap: Snapshot, config: Config, facts: Facts, host: HostInfo, label: str) -> list[str]:
    """Why the VMs on ``host`` must not be stopped: the vCenter, labswitch's own machine, protected VMs."""
    refusals = []
    self_ids = {a for a in facts.self_addresses if not _loopback(a)}
    for vm in snap.vms_on(host.moid):
        ids = _identities(vm)
        if is_vcenter_vm(vm, config.vcenter.vm, facts.vcenter_addresses):
            refusals.append(f"VM {vm.name} is the vCenter and runs on {label}; move it to an always-on host first")
        if ids & _with_short_names(self_ids):
            refusals.append(f"VM {vm.name} is the machine running labswitch and runs on {label}; run labswitch elsewhere")
        if any(fnmatchcase(vm.name.lower(), glob.lower()) for glob in config.policy.protect):
            refusals.append(f"VM {vm.name} on {label} matches policy.protect; move it or change the policy")
        if config.policy.protect_tag and has_tag(vm, config.policy.protect_tag):
            refusals.append(f"VM {vm.name} on {label} carries the protect tag {config.policy.protect_tag}")
    return refusals


def is_vcenter_vm(vm: VMInfo, configured_name: str | None, vcenter_addresses: Iterable[str]) -> bool:
    """The one rule for "this VM is the vCenter": ``vcenter.vm`` names it, or its guest IP or host
    name (short names too) is the vCenter URL's host or one of its addresses."""
    if configured_name and vm.name == configured_name:
        return True
    return bool(_identities(vm) & _with_short_names(vcenter_addresses))


def _identities(vm: VMInfo) -> set[str]:
    ids = {x.lower() for x in (vm.guest_ip, vm.guest_hostname) if x}
    return _with_short_names(ids)


def _with_short_names(names: Iterable[str]) -> set[str]:
    out = set(names)
    out |= {n.split(".", 1)[0] for n in out if "." in n and not is_ip(n)}
    return out


def _loopback(text: str) -> bool:
    return text == "localhost" or (is_ip(text) and ipaddress.ip_address(text).is_loopback)


def has_tag(vm: VMInfo, wanted: str) -> bool:
    """``wanted`` is "Category/Tag" (exact) or "Tag" (in any category)."""
    if "/" in wanted:
        return wanted in vm.tags
    return any(t.split("/", 1)[-1] == wanted for t in vm.tags)


def wave_of(vm: VMInfo, waves: Sequence[Wave]) -> int:
    """The first wave naming the VM (by glob or tag); len(waves) when none does."""
    for i, wave in enumerate(waves):
        if any(fnmatchcase(vm.name, g) for g in wave.vms) or any(has_tag(vm, t) for t in wave.tags):
            return i
    return len(waves)


# -- down --------------------------------------------------------------------------------
def _down(
    snap: Snapshot, config: Config, facts: Facts, servers: list[Server], hosts: Mapping[str, HostInfo | None], notes: list[str]
) -> list[Step]:
    waves = config.startup.waves
    guest: list[tuple[VMInfo, str]] = []
    hard: list[Step] = []
    maintenance, shutdown = [], []
    for server in servers:
        host = hosts[server.name]
        if facts.bmc_power.get(server.name) is Power.OFF:
            continue  # already down: nothing to do
        if host is None or host.connection_state != "connected":
            shutdown.append(Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, server.name, host.moid if host else None, server.name))
            continue
        blocked = _stop_vms(snap, config, host, server.name, guest, hard)
        if blocked:
            notes.append(f"server {server.name}: VMs without VMware Tools stay on (policy.hard_power_off = false); the host stays on")
            continue
        if not host.in_maintenance:
            maintenance.append(Step("maintenance", Action.ENTER_MAINTENANCE, server.name, host.moid, server.name))
        shutdown.append(Step("host-shutdown", Action.SHUTDOWN_HOST, server.name, host.moid, server.name))
    return _guest_steps(guest, waves) + hard + maintenance + shutdown


def _stop_vms(snap: Snapshot, config: Config, host: HostInfo, label: str, guest: list[tuple[VMInfo, str]], hard: list[Step]) -> bool:
    """Add the steps that stop the powered-on VMs of ``host``; True when one must stay on (the host too)."""
    blocked = False
    for vm in snap.vms_on(host.moid):
        if vm.power_state != "poweredOn":
            continue
        if vm.tools_running:
            guest.append((vm, label))
        elif config.policy.hard_power_off:
            hard.append(Step("power-off", Action.POWER_OFF_VM, vm.name, vm.moid, label))
        else:
            hard.append(Step("power-off", Action.LEAVE_RUNNING, vm.name, vm.moid, label))
            blocked = True
    return blocked


def _guest_steps(guest: list[tuple[VMInfo, str]], waves: Sequence[Wave]) -> list[Step]:
    # Reverse start-up order: the last wave's VMs are asked first.
    guest.sort(key=lambda pair: (-wave_of(pair[0], waves), pair[0].name))
    return [Step("guest-shutdown", Action.SHUTDOWN_GUEST, vm.name, vm.moid, label) for vm, label in guest]


# -- reboot ------------------------------------------------------------------------------
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
    running = [vm for vm in snap.vms_on(host.moid) if vm.power_state == "poweredOn"]
    steps = _guest_steps(guest, config.startup.waves) + hard
    if not host.in_maintenance:
        steps.append(Step("maintenance", Action.ENTER_MAINTENANCE, label, host.moid, label))
    else:
        notes.append(f"host {label} is in maintenance mode already; it is left in it after the reboot")
    steps += [Step("reboot", Action.REBOOT_HOST, label, host.moid, label), Step("connect", Action.WAIT_CONNECTED, label, host.moid, label)]
    if not host.in_maintenance:
        steps.append(Step("maintenance-exit", Action.EXIT_MAINTENANCE, label, host.moid, label))
    steps += [Step("start:restore", Action.POWER_ON_VM, vm.name, vm.moid, label) for vm in sorted(running, key=lambda v: v.name)]
    return Plan(Intent.REBOOT, (), (label,), tuple(steps), tuple(refusals), tuple(notes))


# -- up ----------------------------------------------------------------------------------
def _up(snap: Snapshot, config: Config, facts: Facts, servers: list[Server], hosts: Mapping[str, HostInfo | None]) -> list[Step]:
    power_on, connect, maintenance, start = [], [], [], []
    waves = config.startup.waves
    for server in servers:
        host = hosts[server.name]
        off = facts.bmc_power.get(server.name) is Power.OFF
        if off:
            power_on.append(Step("power-on", Action.BMC_POWER_ON, server.name, host.moid if host else None, server.name))
        if host is None:
            continue
        if off or host.connection_state != "connected":
            connect.append(Step("connect", Action.WAIT_CONNECTED, server.name, host.moid, server.name))
        if off or host.connection_state != "connected" or host.in_maintenance:
            maintenance.append(Step("maintenance", Action.EXIT_MAINTENANCE, server.name, host.moid, server.name))
        for vm in snap.vms_on(host.moid):
            if vm.template or vm.power_state == "poweredOn":
                continue
            selected = vm.moid in facts.restore if facts.restore is not None else has_tag(vm, config.policy.startup_tag)
            if selected:
                start.append((wave_of(vm, waves), vm, server))
    start.sort(key=lambda t: (t[0], t[1].name))
    start_steps = [Step(wave_phase(i, waves), Action.POWER_ON_VM, vm.name, vm.moid, server.name, wave=i) for i, vm, server in start]
    return power_on + connect + maintenance + start_steps


def wave_phase(index: int, waves: Sequence[Wave]) -> str:
    if index >= len(waves):
        return "start:remaining"
    return f"start:{waves[index].name or index + 1}"
