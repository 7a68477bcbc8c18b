"""Servers without a BMC, woken by Wake-on-LAN (a NUC, a mini PC, a workstation).

``power_on`` sends the magic packet (6 x 0xFF, then the MAC 16 times) a few times, spaced. The
power state is worked out from the reachability of the host's management API (a TCP connect to
ESXi's port within the BMC timeout): reachable is On; unreachable is Off, except that a host this
driver has seen up counts as On until it has stayed unreachable for ``off_after`` seconds (ESXi
closes its port before the machine is off). Shutting a server down is vSphere's job: graceful
shutdown, force off and power cycle are NotSupported, never faked.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from labswitch.bmc.base import Power, SystemInfo
from labswitch.config import Server, WakeOnLan
from labswitch.errors import ConnectionFailed, NotSupported

SENDS = 3  # magic packets per power-on
SPACING = 0.3  # seconds between them


def magic_packet(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    return b"\xff" * 6 + raw * 16


class WolDriver:
    def __init__(self, server: Server, wol: WakeOnLan, timeout: float) -> None:
        self.server = server.name
        self.wol = wol
        self.timeout = timeout
        parts = urlsplit(server.proxmox_url or server.direct_url)  # a Proxmox node's API (8006), else ESXi's
        self.probe = (parts.hostname or "", parts.port or (8006 if server.proxmox_url else 443))
        self.where = f"server {server.name} (Wake-on-LAN {wol.mac or 'through a peer node'})"
        self._down_since: float | None = None
        self._seen_up = False

    def power_state(self) -> Power:
        if self._reachable():
            self._seen_up, self._down_since = True, None
            return Power.ON
        if not self._seen_up:
            return Power.OFF
        now = time.monotonic()
        self._down_since = self._down_since or now
        return Power.OFF if now - self._down_since >= self.wol.off_after else Power.ON

    def power_on(self) -> bool:
        if self._reachable():
            return False
        self._wake()
        return True

    def _wake(self) -> None:
        assert self.wol.mac is not None
        packet = magic_packet(self.wol.mac)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                for i in range(SENDS):
                    sock.sendto(packet, (self.wol.broadcast, self.wol.port))
                    if i < SENDS - 1:
                        time.sleep(SPACING)  # a few packets, spaced: one may be lost on a busy switch
        except OSError as exc:
            raise ConnectionFailed(
                f"{self.where}: the magic packet could not be sent to {self.wol.broadcast}:{self.wol.port} ({exc.strerror or exc}); "
                "check bmc.broadcast"
            ) from exc

    def graceful_shutdown(self) -> bool:
        raise NotSupported(f"{self.where}: Wake-on-LAN only wakes a server; it is shut down through vSphere")

    def force_off(self) -> bool:
        raise NotSupported(f"{self.where}: Wake-on-LAN cannot cut the power; use a smart plug (bmc.driver = shelly) for that")

    def power_cycle(self) -> None:
        raise NotSupported(f"{self.where}: Wake-on-LAN cannot cycle the power")

    def system_info(self) -> SystemInfo:
        return SystemInfo(None, None, None, None, self.probe[0], self.power_state())

    def watts(self) -> float:
        raise NotSupported(f'{self.where}: Wake-on-LAN reports no power draw; add a meter = {{ driver = "shelly", ... }}')

    def close(self) -> None:
        return None

    def _reachable(self) -> bool:
        try:
            socket.create_connection(self.probe, timeout=min(self.timeout, 3.0)).close()
        except socket.gaierror as exc:
            raise ConnectionFailed(f"{self.where}: cannot resolve {self.probe[0]}; check servers.esxi") from exc
        except OSError:
            return False
        return True


class PeerWolDriver(WolDriver):
    """A Proxmox VE node woken by a peer: the cluster's API asks another node to send the magic packet (POST
    /nodes/{node}/wakeonlan, as Proxmox's own GUI does; the MAC is the node's wakeonlan setting). It needs a node
    of the cluster up: the up powers the others on first."""

    def __init__(self, server: Server, wol: WakeOnLan, timeout: float, wake: Callable[[], object]) -> None:
        super().__init__(server, wol, timeout)
        self._send = wake

    def _wake(self) -> None:
        self._send()
