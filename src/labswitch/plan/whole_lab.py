"""The whole lab, vCenter included (PURE): the host that runs vCenter goes down last and comes up first,
through its own API.

down: every other target host goes down through vCenter as usual, and vCenter's host's other VMs
      stop through vCenter; once all of that has settled, through the host itself: vCenter's VM
      shut down, then the VMs it needs (policy.vcenter_dependencies, in reverse start order),
      maintenance mode, ESXi shutdown, confirmed off by the BMC.
up:   (vCenter off) every target server powered on by its BMC; through vCenter's host, as soon as
      it answers: out of maintenance mode, the dependencies started (each until its tools run),
      then vCenter's VM; then until vCenter's SOAP and REST APIs answer. The usual up follows.

Through a host, VMs are named by instance UUID (the host's ids are not vCenter's): the journal
records them so, and the host port translates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from labswitch.bmc import Power
from labswitch.config import Config, Server
from labswitch.plan.model import Action, Step, bmc, esxi
from labswitch.snapshot import HostInfo, Snapshot, VMInfo, vm_key

PHASE = "vcenter-host"


@dataclass(frozen=True)
class Holder:
    """vCenter's own target host in a whole-lab down."""

    server: str
    host: HostInfo
    vcenter: VMInfo
    dependencies: tuple[VMInfo, ...]  # in start order


def dependencies(snap: Snapshot, globs: Sequence[str]) -> list[VMInfo]:
    """The VMs policy.vcenter_dependencies names, in start order (the globs' order, then by name)."""
    out: list[VMInfo] = []
    for glob in globs:
        out += [vm for vm in snap.vms if fnmatchcase(vm.name.lower(), glob.lower()) and vm not in out]
    return out


def find_holder(
    snap: Snapshot,
    config: Config,
    hosts: Mapping[str, HostInfo | None],
    is_vcenter: Callable[[VMInfo], bool],
    refusals: list[str],
    notes: list[str],
) -> Holder | None:
    """The target host vCenter runs on (None: none does; the down is an ordinary one), and why the
    whole-lab down cannot be done as planned (added to ``refusals``)."""
    found = [(name, h, vm) for name, h in hosts.items() if h is not None for vm in snap.vms_on(h.moid) if is_vcenter(vm)]
    if not found:
        notes.append("whole lab: vCenter's VM runs on no target host; the down is an ordinary one")
        return None
    server, host, vcenter = found[0]
    deps = dependencies(snap, config.policy.vcenter_dependencies)
    for vm in [vcenter, *deps]:
        if not vm.uuid:
            refusals.append(f"VM {vm.name}: vCenter reports no instance UUID; it cannot be found through host {server} later")
    for vm in deps:
        if vm.host_moid != host.moid:
            where = next((n for n, h in hosts.items() if h is not None and h.moid == vm.host_moid), "another host")
            refusals.append(
                f"VM {vm.name} (policy.vcenter_dependencies) runs on {where}, not on vCenter's host {server}; "
                f"move it to {server} so that vCenter keeps it to the end"
            )
        elif vm.power_state == "poweredOn" and not vm.tools_running and not config.policy.hard_power_off:
            refusals.append(f"VM {vm.name} (policy.vcenter_dependencies) has no VMware Tools; start them or set policy.hard_power_off")
    cluster = snap.cluster(host.cluster_moid)
    if cluster is not None and cluster.vsan:
        refusals.append(
            f"vCenter runs on vSAN cluster {cluster.name}: a whole-lab down of a vSAN cluster is not supported yet; "
            "use vSAN's shutdown wizard for it"
        )
    if config.esxi is None:
        refusals.append(f"vCenter runs on {server}: a whole-lab down talks to that host directly; add [esxi] user and password")
    return Holder(server, host, vcenter, tuple(deps))


def down_tail(config: Config, h: Holder, before: Sequence[Step], emptied: Sequence[str]) -> list[Step]:
    """vCenter's host's last steps, through the host. The first waits for the host's other VMs to be off
    (``emptied``, done) and for every step of ``before`` to settle: vCenter is needed to the end."""
    endpoint = esxi(h.server)
    settled = tuple(s.id for s in before if not s.fallback_of)
    steps: list[Step] = []
    after: tuple[str, ...] = tuple(emptied)
    for vm in (h.vcenter, *reversed(h.dependencies)):
        if vm.power_state != "poweredOn":
            continue
        action = Action.SHUTDOWN_GUEST if vm.tools_running else Action.POWER_OFF_VM
        stop = Step(PHASE, action, vm.name, vm_key(vm.uuid or ""), h.server, after=after, endpoint=endpoint, settled=settled)
        steps.append(stop)
        if action is Action.SHUTDOWN_GUEST and config.policy.hard_power_off:
            steps.append(Step(PHASE, Action.POWER_OFF_VM, vm.name, stop.moid, h.server, endpoint=endpoint, fallback_of=stop.id))
        after, settled = (stop.id,), ()
    if not h.host.in_maintenance:
        enter = Step(PHASE, Action.ENTER_MAINTENANCE, h.server, h.host.moid, h.server, after=after, endpoint=endpoint, settled=settled)
        steps.append(enter)
        after, settled = (enter.id,), ()
    off = Step("host-shutdown", Action.SHUTDOWN_HOST, h.server, h.host.moid, h.server, after=after, endpoint=endpoint, settled=settled)
    steps += [
        off,
        Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, h.server, None, h.server, endpoint=bmc(h.server), fallback_of=off.id),
        # No moid: vCenter is off by then; the BMC alone says when the server is off.
        Step("host-shutdown", Action.CONFIRM_OFF, h.server, None, h.server, after=(off.id,), endpoint=bmc(h.server)),
    ]
    return steps


def resume_down(
    config: Config, servers: Sequence[Server], server: str, vms: Sequence[tuple[str, str]], bmc_power: Mapping[str, Power]
) -> list[Step]:
    """A whole-lab down interrupted after vCenter stopped, run again (vCenter does not answer): vCenter's
    host finished through the host (``vms``: vCenter and its dependencies, (name, uuid), stop order), the
    other servers still on shut down by their BMCs."""
    steps: list[Step] = []
    endpoint = esxi(server)
    for s in servers:
        if bmc_power.get(s.name) is Power.OFF:
            continue
        if s.name != server:
            by_bmc = Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, s.name, None, s.name, endpoint=bmc(s.name))
            steps += [by_bmc, Step("host-shutdown", Action.CONFIRM_OFF, s.name, None, s.name, after=(by_bmc.id,), endpoint=bmc(s.name))]
            continue
        after: tuple[str, ...] = ()
        for name, uuid in vms:
            stop = Step(PHASE, Action.SHUTDOWN_GUEST, name, vm_key(uuid), server, after=after, endpoint=endpoint)
            steps.append(stop)
            after = (stop.id,)
        enter = Step(PHASE, Action.ENTER_MAINTENANCE, server, None, server, after=after, endpoint=endpoint)
        off = Step("host-shutdown", Action.SHUTDOWN_HOST, server, None, server, after=(enter.id,), endpoint=endpoint)
        steps += [
            enter,
            off,
            Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, server, None, server, endpoint=bmc(server), fallback_of=off.id),
            Step("host-shutdown", Action.CONFIRM_OFF, server, None, server, after=(off.id,), endpoint=bmc(server)),
        ]
    return steps


def boot(
    servers: Sequence[Server], server: str, vcenter: tuple[str, str], deps: Sequence[tuple[str, str]], bmc_power: Mapping[str, Power]
) -> list[Step]:
    """The first part of an up after a whole-lab down (vCenter is off): every target server off powered
    on by its BMC; through vCenter's host, once it answers: out of maintenance, each dependency started
    and its tools waited for, then vCenter's VM; then until vCenter answers."""
    steps: list[Step] = []
    first: tuple[str, ...] = ()
    for s in servers:
        if bmc_power.get(s.name) is not Power.OFF:
            continue
        on = Step("power-on", Action.BMC_POWER_ON, s.name, None, s.name, endpoint=bmc(s.name))
        steps.append(on)
        if s.name == server:
            first = (on.id,)
    endpoint = esxi(server)
    leave = Step(PHASE, Action.EXIT_MAINTENANCE, server, None, server, after=first, endpoint=endpoint)
    steps.append(leave)
    after: tuple[str, ...] = (leave.id,)
    for name, uuid in deps:
        start = Step(PHASE, Action.POWER_ON_VM, name, vm_key(uuid), server, after=after, endpoint=endpoint)
        tools = Step(PHASE, Action.WAIT_TOOLS, name, vm_key(uuid), server, after=(start.id,), endpoint=endpoint)
        steps += [start, tools]
        after = (tools.id,)
    start = Step(PHASE, Action.POWER_ON_VM, vcenter[0], vm_key(vcenter[1]), server, after=after, endpoint=endpoint)
    steps += [start, Step(PHASE, Action.WAIT_VCENTER, "vCenter", None, None, after=(start.id,))]
    return steps
