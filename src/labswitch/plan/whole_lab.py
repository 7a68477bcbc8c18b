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
from labswitch.plan.off import confirm_off, off_fallbacks
from labswitch.snapshot import HostInfo, Snapshot, VMInfo, host_key, vm_key

PHASE = "vcenter-host"


@dataclass(frozen=True)
class Holder:
    """vCenter's own target host in a whole-lab down."""

    server: str
    host: HostInfo
    vcenter: VMInfo
    dependencies: tuple[VMInfo, ...]  # in start order
    peers: tuple[tuple[str, HostInfo], ...] = ()  # vCenter on vSAN: the cluster's other hosts, which go down after it too

    @property
    def vsan(self) -> bool:
        return bool(self.peers)


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
    peers: tuple[tuple[str, HostInfo], ...] = ()
    cluster = snap.cluster(host.cluster_moid)
    if cluster is not None and cluster.vsan:  # its storage needs every host: all go down after vCenter, through themselves
        targets = {h.moid: n for n, h in hosts.items() if h is not None}
        members = snap.hosts_in(cluster.moid)
        missing = [h.name for h in members if h.moid not in targets]
        if missing:
            refusals.append(
                f"vCenter runs on vSAN cluster {cluster.name}, and {', '.join(missing)} of it would stay up: a whole-lab down "
                "takes the whole vSAN cluster down after vCenter; add its groups"
            )
        peers = tuple((targets[h.moid], h) for h in members if h.moid in targets and h.moid != host.moid)
    if config.esxi is None:
        refusals.append(f"vCenter runs on {server}: a whole-lab down talks to that host directly; add [esxi] user and password")
    return Holder(server, host, vcenter, tuple(deps), peers)


def down_tail(config: Config, h: Holder, before: Sequence[Step], emptied: Sequence[str]) -> list[Step]:
    """vCenter's host's last steps, through the host (vCenter on vSAN: every host of its cluster's too, in
    parallel, once vCenter is off). The first waits for those hosts' other VMs to be off (``emptied``,
    done) and for every step of ``before`` to settle: vCenter is needed to the end."""
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
    stopped = (after, settled)
    for server, host in ((h.server, h.host), *h.peers):  # vSAN: every host of the cluster, once vCenter is off
        steps += _host_last(config, server, host, *stopped, no_action=h.vsan)
    return steps


def _host_last(
    config: Config, server: str, host: HostInfo, after: tuple[str, ...], settled: tuple[str, ...], no_action: bool
) -> list[Step]:
    """A host's own last steps, through itself: maintenance mode (vSAN: noAction), shutdown, confirmed off by the BMC."""
    endpoint = esxi(server)
    if not host.in_maintenance:
        action = Action.ENTER_MAINTENANCE_NO_ACTION if no_action else Action.ENTER_MAINTENANCE
        enter = Step(PHASE, action, server, host.moid, server, after=after, endpoint=endpoint, settled=settled)
        after, settled = (enter.id,), ()
        steps = [enter]
    else:
        steps = []
    off = Step("host-shutdown", Action.SHUTDOWN_HOST, server, host.moid, server, after=after, endpoint=endpoint, settled=settled)
    return [*steps, off, *off_fallbacks(config, off, feed=False)]  # vCenter is off by then: the BMC alone says when


def resume_down(
    config: Config,
    servers: Sequence[Server],
    server: str,
    vms: Sequence[tuple[str, str]],
    bmc_power: Mapping[str, Power],
    peers: Sequence[str] = (),
) -> list[Step]:
    """A whole-lab down interrupted after vCenter stopped, run again (vCenter does not answer): vCenter's
    host (and its vSAN peers) finished through themselves (``vms``: vCenter and its dependencies, (name,
    uuid), stop order), the other servers still on shut down by their BMCs."""
    steps: list[Step] = []
    for s in servers:
        if bmc_power.get(s.name) is Power.OFF:
            continue
        if s.name != server and s.name not in peers:
            by_bmc = Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, s.name, None, s.name, endpoint=bmc(s.name))
            steps += [by_bmc, *confirm_off(config, by_bmc)]
            continue
        after: tuple[str, ...] = ()
        for name, uuid in vms if s.name == server else ():
            stop = Step(PHASE, Action.SHUTDOWN_GUEST, name, vm_key(uuid), server, after=after, endpoint=esxi(server))
            steps.append(stop)
            after = (stop.id,)
        unknown = HostInfo(host_key(s.name), s.esxi, None, "connected", False, "poweredOn")  # its own port finds it
        steps += _host_last(config, s.name, unknown, after, (), no_action=bool(peers))
    return steps


def boot(
    servers: Sequence[Server],
    server: str,
    vcenter: tuple[str, str],
    deps: Sequence[tuple[str, str]],
    bmc_power: Mapping[str, Power],
    peers: Sequence[str] = (),
) -> list[Step]:
    """The first part of an up after a whole-lab down (vCenter is off): every target server off powered
    on by its BMC; through vCenter's host (and its vSAN peers: vCenter's storage needs them all), once
    each answers: out of maintenance; then each dependency started and its tools waited for, then
    vCenter's VM; then until vCenter answers."""
    steps: list[Step] = []
    powered: dict[str, tuple[str, ...]] = {}
    for s in servers:
        if bmc_power.get(s.name) is not Power.OFF:
            continue
        on = Step("power-on", Action.BMC_POWER_ON, s.name, None, s.name, endpoint=bmc(s.name))
        steps.append(on)
        powered[s.name] = (on.id,)
    endpoint = esxi(server)
    leaving = [Step(PHASE, Action.EXIT_MAINTENANCE, n, None, n, after=powered.get(n, ()), endpoint=esxi(n)) for n in (server, *peers)]
    steps += leaving
    after: tuple[str, ...] = tuple(s.id for s in leaving)
    for name, uuid in deps:
        start = Step(PHASE, Action.POWER_ON_VM, name, vm_key(uuid), server, after=after, endpoint=endpoint)
        tools = Step(PHASE, Action.WAIT_TOOLS, name, vm_key(uuid), server, after=(start.id,), endpoint=endpoint)
        steps += [start, tools]
        after = (tools.id,)
    start = Step(PHASE, Action.POWER_ON_VM, vcenter[0], vm_key(vcenter[1]), server, after=after, endpoint=endpoint)
    steps += [start, Step(PHASE, Action.WAIT_VCENTER, "vCenter", None, None, after=(start.id,))]
    return steps
