"""Power drivers behind one protocol: BMCs (Redfish with sushy, racadm over SSH with asyncssh, IPMI with
pyghmi), Wake-on-LAN, and smart plugs (Shelly, Tasmota); a plug may also meter a server."""

from __future__ import annotations

from labswitch.bmc.base import Driver, Power, SystemInfo
from labswitch.config import Plug, Server


def driver_for(server: Server, timeout: float) -> Driver:
    """The driver the server's ``bmc.driver`` names (its watts from ``meter`` when it has one); no I/O until used."""
    power = _power_driver(server, timeout)
    if server.meter is None:
        return power
    from labswitch.bmc.metered import Metered
    from labswitch.bmc.plug import PlugDriver

    return Metered(power, PlugDriver(server.name, server.meter, timeout, role="meter"))


def _power_driver(server: Server, timeout: float) -> Driver:
    if server.bmc.driver == "wol":
        from labswitch.bmc.wol import WolDriver

        return WolDriver(server, server.bmc, timeout)
    if isinstance(server.bmc, Plug):
        from labswitch.bmc.plug import PlugDriver

        return PlugDriver(server.name, server.bmc, timeout)
    if server.bmc.driver == "redfish":
        from labswitch.bmc.redfish import RedfishDriver

        return RedfishDriver(server.name, server.bmc, timeout)
    if server.bmc.driver == "racadm":
        from labswitch.bmc.racadm import RacadmDriver

        return RacadmDriver(server.name, server.bmc, timeout)
    from labswitch.bmc.ipmi import IpmiDriver

    return IpmiDriver(server.name, server.bmc, timeout)


__all__ = ["Driver", "Power", "SystemInfo", "driver_for"]
