"""The action registry: every Action declared once — its handler, its words, its wait, its slowness, the
privileges it needs and its effect on a server's power. The runner, the live view, the page, the plan
summary, the privilege check and the energy accounting all read it; ``tests/unit/test_actions.py`` fails
when an Action lacks a declaration.

Adding an action: a member of ``Action`` (plan.model), one ``Spec`` here, its handler in ``labswitch.steps``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labswitch.plan.model import Action


class Subject(enum.StrEnum):
    """What a step acts on."""

    VM = "vm"
    HOST = "host"  # a server: its ESXi host or its BMC
    CLUSTER = "cluster"  # a cluster setting; shown on each of its hosts while they wait for it
    BARRIER = "barrier"  # a wave's barrier, vCenter answering: belongs to no single object


class Effect(enum.StrEnum):
    """A step's effect on its server's power, when it is done (energy accounting reads it)."""

    ON = "on"
    OFF = "off"


WAVE = "wave"  # waits: the condition of the step's wave (config waves[].wait)


@dataclass(frozen=True)
class Spec:
    handler: str  # "module.function" in labswitch.steps (resolved there: the planner stays free of I/O)
    subject: Subject
    doing: str  # what a host is doing while this is its first unfinished step (live view, page)
    word: str = ""  # the step in the plan's summary ("" : not named there: VM steps are counted instead)
    doing_vm: str = ""  # a VM step: what the slowest VM is doing ("esx11-vm03: shutting down 00:45")
    waits: tuple[str, ...] = ()  # change-feed conditions (vsphere.port.CONDITIONS) on the step's object, or WAVE
    vcenter_only: bool = False  # waits only through vCenter (a host talked to directly has no such feed)
    timeout: str | None = None  # the Policy field bounding it; slow after half of it
    privileges: tuple[str, tuple[str, ...]] | None = None  # ("cluster" | "vcenter", privilege ids) beyond the role's basics
    power: Effect | None = None  # done (status ok): the server is on, or off, from then
    pve: tuple[tuple[str, str], ...] = ()  # Proxmox VE: (ACL path, privilege) the API checks: "/", "/vms/{vmid}", "/nodes/{node}"


_HA = ("cluster", ("Host.Inventory.EditCluster",))
# Proxmox VE, as each call's `permissions` in its source says: qemu-server/pve-container status/* (VM.PowerMgmt on the
# guest), its config and status (VM.Audit); pve-manager Nodes.pm status (Sys.PowerMgmt / Sys.Audit on the node),
# Cluster/Ceph.pm flags (Sys.Modify / Sys.Audit on /); pve-ha-manager API2/HA/Resources.pm update (Sys.Console on /).
_PVE_GUEST = (("/vms/{vmid}", "VM.PowerMgmt"), ("/vms/{vmid}", "VM.Audit"))
_PVE_HA = (("/", "Sys.Console"), ("/", "Sys.Audit"))
_PVE_CEPH = (("/", "Sys.Modify"), ("/", "Sys.Audit"))
_VCLS = ("vcenter", ("Global.Settings",))
_VSAN = ("cluster", ("Host.Config.Power", "Host.Inventory.EditCluster"))

REGISTRY: Mapping[Action, Spec] = {
    Action.SHUTDOWN_GUEST: Spec(
        "vms.shutdown_guests",
        Subject.VM,
        "stopping VMs",
        doing_vm="shutting down",
        waits=("off",),
        timeout="guest_shutdown_timeout",
        pve=_PVE_GUEST,
    ),
    Action.POWER_OFF_VM: Spec("vms.power_off", Subject.VM, "powering off VMs", doing_vm="powering off", pve=_PVE_GUEST),
    Action.LEAVE_RUNNING: Spec("vms.leave_running", Subject.VM, "stopping VMs"),
    Action.POWER_ON_VM: Spec("vms.power_on", Subject.VM, "starting VMs", doing_vm="starting", waits=(WAVE,), pve=_PVE_GUEST),
    Action.WAIT_TOOLS: Spec("vms.wait_tools", Subject.VM, "waiting for VMware Tools", waits=("tools",)),
    Action.ENTER_MAINTENANCE: Spec(
        "hosts.enter_maintenance", Subject.HOST, "entering maintenance", "maintenance", timeout="maintenance_timeout"
    ),
    Action.ENTER_MAINTENANCE_NO_ACTION: Spec(
        "hosts.enter_maintenance_no_action",
        Subject.HOST,
        "entering maintenance (vSAN: no data moved)",
        "maintenance (vSAN: no data moved)",
        timeout="maintenance_timeout",
    ),
    Action.SHUTDOWN_HOST: Spec(
        "hosts.shutdown", Subject.HOST, "shutting down", "shut down", timeout="host_off_timeout", pve=(("/nodes/{node}", "Sys.PowerMgmt"),)
    ),
    Action.BMC_GRACEFUL_SHUTDOWN: Spec("bmc.graceful_shutdown", Subject.HOST, "shutting down (BMC)", "shut down by BMC"),
    Action.CONFIRM_OFF: Spec(
        "bmc.confirm_off", Subject.HOST, "waiting for off (BMC)", "off (BMC)", waits=("gone",), vcenter_only=True, power=Effect.OFF
    ),
    Action.BMC_FORCE_OFF: Spec("bmc.force_off", Subject.HOST, "forcing off (BMC)", "force off (BMC)", power=Effect.OFF),
    Action.CUT_POWER: Spec("bmc.cut_power", Subject.HOST, "cutting the plug's relay", "relay cut"),
    Action.BMC_POWER_ON: Spec("bmc.power_on", Subject.HOST, "powering on", "power on", power=Effect.ON),
    Action.OS_SHUTDOWN: Spec("servers.os_shutdown", Subject.HOST, "shutting down (SSH)", "shut down (SSH)"),
    Action.WAIT_READY: Spec(
        "servers.wait_ready", Subject.HOST, "booting (waiting for its services)", "ready", timeout="host_connect_timeout"
    ),
    Action.WAIT_CONNECTED: Spec(
        "hosts.wait_connected",
        Subject.HOST,
        "booting",
        "connect",
        waits=("connected", "gone"),
        timeout="host_connect_timeout",
        pve=(("/", "Sys.Audit"), ("/nodes/{node}", "Sys.Audit")),
    ),
    Action.EXIT_MAINTENANCE: Spec(
        "hosts.exit_maintenance", Subject.HOST, "exiting maintenance", "exit maintenance", timeout="maintenance_timeout"
    ),
    Action.REBOOT_HOST: Spec("hosts.reboot", Subject.HOST, "rebooting", "reboot", waits=("connected", "gone")),
    Action.DISABLE_HA: Spec("clusters.disable_ha", Subject.CLUSTER, "turning HA off", "HA off", privileges=_HA),
    Action.RESTORE_HA: Spec("clusters.restore_ha", Subject.CLUSTER, "restoring HA", "HA restored", privileges=_HA),
    Action.VCLS_RETREAT: Spec("clusters.vcls_retreat", Subject.CLUSTER, "vCLS retreat mode", "vCLS retreat mode", privileges=_VCLS),
    Action.VCLS_RESTORE: Spec("clusters.vcls_restore", Subject.CLUSTER, "restoring vCLS", "vCLS restored", privileges=_VCLS),
    Action.VSAN_POWER_OFF: Spec(
        "clusters.vsan_power_off", Subject.CLUSTER, "vSAN cluster power-off", "vSAN cluster power-off", privileges=_VSAN
    ),
    Action.VSAN_POWER_ON: Spec(
        "clusters.vsan_power_on", Subject.CLUSTER, "vSAN cluster power-on", "vSAN cluster power-on", privileges=_VSAN
    ),
    Action.PVE_HA_IGNORE: Spec(
        "proxmox.ha_ignore", Subject.CLUSTER, "setting HA resources to ignored", "HA resources ignored", pve=_PVE_HA
    ),
    Action.PVE_HA_DISARM: Spec("proxmox.ha_disarm", Subject.CLUSTER, "disarming HA", "HA disarmed (resources ignored)", pve=_PVE_HA),
    Action.PVE_HA_ARM: Spec("proxmox.ha_arm", Subject.CLUSTER, "arming HA", "HA armed", pve=_PVE_HA),
    Action.PVE_HA_RESTORE: Spec("proxmox.ha_restore", Subject.CLUSTER, "restoring HA resources", "HA resources restored", pve=_PVE_HA),
    Action.CEPH_FLAGS_SET: Spec(
        "proxmox.ceph_flags_set", Subject.CLUSTER, "setting Ceph's flags", "Ceph noout, norebalance, nobackfill, norecover", pve=_PVE_CEPH
    ),
    Action.CEPH_FLAGS_CLEAR: Spec(
        "proxmox.ceph_flags_clear", Subject.CLUSTER, "clearing Ceph's flags", "Ceph flags cleared", pve=_PVE_CEPH
    ),
    Action.CEPH_READY: Spec(
        "proxmox.ceph_ready",
        Subject.CLUSTER,
        "waiting for Ceph's placement groups",
        "Ceph's placement groups active",
        timeout="ceph_ready_timeout",
        pve=(("/", "Sys.Audit"),),
    ),
    Action.CEPH_SERVICES: Spec(
        "proxmox.ceph_services",
        Subject.CLUSTER,
        "waiting for Ceph's monitors and OSDs",
        "Ceph's monitors and OSDs up",
        timeout="ceph_ready_timeout",
        pve=(("/", "Sys.Audit"),),
    ),
    Action.WAVE_READY: Spec("waves.wave_ready", Subject.BARRIER, "waiting for the wave"),
    Action.SHUTDOWN_ORDER_ENDED: Spec("waves.order_ended", Subject.BARRIER, "waiting for the guests of the order before"),
    Action.WAIT_VCENTER: Spec("vcenter.wait_vcenter", Subject.BARRIER, "waiting for vCenter to answer"),
    Action.L1TF_MITIGATE: Spec("fixes.l1tf_mitigate", Subject.HOST, "setting the L1TF mitigation", "L1TF mitigation"),
    Action.L1TF_SUPPRESS_WARNING: Spec("fixes.l1tf_suppress_warning", Subject.HOST, "hiding the L1TF warning", "L1TF warning hidden"),
    Action.CBT_RESET: Spec("fixes.cbt_reset", Subject.VM, "resetting CBT", doing_vm="resetting CBT", timeout="maintenance_timeout"),
}


def spec(action: str) -> Spec:
    return REGISTRY[Action(action)]


def of(subject: Subject) -> frozenset[Action]:
    return frozenset(a for a, s in REGISTRY.items() if s.subject is subject)


def powering(effect: Effect) -> frozenset[Action]:
    """The actions that, done, leave their server on (or off)."""
    return frozenset(a for a, s in REGISTRY.items() if s.power is effect)


VM_ACTIONS = of(Subject.VM)  # the rest act on hosts, clusters or barriers


def slow_after(policy: Any) -> dict[Action, float]:
    """Seconds after which a step counts as slow (named in the live view): half its timeout in the policy."""
    return {a: float(getattr(policy, s.timeout)) / 2 for a, s in REGISTRY.items() if s.timeout}
