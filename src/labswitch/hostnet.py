"""A systemd-networkd ``.network`` file for a static address (the container host's network),
validated before it is rendered: what `labswitch host network` prints or writes. PURE."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from labswitch.errors import ConfigError

_IFNAME = re.compile(r"[A-Za-z0-9_.:-]{1,15}")  # the kernel's IFNAMSIZ - 1, no '/' or spaces
_HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


@dataclass(frozen=True)
class StaticNetwork:
    interface: str
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    dns: tuple[str, ...]
    domains: tuple[str, ...]
    ntp: tuple[str, ...]

    @property
    def filename(self) -> str:
        return f"10-static-{self.interface}.network"


def parse(
    interface: str, address: str, gateway: str | None, dns: Sequence[str], domains: Sequence[str], ntp: Sequence[str]
) -> StaticNetwork:
    if not _IFNAME.fullmatch(interface):
        raise ConfigError(f"--interface {interface!r}: not an interface name (1-15 letters, digits, '-', '_', '.', ':'); see `ip link`")
    if "/" not in address:
        raise ConfigError(f"--address {address}: give the prefix length too, e.g. {address}/24")
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError as exc:
        raise ConfigError(f"--address {address}: not an IP address with a prefix length, e.g. 192.168.4.7/24") from exc
    if iface.ip == iface.network.network_address and iface.network.prefixlen < iface.max_prefixlen - 1:
        raise ConfigError(f"--address {address}: that is the network address of {iface.network}; give the host's own address")
    if iface.version == 4 and iface.ip == iface.network.broadcast_address and iface.network.prefixlen < 31:
        raise ConfigError(f"--address {address}: that is the broadcast address of {iface.network}; give the host's own address")
    gw = None
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise ConfigError(f"--gateway {gateway}: not an IP address") from exc
        if gw.version != iface.version or gw not in iface.network:
            raise ConfigError(f"--gateway {gateway}: not in {iface.network}, the network of --address {address}")
        if gw == iface.ip:
            raise ConfigError(f"--gateway {gateway}: the host's own address; give the router's")
    for server in dns:
        try:
            ipaddress.ip_address(server)
        except ValueError as exc:
            raise ConfigError(f"--dns {server}: not an IP address (systemd-networkd's DNS= takes addresses)") from exc
    for name in domains:
        if not _HOSTNAME.fullmatch(name.removeprefix("~")):
            raise ConfigError(f"--domains {name}: not a DNS domain")
    for server in ntp:
        if not _HOSTNAME.fullmatch(server) and not is_ip(server):
            raise ConfigError(f"--ntp {server}: not a host name or IP address")
    return StaticNetwork(interface, iface, gw, tuple(dns), tuple(domains), tuple(ntp))


def is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address (not a name)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def render(net: StaticNetwork) -> str:
    lines = [
        f"# Written by `labswitch host network`; install as /etc/systemd/network/{net.filename} (mode 644)",
        "# and apply with: systemctl restart systemd-networkd",
        "[Match]",
        f"Name={net.interface}",
        "",
        "[Network]",
        "DHCP=no",
        f"Address={net.address.with_prefixlen}",
    ]
    if net.gateway:
        lines.append(f"Gateway={net.gateway}")
    lines += [f"DNS={d}" for d in net.dns]
    if net.domains:
        lines.append(f"Domains={' '.join(net.domains)}")
    lines += [f"NTP={n}" for n in net.ntp]
    return "\n".join(lines) + "\n"
