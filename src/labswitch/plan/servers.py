"""Plain servers (PURE): machines no hypervisor API drives (platform = "servers": a NAS, a storage box, a firewall).

down, per server: its OS shut down by its own command over SSH (the BMC's GracefulShutdown, the ACPI button, if SSH
                  fails or is not configured) -> confirmed off by the BMC (plan.off: the same deadlines as every host)
up,   per server: BMC power-on -> ready (each of its ``ready`` checks answers: "tcp:2049", "https:443")

A server already off (down) or on and ready (up) needs no step but its readiness: an up waits for a plain server's
services even when it was on, so that what needs it (``[groups.payload] after = ["storage"]``) finds them."""

from __future__ import annotations

from collections.abc import Sequence

from labswitch.bmc import Power
from labswitch.config import Config, Server
from labswitch.plan.model import Action, Facts, Intent, Step, bmc
from labswitch.plan.off import confirm_off

OS = "os:"


def os_endpoint(server: str) -> str:
    """The endpoint of a plain server's own OS (SSH, its services)."""
    return f"{OS}{server}"


def steps(config: Config, facts: Facts, intent: Intent, servers: Sequence[Server]) -> list[Step]:
    out: list[Step] = []
    for server in servers:
        power = facts.bmc_power.get(server.name)
        out += _down(config, server, power) if intent is Intent.DOWN else _up(server, power)
    return out


def _down(config: Config, server: Server, power: Power | None) -> list[Step]:
    if power is Power.OFF:
        return []
    name = server.name
    graceful = Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, name, None, name, endpoint=bmc(name))
    if server.ssh is None:
        return [graceful, *confirm_off(config, graceful, feed=False)]
    own = Step("host-shutdown", Action.OS_SHUTDOWN, name, None, name, endpoint=os_endpoint(name))
    fallback = Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, name, None, name, endpoint=bmc(name), fallback_of=own.id)
    return [own, fallback, *confirm_off(config, own, feed=False)]


def _up(server: Server, power: Power | None) -> list[Step]:
    name = server.name
    out: list[Step] = []
    if power is Power.OFF:
        out.append(Step("power-on", Action.BMC_POWER_ON, name, None, name, endpoint=bmc(name)))
    if server.ready:
        out.append(Step("connect", Action.WAIT_READY, name, None, name, after=tuple(s.id for s in out), endpoint=os_endpoint(name)))
    return out
