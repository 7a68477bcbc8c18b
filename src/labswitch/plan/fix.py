"""Fixes for audit findings (PURE), planned as power cycles are: a Plan of Steps the runner executes and the
journal records. L1TF: the option on each host, then (``--reboot``) one host's rolling reboot after another,
each starting once the previous host is back whole. CBT: one reset per VM, in parallel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from labswitch.audits import cbt_unmap, l1tf
from labswitch.config import Config
from labswitch.errors import ConfigError
from labswitch.plan.model import Action, Facts, Intent, Plan, Step
from labswitch.plan.reboot import make_reboot_plan
from labswitch.snapshot import HostInfo, Snapshot
from labswitch.words import count


def l1tf_plan(snap: Snapshot, config: Config, facts: Facts, names: Sequence[str], mitigate: bool, reboot: bool) -> Plan:
    """Set the mitigation (or hide the warning) on the named hosts, or on every host the l1tf audit flags; hosts
    already set are notes, not steps. With ``reboot`` (and ``mitigate``): each of those hosts rebooted in turn."""
    hosts = resolve_hosts(snap, names) if names else tuple(h for h in snap.hosts if h.name in {f.target for f in l1tf.check(snap)})
    key, value = (l1tf.MITIGATION, "true") if mitigate else (l1tf.SUPPRESS, "1")
    action = Action.L1TF_MITIGATE if mitigate else Action.L1TF_SUPPRESS_WARNING
    steps: list[Step] = []
    notes: list[str] = []
    refusals: list[str] = []
    for host in hosts:
        if host.connection_state != "connected":
            refusals.append(f"host {host.name} is {host.connection_state}; its options cannot be set")
        elif key not in host.options:
            refusals.append(f"host {host.name} has no option {key}; patch ESXi first (VMSA-2018-0020)")
        elif l1tf.truthy(host.options[key]):
            notes.append(f"host {host.name}: {key} is already {host.options[key]}")
        else:
            steps.append(Step("options", action, host.name, host.moid, host.name))
    if steps:
        effect = "; the rolling reboot puts it into effect" if reboot else "; takes effect after a reboot (--reboot)"
        notes.append(f"sets {key} = {value} on {count(len(steps), 'host')}" + (effect if mitigate else ""))
    if reboot and mitigate:
        before = tuple(s.id for s in steps)
        for host in hosts:
            one = make_reboot_plan(snap, config, facts, host)
            refusals += one.refusals
            notes += one.notes
            steps += _after(one.steps, before)
            before = tuple(s.id for s in one.steps if not s.fallback_of)  # the next host starts once this one is back whole
    groups = tuple(dict.fromkeys(s.group for s in config.servers for h in hosts if s.esxi == h.name))
    return Plan(Intent.FIX, groups, tuple(h.name for h in hosts), tuple(steps), tuple(refusals), tuple(notes))


def _after(steps: Sequence[Step], before: tuple[str, ...]) -> list[Step]:
    """A host's reboot chain, its first steps waiting for ``before``."""
    return [replace(s, after=before) if not s.after and not s.fallback_of else s for s in steps]


def resolve_hosts(snap: Snapshot, names: Sequence[str]) -> tuple[HostInfo, ...]:
    hosts = []
    for name in names:
        host = snap.host_by_name(name)
        if host is None:
            known = ", ".join(h.name for h in snap.hosts[:10]) + (" ..." if len(snap.hosts) > 10 else "")
            raise ConfigError(f"host {name!r}: not in vCenter (hosts: {known}); give a host's vCenter name")
        hosts.append(host)
    return tuple(dict.fromkeys(hosts))


def cbt_plan(snap: Snapshot, config: Config, names: Sequence[str], with_snapshots: bool) -> Plan:
    """KB 2139574 per VM: disable CBT, create and remove a snapshot, enable CBT."""
    steps, refusals, notes = [], [], []
    for name in dict.fromkeys(names):
        vm = snap.vm_by_name(name)
        if vm is None:
            raise ConfigError(f"VM {name!r}: not in vCenter; give the VM's name as vCenter shows it")
        if vm.template:
            refusals.append(f"VM {name} is a template; CBT cannot be reset on it")
        elif not vm.cbt:
            notes.append(f"VM {name}: CBT is off; nothing to reset")
        elif vm.has_snapshots and not with_snapshots:
            refusals.append(f"VM {name} has snapshots; consolidate them first, or pass --with-snapshots to reset CBT anyway")
        else:
            steps.append(Step("cbt", Action.CBT_RESET, name, vm.moid, snap.host_name(vm.host_moid)))
    if steps:
        notes.append(
            f"each VM: CBT off, snapshot {cbt_unmap.RESET_SNAPSHOT!r} created (no memory, no quiescing) and removed, CBT on;"
            " its next backup is a full one"
        )
    hosts = tuple(dict.fromkeys(s.server for s in steps if s.server))
    groups = tuple(dict.fromkeys(s.group for s in config.servers if s.esxi in hosts))
    return Plan(Intent.FIX, groups, hosts, tuple(steps), tuple(refusals), tuple(notes))
