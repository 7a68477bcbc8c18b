"""BMC drivers behind one protocol: Redfish (sushy), racadm over SSH (asyncssh), IPMI (pyghmi)."""

from __future__ import annotations

from labswitch.bmc.base import Driver, Power, SystemInfo
from labswitch.config import Server


def driver_for(server: Server, timeout: float) -> Driver:
    """The driver the server's ``bmc.driver`` names; no I/O until it is used."""
    if server.bmc.driver == "redfish":
        from labswitch.bmc.redfish import RedfishDriver

        return RedfishDriver(server.name, server.bmc, timeout)
    if server.bmc.driver == "racadm":
        from labswitch.bmc.racadm import RacadmDriver

        return RacadmDriver(server.name, server.bmc, timeout)
    from labswitch.bmc.ipmi import IpmiDriver

    return IpmiDriver(server.name, server.bmc, timeout)


__all__ = ["Driver", "Power", "SystemInfo", "driver_for"]
