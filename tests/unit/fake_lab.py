"""A hand-written in-memory fake of the LabPort and of BMC drivers, for the executor's unit tests.

It is a fake, named as such: the executor and the step modules are tested against it for their
ordering, fallbacks, skips and cancellation; the same code runs against labsim end to end.
Every action is logged with its time, so tests assert what happened, in which order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from labswitch.bmc import Power
from labswitch.cancel import Cancel
from labswitch.errors import VSphereError


@dataclass
class FakeVM:
    host: str
    on: bool = True
    tools: bool = True
    hung: bool = False  # ignores a guest shutdown


@dataclass
class FakeHost:
    connected: bool = True
    maintenance: bool = False
    powered: bool = True  # the server's power, as its BMC reports it
    boot_seconds: float = 0.0  # from BMC power-on to connected
    shutdown_fault: str | None = None  # vSphere's host shutdown answers this fault


@dataclass
class FakeLab:
    vms: dict[str, FakeVM]
    hosts: dict[str, FakeHost]
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (time, action, target)
    start: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def did(self, action: str, target: str) -> None:
        with self.lock:
            self.log.append((time.monotonic() - self.start, action, target))

    def when(self, action: str, target: str) -> float:
        return next(t for t, a, x in self.log if a == action and x == target)

    def done(self, action: str) -> list[str]:
        return [x for _, a, x in self.log if a == action]


class FakePort:
    """The LabPort in memory: guests stop at once unless hung; waits poll the fake's state."""

    def __init__(self, lab: FakeLab, cancel: Cancel) -> None:
        self.lab = lab
        self.cancel = cancel

    def shutdown_guest(self, vm: str) -> None:
        self.lab.did("shutdown-guest", vm)
        if not self.lab.vms[vm].hung:
            self.lab.vms[vm].on = False
            self.lab.did("vm-off", vm)

    def power_off_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]:
        for vm in vms:
            self.lab.vms[vm].on = False
            self.lab.did("power-off-vm", vm)
        return dict.fromkeys(vms)

    def power_on_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for vm in vms:
            host = self.lab.hosts[self.lab.vms[vm].host]
            if not host.connected or host.maintenance:
                out[vm] = "InvalidState"
                continue
            self.lab.vms[vm].on = True
            self.lab.did("power-on-vm", vm)
            out[vm] = None
        return out

    def enter_maintenance(self, host: str, timeout: float) -> None:
        if any(v.on for v in self.lab.vms.values() if v.host == host):
            raise VSphereError("InvalidState: VMs run on the host")
        self.lab.hosts[host].maintenance = True
        self.lab.did("enter-maintenance", host)

    def exit_maintenance(self, host: str, timeout: float) -> None:
        self.lab.hosts[host].maintenance = False
        self.lab.did("exit-maintenance", host)

    def shutdown_host(self, host: str, timeout: float) -> None:
        if self.lab.hosts[host].shutdown_fault:
            raise VSphereError(self.lab.hosts[host].shutdown_fault or "")
        self.lab.did("shutdown-host", host)
        self.lab.hosts[host].powered = self.lab.hosts[host].connected = False

    def reboot_host(self, host: str, timeout: float) -> None:
        raise VSphereError("NotSupported")

    def in_maintenance(self, host: str) -> bool:
        return self.lab.hosts[host].maintenance

    def wait(
        self, objects: Sequence[str], condition: str, timeout: float, on_each: Callable[[str], None] | None = None, reread: bool = True
    ) -> set[str]:
        met = {
            "off": lambda m: not self.lab.vms[m].on,
            "on": lambda m: self.lab.vms[m].on,
            "tools": lambda m: self.lab.vms[m].on and self.lab.vms[m].tools,
            "heartbeat": lambda m: self.lab.vms[m].on,
            "connected": lambda m: self.lab.hosts[m].connected,
            "gone": lambda m: not self.lab.hosts[m].connected,
        }[condition]
        deadline = time.monotonic() + timeout
        reached: set[str] = set()
        while True:
            for m in objects:
                if m not in reached and met(m):
                    reached.add(m)
                    if on_each:
                        on_each(m)
            if len(reached) == len(set(objects)) or time.monotonic() >= deadline:
                return reached
            self.cancel.sleep(0.01)

    def close(self) -> None:
        pass


class FakeDriver:
    """A BMC: power-on connects its host after the host's boot_seconds; a shutdown takes it off at once."""

    def __init__(self, lab: FakeLab, server: str, host: str) -> None:
        self.lab, self.server, self.host = lab, server, host

    def power_state(self) -> Power:
        return Power.ON if self.lab.hosts[self.host].powered else Power.OFF

    def power_on(self) -> bool:
        host = self.lab.hosts[self.host]
        if host.powered:
            return False
        host.powered = True
        self.lab.did("bmc-power-on", self.server)

        def boot() -> None:
            host.connected = True
            self.lab.did("connected", self.server)

        threading.Timer(host.boot_seconds, boot).start()
        return True

    def graceful_shutdown(self) -> bool:
        self.lab.did("bmc-graceful-shutdown", self.server)
        return self._off()

    def force_off(self) -> bool:
        return self._off()

    def _off(self) -> bool:
        host = self.lab.hosts[self.host]
        was = host.powered
        host.powered = host.connected = False
        return was

    def power_cycle(self) -> None:
        raise NotImplementedError

    def system_info(self) -> object:
        raise NotImplementedError

    def watts(self) -> float:
        raise NotImplementedError

    def close(self) -> None:
        pass
