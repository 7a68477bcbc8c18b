"""`labswitch bmc ...`: one BMC operation on many servers, in parallel, each failure its own line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labswitch.bmc import Driver, driver_for
from labswitch.config import Config, Server
from labswitch.errors import ConfigError, EndpointError, NotSupported


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
            raise ConfigError(f"server {name}: not in the config (servers: {known})")
        chosen.append(server)
    return chosen


def each(config: Config, servers: Sequence[Server], operation: Callable[[Driver], Any]) -> list[Outcome]:
    """Run ``operation`` on every server's BMC in parallel; results in the servers' order."""

    def one(server: Server) -> Outcome:
        driver = driver_for(server, config.policy.bmc_timeout)
        try:
            return Outcome(server.name, operation(driver))
        except NotSupported as exc:
            return Outcome(server.name, error=str(exc), unsupported=True)
        except EndpointError as exc:
            return Outcome(server.name, error=str(exc))
        finally:
            driver.close()

    if not servers:
        return []
    with ThreadPoolExecutor(max_workers=min(config.policy.max_parallel, len(servers))) as pool:
        return list(pool.map(one, servers))
