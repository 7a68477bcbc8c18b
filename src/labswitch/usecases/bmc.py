"""`labswitch bmc ...`: one BMC operation on many servers, in parallel, each failure its own line."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labswitch.bmc import Driver, Power, driver_for
from labswitch.bmc.wol import PeerWolDriver
from labswitch.config import Config, Server, WakeOnLan
from labswitch.errors import EndpointError, NotSupported, UnknownName, shown


@dataclass(frozen=True)
class Outcome:
    server: str
    value: Any = None  # the operation's result
    error: str | None = None
    unsupported: bool = False


def select(config: Config, names: Sequence[str]) -> list[Server]:
    """The servers named (by name or ESXi name), or all; an unknown name is a usage error."""
    if not names:
        return list(config.servers)
    chosen = []
    for name in names:
        server = config.server(name)
        if server is None:
            known = ", ".join(s.name for s in config.servers) or "none configured"
            raise UnknownName(f"server {shown(name)}: not in the config (servers: {known})")
        chosen.append(server)
    return chosen


def drivers_for(config: Config, servers: Sequence[Server]) -> dict[str, Driver]:
    """Each server's power driver, by server name, not yet connected (the caller closes them). A Proxmox VE node woken
    by a peer (bmc.via = "proxmox") gets the cluster's API to send its packet."""
    out: dict[str, Driver] = {}
    for s in servers:
        if s.woken_by_peer and isinstance(s.bmc, WakeOnLan):  # (a config with [proxmox]: config.models checks)
            out[s.name] = PeerWolDriver(s, s.bmc, config.policy.bmc_timeout, _peer_wake(config, s))
        else:
            out[s.name] = driver_for(s, config.policy.bmc_timeout)
    return out


def _peer_wake(config: Config, server: Server) -> Callable[[], object]:
    from labswitch.proxmox import client_for

    node = server.node or server.esxi
    client = client_for(config, without=server.name)
    return lambda: client.call(f"wake node {node} (Wake-on-LAN from a peer node)", lambda api: api.nodes(node).wakeonlan.post())


@contextlib.contextmanager
def opened(config: Config, servers: Sequence[Server]) -> Iterator[dict[str, Driver]]:
    """Each server's power driver, by server name, closed when the block ends."""
    drivers = drivers_for(config, servers)
    try:
        yield drivers
    finally:
        for driver in drivers.values():
            driver.close()


def each(config: Config, servers: Sequence[Server], operation: Callable[[Driver], Any]) -> list[Outcome]:
    """Run ``operation`` on every server's BMC in parallel; results in the servers' order."""
    with opened(config, servers) as drivers:
        return on_drivers(drivers, operation, config.policy.max_parallel)


def on_drivers(drivers: Mapping[str, Driver], operation: Callable[[Driver], Any], max_parallel: int) -> list[Outcome]:
    """Run ``operation`` on drivers already open (kept open), in parallel; results in their order."""

    def one(name: str, driver: Driver) -> Outcome:
        try:
            return Outcome(name, operation(driver))
        except NotSupported as exc:
            return Outcome(name, error=str(exc), unsupported=True)
        except EndpointError as exc:
            return Outcome(name, error=str(exc))

    if not drivers:
        return []
    with ThreadPoolExecutor(max_workers=min(max_parallel, len(drivers))) as pool:
        return list(pool.map(one, drivers, drivers.values()))


def power_states(outcomes: Sequence[Outcome]) -> dict[str, tuple[Power, str | None]]:
    """Server -> (power, why it is Unknown) from power_state() outcomes."""
    return {o.server: (o.value, None) if o.error is None else (Power.UNKNOWN, o.error) for o in outcomes}


def readings(config: Config, drivers: Mapping[str, Driver] | None = None) -> dict[str, tuple[Power, float | None]]:
    """Every server's power and draw now, read in parallel: server -> (power, watts or None where its driver
    reports none, or the reading failed); a server whose power cannot be read is left out. ``drivers``: kept
    open by the caller (serve's coordinator), else opened for this read."""
    out = {}
    operation = lambda d: (d.power_state(), watts_or_none(d))  # noqa: E731
    outcomes = (
        on_drivers(drivers, operation, config.policy.max_parallel) if drivers is not None else each(config, config.servers, operation)
    )
    for o in outcomes:
        if o.value is not None:
            out[o.server] = o.value
    return out


def watts_or_none(driver: Driver) -> float | None:
    try:
        return float(driver.watts())
    except EndpointError:  # NotSupported, or the reading failed: no sample, not an error
        return None
