"""The BMC driver protocol: what every driver (redfish, racadm, ipmi) offers, with typed results.

A driver declares what it cannot do by raising NotSupported; it never fakes it.
Drivers do no I/O in their constructors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Power(enum.StrEnum):
    ON = "On"
    OFF = "Off"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class SystemInfo:
    """What ``racadm getsysinfo`` shows, from whichever interface the BMC offers."""

    model: str | None
    service_tag: str | None
    bios_version: str | None
    bmc_firmware: str | None
    host_name: str | None
    power: Power


@runtime_checkable
class Driver(Protocol):
    """One server's BMC."""

    server: str

    def power_state(self) -> Power:
        """The server's power as the BMC sees it."""
        ...

    def power_on(self) -> bool:
        """Power on; False when it was already on (an iDRAC's 409 counts as done)."""
        ...

    def graceful_shutdown(self) -> bool:
        """Ask the OS to shut down (ACPI); False when already off."""
        ...

    def force_off(self) -> bool:
        """Cut the power; False when already off."""
        ...

    def power_cycle(self) -> None:
        """Power off and on again."""
        ...

    def system_info(self) -> SystemInfo: ...

    def watts(self) -> float:
        """Power draw now, in watts; NotSupported when the BMC does not report it."""
        ...

    def close(self) -> None: ...
