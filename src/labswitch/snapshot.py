"""An immutable picture of the lab, read in bulk: what the planner and audits reason about."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostInfo:
    moid: str
    name: str
    cluster: str | None  # None for a standalone host
    connection_state: str  # connected | disconnected | notResponding
    in_maintenance: bool
    power_state: str  # poweredOn | poweredOff | standBy | unknown


@dataclass(frozen=True)
class VMInfo:
    moid: str
    name: str
    host_moid: str | None
    power_state: str  # poweredOn | poweredOff | suspended
    tools_running: bool
    guest_ip: str | None = None
    guest_hostname: str | None = None
    template: bool = False
    tags: tuple[str, ...] = ()  # "Category/Tag"


@dataclass(frozen=True)
class Snapshot:
    hosts: tuple[HostInfo, ...]
    vms: tuple[VMInfo, ...]
    notes: tuple[str, ...] = field(default=())  # what could not be read, said once

    def host_by_name(self, name: str) -> HostInfo | None:
        return next((h for h in self.hosts if h.name == name), None)

    def vms_on(self, host_moid: str) -> tuple[VMInfo, ...]:
        return tuple(vm for vm in self.vms if vm.host_moid == host_moid)
