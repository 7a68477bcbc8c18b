"""labswitch init"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError

from labswitch import render
from labswitch.cli import app
from labswitch.config import TLS
from labswitch.errors import ConfigError, shown
from labswitch.usecases import init as usecase


# Over 100 lines, most of them its Typer options and help (the body is about 60): one command, one function.
@app.command("init")
def init_command(
    vcenter: Annotated[str | None, typer.Option("--vcenter", help="vCenter address or URL (https://vcsa.lab.local/sdk).")] = None,
    proxmox: Annotated[
        str | None, typer.Option("--proxmox", help="A Proxmox VE node's address or URL (https://pve1.lab.local:8006): its cluster.")
    ] = None,
    esxi: Annotated[
        list[str] | None,
        typer.Option("--esxi", help="A standalone ESXi host's address, for a lab without vCenter (repeatable, or comma-separated)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="vCenter user (default administrator@vsphere.local), or the hosts' (root).")
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            help="Environment variable holding the password (read now, referenced in the file; "
            "default LABSWITCH_VCENTER_PASSWORD, or LABSWITCH_ESXI_PASSWORD with --esxi).",
        ),
    ] = None,
    thumbprint: Annotated[
        list[str] | None,
        typer.Option(
            "--thumbprint",
            help="Trust the certificate by its SHA-256; with --esxi also HOST=SHA256, repeatable (each self-signed host its own).",
        ),
    ] = None,
    ca_file: Annotated[Path | None, typer.Option("--ca-file", help="Trust the certificate through this CA (PEM).")] = None,
    bmc_pattern: Annotated[
        str, typer.Option("--bmc-pattern", help="BMC address from the host name: {host} (short), {fqdn}, {domain}.")
    ] = "{host}-oob",
    bmc_driver: Annotated[str, typer.Option("--bmc-driver", help="redfish, racadm or ipmi.")] = "redfish",
    bmc_user: Annotated[str, typer.Option("--bmc-user", help="BMC user.")] = "root",
    bmc: Annotated[
        list[str] | None,
        typer.Option("--bmc", metavar="NAME=ADDRESS", help="A server's BMC address where --bmc-pattern does not fit (repeatable)."),
    ] = None,
    bmc_thumbprint: Annotated[
        list[str] | None,
        typer.Option("--bmc-thumbprint", metavar="NAME=SHA256", help="Pin a server's BMC certificate by its SHA-256 (repeatable)."),
    ] = None,
    trust_on_first_use: Annotated[
        bool,
        typer.Option(
            "--trust-on-first-use",
            help="Read each BMC's certificate now and pin it (written per server, and said: compare it with the BMC's own).",
        ),
    ] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write.")] = Path("labswitch.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config from a live vCenter (a group per cluster, standalone hosts always on),
    or, with --esxi, from standalone ESXi hosts (a lab without vCenter: \\[esxi], one group), or, with
    --proxmox, from a Proxmox VE cluster (\\[proxmox], a group per cluster, each node's own API).

    BMC addresses follow --bmc-pattern (a common convention: esx21-oob for host esx21);
    secrets are written as environment references, never as values. Never overwrites
    without --force.

    Examples:

      export LABSWITCH_VCENTER_PASSWORD=...   # read from the environment, not from the command line

      labswitch init --vcenter vcsa.lab.local --bmc-pattern "{host}-idrac.lab.local"

      labswitch init --esxi esx1.lab.local --esxi esx2.lab.local   # with LABSWITCH_ESXI_PASSWORD

      labswitch init --proxmox pve1.lab.local --thumbprint <sha256>   # with LABSWITCH_PROXMOX_PASSWORD (root@pam)
    """
    hosts = [h.strip() for value in esxi or [] for h in value.split(",") if h.strip()]
    if sum(map(bool, (vcenter, hosts, proxmox))) != 1:
        raise ConfigError(
            "init: give --vcenter ADDRESS, --esxi HOST for each standalone host (a lab without vCenter), "
            "or --proxmox NODE (a Proxmox VE cluster)"
        )
    user = user or ("root" if hosts else "root@pam" if proxmox else "administrator@vsphere.local")
    password_env = password_env or (
        usecase.ESXI_PASSWORD_ENV if hosts else usecase.PROXMOX_PASSWORD_ENV if proxmox else usecase.VCENTER_PASSWORD_ENV
    )
    usecase.refuse_overwrite(out, force)  # before any connection
    if bmc_driver not in ("redfish", "racadm", "ipmi"):
        raise ConfigError(f"--bmc-driver {bmc_driver}: one of redfish, racadm, ipmi")
    usecase.bmc_address(bmc_pattern, "esx01.example.com")  # a bad pattern fails now, not after discovery
    password = os.environ.get(password_env)
    if password is None:
        if not sys.stdin.isatty():
            what = "the hosts' root password" if hosts else f"{user}'s password" if proxmox else "the vCenter password"
            raise ConfigError(f"init: ${password_env} is not set; export it with {what} (or pass --password-env VAR)")
        password = typer.prompt(f"Password for {user}", hide_input=True)
    shared, per_host = _thumbprints(thumbprint or [], hosts)
    try:
        tls = TLS(thumbprint=shared, ca_file=str(ca_file) if ca_file else None)
        host_tls = {host: TLS(thumbprint=value) for host, value in per_host.items()}
    except ValidationError as exc:
        raise ConfigError(f"--thumbprint: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc
    addresses = _pairs(bmc or [], "--bmc", "NAME=ADDRESS")
    try:
        pins = {name: TLS(thumbprint=value) for name, value in _pairs(bmc_thumbprint or [], "--bmc-thumbprint", "NAME=SHA256").items()}
    except ValidationError as exc:
        raise ConfigError(f"--bmc-thumbprint: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc
    options = usecase.Options(
        url=vcenter or proxmox or ", ".join(hosts),
        user=user,
        password=SecretStr(password),
        tls=tls,
        host_tls=host_tls,
        bmc_pattern=bmc_pattern,
        bmc_driver=bmc_driver,
        bmc_user=bmc_user,
        password_env=password_env,
        standalone=bool(hosts),
        proxmox=bool(proxmox),
        bmc_addresses=addresses,
        bmc_tls=pins,
    )
    discover = usecase.discover_proxmox if proxmox else (lambda o: usecase.discover_hosts(o, hosts)) if hosts else usecase.discover
    found = discover(options)
    if trust_on_first_use:
        seen, said = usecase.trust_on_first_use(usecase.bmc_targets(found, options), bmc_driver)
        options = replace(options, bmc_tls={**seen, **pins})  # a pin given by hand wins
        for line in said:
            render.note(line)
    text = usecase.render(found, options)
    usecase.write(text, out, force)
    if options.proxmox:
        nodes = sum(len(n) for n in found.clusters.values())
        render.stdout.print(f"wrote {out}: Proxmox VE, {nodes} nodes in {', '.join(found.clusters)}, {found.vms} guests", markup=False)
        render.stdout.print(_proxmox_trust(options), markup=False)
    elif options.standalone:
        render.stdout.print(f"wrote {out}: {len(hosts)} standalone hosts, {found.vms} VMs, no vCenter", markup=False)
    else:
        count = len(found.standalone) + sum(len(h) for h in found.clusters.values())
        render.stdout.print(
            f"wrote {out}: {len(found.clusters)} clusters, {count} hosts ({len(found.standalone)} always on), "
            f"vCenter VM: {found.vcenter_vm or 'not found (set vcenter.vm)'}",
            markup=False,
        )
    render.stdout.print(f"next: export {options.bmc_password_env}=...; labswitch --config {out} status", markup=False)


def _proxmox_trust(options: usecase.Options) -> str:
    """Which of the TLS choices the written [proxmox] makes: every PVE node has its own certificate."""
    if options.tls.ca_file:
        return f"tls: the cluster CA {options.tls.ca_file}: it signed every node's own certificate (the recommended setting)"
    if options.tls.thumbprint:
        return (
            f"tls: {options.url}'s own certificate pinned; every other node's is pinned by the fingerprint the cluster gives for it "
            "(GET /nodes, kept in the state directory); --ca-file /etc/pve/pve-root-ca.pem trusts them all at once"
        )
    return "tls: the system's CAs; for the cluster's own CA, copy /etc/pve/pve-root-ca.pem and pass --ca-file"


def _pairs(values: list[str], flag: str, shape: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, given = value.partition("=")
        if not sep or not name.strip() or not given.strip():
            raise ConfigError(f"{flag} {shown(value)}: give {shape}")
        out[name.strip()] = given.strip()
    return out


def _thumbprints(values: list[str], hosts: list[str]) -> tuple[str | None, dict[str, str]]:
    """--thumbprint values: at most one for every endpoint, and with --esxi one per host as HOST=SHA256."""
    shared = [v for v in values if "=" not in v]
    per_host = dict(v.split("=", 1) for v in values if "=" in v)
    if len(shared) > 1:
        raise ConfigError("--thumbprint: one without a host (for every endpoint); the others as HOST=SHA256")
    for host in per_host:
        if host not in hosts:
            known = ", ".join(hosts) or "none: HOST=SHA256 goes with --esxi"
            raise ConfigError(f"--thumbprint {host}=...: not one of the --esxi hosts ({known})")
    return (shared[0] if shared else None), per_host
