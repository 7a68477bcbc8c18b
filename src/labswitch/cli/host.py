"""labswitch host network"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from labswitch import hostnet, render
from labswitch.cli import app
from labswitch.errors import ConfigError

host_app = typer.Typer(help="Set up the always-on container host labswitch runs on (see deploy/).", no_args_is_help=True)
app.add_typer(host_app, name="host")


@host_app.command("network")
def network_command(
    interface: Annotated[str, typer.Option("--interface", help="The interface, e.g. eth0.")],
    address: Annotated[str, typer.Option("--address", help="Static address with prefix length, e.g. 192.168.4.7/24.")],
    gateway: Annotated[str | None, typer.Option("--gateway", help="Default gateway, in the address's network.")] = None,
    dns: Annotated[list[str] | None, typer.Option("--dns", help="DNS server address (repeatable).")] = None,
    domains: Annotated[list[str] | None, typer.Option("--domains", help="Search domain (repeatable).")] = None,
    ntp: Annotated[list[str] | None, typer.Option("--ntp", help="NTP server (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file (mode 644) instead of stdout.")] = None,
) -> None:
    """Render a systemd-networkd .network file for a static address (Photon OS or any systemd host).

    Every value is checked first (the gateway must be in the address's network); a bad one is
    one line and exit 2, and nothing is written.

    Example:

      labswitch host network --interface eth0 --address 192.168.4.7/24 --gateway 192.168.4.1 \\
          --dns 192.168.4.1 --domains lab.local --ntp pool.ntp.org --out 10-static-eth0.network
    """
    net = hostnet.parse(interface, address, gateway, dns or [], domains or [], ntp or [])
    text = hostnet.render(net)
    if out is None:
        render.stdout.out(text, end="", highlight=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
        os.chmod(out, 0o644)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write: {exc.strerror}") from exc
    render.stderr.print(f"wrote {out}; install it as /etc/systemd/network/{net.filename} (deploy/container-host.sh does)", markup=False)
