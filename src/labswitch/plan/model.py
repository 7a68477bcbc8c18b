"""The plan's vocabulary: intents, actions, statuses, steps, facts. Shared by the planner's modules."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from labswitch.bmc import Power
from labswitch.config import Wave


class Intent(enum.StrEnum):
    DOWN = "down"
    UP = "up"
    REBOOT = "reboot"  # one host: guests down, maintenance, reboot, back, guests up again
    FIX = "fix"  # `labswitch fix`: an audit finding's fix (and, for L1TF, a rolling reboot)


class Action(enum.StrEnum):
    """What a step does; the same words in plan, run, journal, JSON and the live view."""

    SHUTDOWN_GUEST = "shutdown-guest"
    POWER_OFF_VM = "power-off-vm"
    LEAVE_RUNNING = "leave-running"
    ENTER_MAINTENANCE = "enter-maintenance"
    ENTER_MAINTENANCE_NO_ACTION = "enter-maintenance-no-action"  # vSAN objectAction noAction: no data moved
    SHUTDOWN_HOST = "shutdown-host"
    BMC_GRACEFUL_SHUTDOWN = "bmc-graceful-shutdown"
    CONFIRM_OFF = "confirm-off"
    BMC_POWER_ON = "bmc-power-on"
    WAIT_CONNECTED = "wait-connected"
    EXIT_MAINTENANCE = "exit-maintenance"
    POWER_ON_VM = "power-on-vm"
    REBOOT_HOST = "reboot-host"
    BMC_FORCE_OFF = "bmc-force-off"
    WAVE_READY = "wave-ready"
    SHUTDOWN_ORDER_ENDED = "order-ended"  # down: every shutdown of a startup-order group ended; the next group may go
    CUT_POWER = "cut-power"  # a smart plug's relay cut once the server is confirmed off (bmc.cut_after_shutdown)
    # A plain server's (plan.servers: platform = "servers"):
    OS_SHUTDOWN = "os-shutdown"  # its OS's own shutdown command over SSH (ssh.command, default systemctl poweroff)
    WAIT_READY = "wait-ready"  # up: each of its ready checks answers (tcp:2049, https:443)
    # Cluster settings a whole cluster's cycle changes (journaled; up restores them):
    DISABLE_HA = "disable-ha"
    VCLS_RETREAT = "vcls-retreat"
    VSAN_POWER_OFF = "vsan-power-off"
    VSAN_POWER_ON = "vsan-power-on"
    RESTORE_HA = "restore-ha"
    VCLS_RESTORE = "vcls-restore"
    # A Proxmox VE cluster's (plan.proxmox; journaled; up restores them):
    PVE_HA_IGNORE = "ha-ignore"  # every HA resource's requested state recorded, then set to ignored
    PVE_HA_RESTORE = "ha-restore"
    PVE_HA_DISARM = "ha-disarm"  # PVE 9.2+: HA disarmed cluster-wide, resource mode ignore (the armed state recorded)
    PVE_HA_ARM = "ha-arm"
    CEPH_FLAGS_SET = "ceph-flags-set"  # noout, norebalance, nobackfill, norecover (the flags set before, recorded)
    CEPH_FLAGS_CLEAR = "ceph-flags-clear"
    CEPH_READY = "ceph-ready"  # every placement group active: guests' I/O is served
    CEPH_SERVICES = "ceph-services"  # up: every monitor in quorum, every OSD up, before the flags are cleared (pveceph.adoc)
    # A whole lab, vCenter included (plan.whole_lab):
    WAIT_TOOLS = "wait-tools"  # a VM's tools running (a vCenter dependency, before the next VM starts)
    WAIT_VCENTER = "wait-vcenter"  # vCenter's SOAP and REST APIs answering after its VM started
    # Fixes for audit findings (plan.fix):
    L1TF_MITIGATE = "l1tf-mitigate"  # VMkernel.Boot.hyperthreadingMitigation = true, read back
    L1TF_SUPPRESS_WARNING = "l1tf-suppress-warning"  # UserVars.SuppressHyperthreadWarning = 1, read back
    CBT_RESET = "cbt-reset"  # KB 2139574: CBT off, a snapshot created and removed, CBT on, read back


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
    changed: Mapping[str, frozenset[str]] = field(default_factory=dict)  # cluster moid -> settings a down changed, not restored
    ceph_monitors: frozenset[str] = frozenset()  # Proxmox VE: the nodes with a Ceph monitor (the snapshot's, else the journal's)


VCENTER = "vcenter"


@dataclass(frozen=True)
class Step:
    phase: str
    action: Action
    target: str  # a VM name, a server name, or a wave's name
    moid: str | None = None  # the VM or host it acts on
    server: str | None = None  # the config server it belongs to
    wave: int | None = None  # up: index into the waves (len(waves) for "remaining")
    after: tuple[str, ...] = ()  # ids of the steps it waits for
    endpoint: str = VCENTER  # what it goes through: "vcenter", "bmc:<server>" or "esxi:<server>" (the host's own API)
    fallback_of: str | None = None  # runs only when that step did not work
    settled: tuple[str, ...] = ()  # ids it waits for whatever their outcome (not skipped when they fail)

    @property
    def id(self) -> str:
        return f"{self.action}:{self.moid or self.target}"


@dataclass(frozen=True)
class VCenterHost:
    """A whole-lab down's vCenter host: the server, vCenter's VM and the VMs it needs (start order), each
    as (name, instance UUID), journaled before the down so that the up finds them through the host."""

    server: str
    vcenter: tuple[str, str]
    dependencies: tuple[tuple[str, str], ...] = ()
    peers: tuple[str, ...] = ()  # vCenter on vSAN: the cluster's other servers, down after vCenter and up before it


@dataclass(frozen=True)
class Plan:
    intent: Intent
    groups: tuple[str, ...]
    servers: tuple[str, ...]
    steps: tuple[Step, ...]
    refusals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    waves: tuple[Wave, ...] = ()
    vcenter_host: VCenterHost | None = None  # a whole-lab down: where vCenter runs (None: not one)

    def phase(self, name: str) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.phase == name)

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.phase for s in self.steps))


def bmc(server: str) -> str:
    return f"bmc:{server}"


ESXI = "esxi:"


def esxi(server: str) -> str:
    """The endpoint of a server's ESXi host, talked to directly."""
    return f"{ESXI}{server}"


def direct(endpoint: str) -> str | None:
    """The server whose host an endpoint talks to directly; None for vCenter or a BMC."""
    return endpoint.removeprefix(ESXI) if endpoint.startswith(ESXI) else None
