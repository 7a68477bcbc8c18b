"""BMC drivers behind one protocol: Redfish now; racadm over SSH and IPMI are the next issue's."""

from __future__ import annotations

from labswitch.bmc.base import Driver, Power, SystemInfo
from labswitch.config import Server
from labswitch.errors import NotSupported


def driver_for(server: Server, timeout: float) -> Driver:
    """The driver the server's ``bmc.driver`` names; no I/O until it is used."""
    if server.bmc.driver == "redfish":
        from labswitch.bmc.redfish import RedfishDriver

        return RedfishDriver(server.name, server.bmc, timeout)
    raise NotSupported(f"server {server.name}: bmc.driver {server.bmc.driver!r} is not implemented yet; use redfish")


__all__ = ["Driver", "Power", "SystemInfo", "driver_for"]
