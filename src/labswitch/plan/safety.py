"""Safety rules of the planner (PURE): what must never be switched off under the user — vCenter, this
machine, protected VMs, the last host of a VM that cannot move — as refusals with their reasons."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from labswitch.config import Config, Server
from labswitch.hostnet import is_ip
from labswitch.plan.model import Facts
from labswitch.plan.waves import has_tag
from labswitch.plan.whole_lab import Holder
from labswitch.snapshot import HostInfo, Snapshot, VMInfo


def _safety(
    snap: Snapshot,
    config: Config,
    facts: Facts,
    servers: list[Server],
    hosts: Mapping[str, HostInfo | None],
    holder: Holder | None,
) -> list[str]:
    refusals = []
    for server in servers:
        host = hosts[server.name]
        if host is not None:
            group = server.group if config.groups[server.group].always_on else None
            refusals += _host_safety(snap, config, facts, host, server.name, holder.vcenter if holder else None, group)
    return refusals


def _host_safety(
    snap: Snapshot, config: Config, facts: Facts, host: HostInfo, label: str, last: VMInfo | None = None, always_on: str | None = None
) -> list[str]:
    """Why the VMs on ``host`` must not be stopped: the vCenter (unless it is ``last``: a whole-lab down
    stops it last, through its host), labswitch's own machine, protected VMs. ``always_on``: the host's group
    when it is always_on (then vCenter is where it belongs: the advice is to leave the group on)."""
    refusals = []
    self_ids = {a for a in facts.self_addresses if not _loopback(a)}
    for vm in snap.vms_on(host.moid):
        ids = _identities(vm)
        if vm != last and is_vcenter_vm(vm, _vcenter_vm(config), facts.vcenter_addresses):
            where = f"{label}, a host of the always-on group {always_on}" if always_on else label
            advice = f"leave {always_on} on" if always_on else "move it to an always-on host"
            refusals.append(
                f"VM {vm.name} is the vCenter and runs on {where}; {advice}, "
                "or take the whole lab down with --whole-lab (vCenter last, through its host)"
            )
        if ids & _with_short_names(self_ids):
            refusals.append(f"VM {vm.name} is the machine running labswitch and runs on {label}; run labswitch elsewhere")
        refusals += protected(config, vm, f"VM {vm.name} on {label}")
    return refusals


def protected(config: Config, vm: VMInfo, said: str) -> list[str]:
    """policy.protect (name globs) and policy.protect_tag: a VM or guest no down may stop, on every platform."""
    out = []
    if any(fnmatchcase(vm.name.lower(), glob.lower()) for glob in config.policy.protect):
        out.append(f"{said} matches policy.protect; move it or change the policy")
    if config.policy.protect_tag and has_tag(vm, config.policy.protect_tag):
        out.append(f"{said} carries the protect tag {config.policy.protect_tag}")
    return out


def _vcenter_vm(config: Config) -> str | None:
    return config.vcenter.vm if config.vcenter is not None else None


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
