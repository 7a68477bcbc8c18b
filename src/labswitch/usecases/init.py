"""`labswitch init`: discover clusters and hosts from vCenter and write a commented config.

A group per cluster, standalone hosts in an ``always_on`` group, BMC addresses from a
pattern, secrets as environment references. The file is rendered with tomlkit so the
comments survive, and validated by the same loader every command uses before it is written.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import tomlkit
from pydantic import SecretStr

from labswitch import vsphere
from labswitch.config import TLS, VCenter
from labswitch.config.load import parse
from labswitch.errors import ConfigError, TLSVerificationFailed
from labswitch.hostnet import is_ip
from labswitch.plan import is_vcenter_vm
from labswitch.usecases.power import vcenter_addresses

VCENTER_PASSWORD_ENV = "LABSWITCH_VCENTER_PASSWORD"
BMC_PASSWORD_ENV = "LABSWITCH_BMC_PASSWORD"
ALWAYS_ON = "always_on"


@dataclass(frozen=True)
class Discovered:
    clusters: Mapping[str, tuple[str, ...]]  # cluster name -> host names
    standalone: tuple[str, ...]
    vcenter_vm: str | None
    vms: int = 0


@dataclass(frozen=True)
class Options:
    url: str
    user: str
    password: SecretStr
    tls: TLS = field(default_factory=TLS)
    bmc_pattern: str = "{host}-oob"
    bmc_driver: str = "redfish"
    bmc_user: str = "root"
    password_env: str = VCENTER_PASSWORD_ENV
    bmc_password_env: str = BMC_PASSWORD_ENV


def discover(options: Options) -> Discovered:
    vc = VCenter(url=options.url, user=options.user, password=options.password, tls=options.tls)
    try:
        with vsphere.connect(vc) as session:
            snap = session.hosts_and_vms()
    except TLSVerificationFailed as exc:
        seen = _presented_thumbprint(vc.https_url)
        hint = f"; it presented SHA-256 {seen}: if that is your vCenter, pass --thumbprint {seen}" if seen else ""
        raise TLSVerificationFailed(f"{exc}{hint}") from None
    clusters: dict[str, list[str]] = {}
    standalone = []
    for host in snap.hosts:
        if host.cluster is None:
            standalone.append(host.name)
        else:
            clusters.setdefault(host.cluster, []).append(host.name)
    identities = vcenter_addresses(vc.https_url)
    vm = next((v.name for v in snap.vms if is_vcenter_vm(v, None, identities)), None)
    return Discovered({c: tuple(h) for c, h in sorted(clusters.items())}, tuple(standalone), vm, len(snap.vms))


def _presented_thumbprint(url: str) -> str | None:
    parts = urlsplit(url)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # only to show what the server presents, never to trust it
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 443), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return hashlib.sha256(der).hexdigest() if der else None


def group_name(cluster: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", cluster.lower()).strip("-")
    return slug or "cluster"


def short_name(host: str) -> str:
    return host if is_ip(host) else host.split(".", 1)[0]


def bmc_address(pattern: str, host: str) -> str:
    short = short_name(host)
    domain = host.split(".", 1)[1] if "." in host and short != host else ""
    try:
        return pattern.format(host=short, fqdn=host, domain=domain)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"--bmc-pattern {pattern!r}: {exc}; use the fields {{host}}, {{fqdn}} and {{domain}}") from None


def render(found: Discovered, options: Options) -> str:
    doc = tomlkit.document()
    today = datetime.date.today().isoformat()
    doc.add(tomlkit.comment(f"labswitch configuration, written by `labswitch init` from {options.url} on {today}."))
    doc.add(tomlkit.comment("Review the groups and the BMC addresses, then run: labswitch status"))
    doc.add(tomlkit.comment(f"Secrets are references, never values: export {options.password_env} and {options.bmc_password_env}"))
    doc.add(tomlkit.comment('(or use { file = "PATH" } or { keyring = "service/user" }).'))
    doc.add(tomlkit.nl())

    vc = tomlkit.table()
    vc.add("url", options.url)
    vc.add("user", options.user)
    vc.add("password", _inline({"env": options.password_env}))
    tls = {k: v for k, v in options.tls.model_dump().items() if v}
    if tls:
        vc.add("tls", _inline(tls))
    else:
        vc.add(tomlkit.comment('tls = { ca_file = "/path/to/vcenter-ca.pem" }  # or { thumbprint = "<sha256>" }; default: system CAs'))
    if found.vcenter_vm:
        vc.add("vm", _commented(found.vcenter_vm, "the vCenter appliance's VM (found by its guest address): never shut down"))
    doc.add("vcenter", vc)

    policy = tomlkit.table()
    policy.add("startup_tag", _commented("StartUp", "`labswitch up` starts the VMs with this tag (Tag or Category/Tag)"))
    policy.add("hard_power_off", _commented(False, "power off VMs without VMware Tools (or that ignore a shutdown) on `down`"))
    policy.add("protect", _commented([], 'VM name globs never shut down, e.g. ["dc*", "backup01"]'))
    doc.add("policy", policy)

    groups = tomlkit.table(is_super_table=True)
    if found.standalone:
        always = tomlkit.table()
        always.add("always_on", _commented(True, "standalone hosts: never switched off"))
        groups.add(ALWAYS_ON, always)
    for cluster in found.clusters:
        g = tomlkit.table()
        g.add("always_on", _commented(False, f"cluster {cluster}"))
        groups.add(group_name(cluster), g)
    doc.add("groups", groups)

    servers = tomlkit.aot()
    members = [(h, ALWAYS_ON) for h in found.standalone] + [(h, group_name(c)) for c, hosts in found.clusters.items() for h in hosts]
    for host, group in members:
        s = tomlkit.table()
        s.add("name", short_name(host))
        s.add("esxi", host)
        s.add("group", group)
        bmc = {"driver": options.bmc_driver, "address": bmc_address(options.bmc_pattern, host), "user": options.bmc_user}
        s.add("bmc", _inline({**bmc, "password": {"env": options.bmc_password_env}}))
        servers.append(s)
    doc.add("servers", servers)
    text = tomlkit.dumps(doc)
    parse(text.encode(), source="labswitch init output", resolve_secrets=False)  # what is written loads, or nothing is written
    return text


def _commented(value: object, text: str) -> tomlkit.items.Item:
    item = tomlkit.item(value)
    item.comment(text)
    return item


def _inline(values: Mapping[str, object]) -> tomlkit.items.InlineTable:
    table = tomlkit.inline_table()
    for key, value in values.items():
        table.append(key, _inline(value) if isinstance(value, Mapping) else value)
    return table


def refuse_overwrite(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ConfigError(f"{out}: exists; pass --force to overwrite it, or --out another file")


def write(text: str, out: Path, force: bool) -> None:
    refuse_overwrite(out, force)  # again: the file may have appeared during discovery
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write: {exc.strerror}; pass --out a writable path") from None
