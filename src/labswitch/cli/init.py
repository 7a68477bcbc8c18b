"""labswitch init"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError

from labswitch import render
from labswitch.cli import app
from labswitch.config import TLS
from labswitch.errors import ConfigError
from labswitch.usecases import init as usecase


@app.command("init")
def init_command(
    vcenter: Annotated[str, typer.Option("--vcenter", help="vCenter address or URL (https://vcsa.lab.local/sdk).")],
    user: Annotated[str, typer.Option("--user", help="vCenter user.")] = "administrator@vsphere.local",
    password_env: Annotated[
        str, typer.Option("--password-env", help="Environment variable holding the vCenter password (read now, referenced in the file).")
    ] = usecase.VCENTER_PASSWORD_ENV,
    thumbprint: Annotated[str | None, typer.Option("--thumbprint", help="Trust vCenter's certificate by its SHA-256.")] = None,
    ca_file: Annotated[Path | None, typer.Option("--ca-file", help="Trust vCenter's certificate through this CA (PEM).")] = None,
    bmc_pattern: Annotated[
        str, typer.Option("--bmc-pattern", help="BMC address from the host name: {host} (short), {fqdn}, {domain}.")
    ] = "{host}-oob",
    bmc_driver: Annotated[str, typer.Option("--bmc-driver", help="redfish, racadm or ipmi.")] = "redfish",
    bmc_user: Annotated[str, typer.Option("--bmc-user", help="BMC user.")] = "root",
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write.")] = Path("labswitch.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config from a live vCenter: a group per cluster, standalone hosts always on.

    BMC addresses follow --bmc-pattern (a common convention: esx21-oob for host esx21);
    secrets are written as environment references, never as values. Never overwrites
    without --force.

    Example:

      export LABSWITCH_VCENTER_PASSWORD=...   # read from the environment, not from the command line

      labswitch init --vcenter vcsa.lab.local --bmc-pattern "{host}-idrac.lab.local"
    """
    usecase.refuse_overwrite(out, force)  # before any connection
    if bmc_driver not in ("redfish", "racadm", "ipmi"):
        raise ConfigError(f"--bmc-driver {bmc_driver}: one of redfish, racadm, ipmi")
    usecase.bmc_address(bmc_pattern, "esx01.example.com")  # a bad pattern fails now, not after discovery
    password = os.environ.get(password_env)
    if password is None:
        if not sys.stdin.isatty():
            raise ConfigError(f"init: ${password_env} is not set; export it with the vCenter password (or pass --password-env VAR)")
        password = typer.prompt(f"Password for {user}", hide_input=True)
    try:
        tls = TLS(thumbprint=thumbprint, ca_file=str(ca_file) if ca_file else None)
    except ValidationError as exc:
        raise ConfigError(f"--thumbprint: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    options = usecase.Options(
        url=vcenter,
        user=user,
        password=SecretStr(password),
        tls=tls,
        bmc_pattern=bmc_pattern,
        bmc_driver=bmc_driver,
        bmc_user=bmc_user,
        password_env=password_env,
    )
    found = usecase.discover(options)
    text = usecase.render(found, options)
    usecase.write(text, out, force)
    hosts = len(found.standalone) + sum(len(h) for h in found.clusters.values())
    render.stdout.print(
        f"wrote {out}: {len(found.clusters)} clusters, {hosts} hosts ({len(found.standalone)} always on), "
        f"vCenter VM: {found.vcenter_vm or 'not found (set vcenter.vm)'}",
        markup=False,
    )
    render.stdout.print(f"next: export {options.bmc_password_env}=...; labswitch --config {out} status", markup=False)
