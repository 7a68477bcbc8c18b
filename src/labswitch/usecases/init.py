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
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import tomlkit
from pydantic import SecretStr

from labswitch import vsphere
from labswitch.config import BMC, TLS, ESXi, Proxmox, Server, VCenter
from labswitch.config.load import parse, write_private
from labswitch.errors import ConfigError, TLSVerificationFailed
from labswitch.hostnet import is_ip
from labswitch.plan import is_vcenter_vm
from labswitch.usecases.power import vcenter_addresses
from labswitch.vsphere import inventory
from labswitch.vsphere.session import close_session, login_for_host, open_session

VCENTER_PASSWORD_ENV = "LABSWITCH_VCENTER_PASSWORD"
PROXMOX_PASSWORD_ENV = "LABSWITCH_PROXMOX_PASSWORD"
ESXI_PASSWORD_ENV = "LABSWITCH_ESXI_PASSWORD"
BMC_PASSWORD_ENV = "LABSWITCH_BMC_PASSWORD"
ALWAYS_ON = "always_on"
LAB = "lab"  # the one group of a lab without vCenter
STANDALONE_NODE = "standalone"  # a Proxmox VE node in no cluster


@dataclass(frozen=True)
class Discovered:
    clusters: Mapping[str, tuple[str, ...]]  # cluster name -> host names
    standalone: tuple[str, ...]
    vcenter_vm: str | None
    vms: int = 0
    addresses: Mapping[str, str] = field(default_factory=dict)  # Proxmox VE: node -> its cluster address


@dataclass(frozen=True)
class Options:
    url: str
    user: str
    password: SecretStr
    tls: TLS = field(default_factory=TLS)
    host_tls: Mapping[str, TLS] = field(default_factory=dict)  # --esxi: a host's own pin (its self-signed certificate)
    bmc_pattern: str = "{host}-oob"
    bmc_driver: str = "redfish"
    bmc_user: str = "root"
    password_env: str = VCENTER_PASSWORD_ENV
    bmc_password_env: str = BMC_PASSWORD_ENV
    standalone: bool = False  # url names ESXi hosts, not a vCenter: the config gets [esxi]
    proxmox: bool = False  # url is a Proxmox VE node: the config gets [proxmox]
    bmc_addresses: Mapping[str, str] = field(default_factory=dict)  # --bmc NAME=ADDRESS: server (or host) -> its BMC
    bmc_tls: Mapping[str, TLS] = field(default_factory=dict)  # server -> how its BMC is trusted (--bmc-thumbprint, TOFU)


def discover(options: Options) -> Discovered:
    vc = VCenter(url=options.url, user=options.user, password=options.password, tls=options.tls)
    try:
        with vsphere.connect(vc) as session:
            snap = session.hosts_and_vms()
    except TLSVerificationFailed as exc:
        raise _with_thumbprint(exc, vc.https_url, "your vCenter") from exc
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


def discover_hosts(options: Options, hosts: Sequence[str]) -> Discovered:
    """Standalone hosts (no vCenter): each logged in to with the [esxi] login, in parallel; all standalone."""
    esxi = ESXi(user=options.user, password=options.password, tls=options.tls)

    def read(address: str) -> int:
        own = options.host_tls.get(address)
        server = Server(name=host_names(hosts)[address], esxi=address, group="lab", bmc=_NO_BMC, esxi_tls=own)
        login = login_for_host(esxi, server)
        try:
            si = open_session(login)
        except TLSVerificationFailed as exc:
            raise _with_thumbprint(exc, server.direct_url, "your host", f"{address}=" if len(hosts) > 1 else "") from exc
        try:
            return len(inventory.read(si.RetrieveContent(), login.where).vms)
        finally:
            close_session(si, login.where)

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        counts = list(pool.map(read, hosts))
    return Discovered({}, tuple(hosts), None, sum(counts))


def discover_proxmox(options: Options) -> Discovered:
    """A Proxmox VE cluster through one node's API: its nodes (a cluster's, or one standalone node) and guests."""
    from labswitch.proxmox import Client, inventory

    config = Proxmox(url=options.url, user=options.user, password=options.password, tls=options.tls)
    try:
        snap = inventory.read(Client(config))
    except TLSVerificationFailed as exc:
        raise _with_thumbprint(exc, config.https_url, "your Proxmox VE node") from exc
    clusters: dict[str, list[str]] = {}
    for host in snap.hosts:
        clusters.setdefault(host.cluster or STANDALONE_NODE, []).append(host.name)
    addresses = {h.name: h.address for h in snap.hosts if h.address}
    return Discovered({c: tuple(n) for c, n in sorted(clusters.items())}, (), None, len(snap.vms), addresses)


_NO_BMC = BMC(driver="redfish", address="unused", user="unused", password=SecretStr("unused"))  # discovery needs none


def _with_thumbprint(exc: TLSVerificationFailed, url: str, what: str, host: str = "") -> TLSVerificationFailed:
    """The TLS error, with the SHA-256 the endpoint presented: what --thumbprint would pin (``host``: "HOST=")."""
    seen = _presented_thumbprint(url)
    hint = f"; it presented SHA-256 {seen}: if that is {what}, pass --thumbprint {host}{seen}" if seen else ""
    return TLSVerificationFailed(f"{exc}{hint}")


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


def host_names(addresses: Sequence[str]) -> dict[str, str]:
    """A server name per host address: its short name; with the port where two share one (host:port)."""
    parts = {a: urlsplit(f"//{a}") for a in addresses}
    base = {a: short_name(p.hostname or a) for a, p in parts.items()}
    return {a: (f"{base[a]}-{parts[a].port}" if list(base.values()).count(base[a]) > 1 and parts[a].port else base[a]) for a in addresses}


def bmc_address(pattern: str, host: str) -> str:
    short = short_name(host)
    domain = host.split(".", 1)[1] if "." in host and short != host else ""
    try:
        return pattern.format(host=short, fqdn=host, domain=domain)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"--bmc-pattern {pattern!r}: {exc}; use the fields {{host}}, {{fqdn}} and {{domain}}") from exc


def bmc_targets(found: Discovered, options: Options) -> dict[str, tuple[str, str, str]]:
    """Each host -> (its server's name, its group, its BMC's address: --bmc's, else from --bmc-pattern)."""
    members = [(h, LAB if options.standalone else ALWAYS_ON) for h in found.standalone]
    if options.proxmox:
        members = []
    members += [(h, group_name(c)) for c, hosts in found.clusters.items() for h in hosts]
    names = host_names(found.standalone) if options.standalone else {}
    out = {}
    for host, group in members:
        name = names.get(host) or short_name(host)
        named = urlsplit(f"//{host}").hostname or host  # an address with a port: the host's name or IP alone
        given = options.bmc_addresses.get(name) or options.bmc_addresses.get(host)
        out[host] = (name, group, given or bmc_address(options.bmc_pattern, named))
    return out


def trust_on_first_use(targets: Mapping[str, tuple[str, str, str]], driver: str, timeout: float = 10.0) -> tuple[dict[str, TLS], list[str]]:
    """Each BMC's certificate as it answers now, pinned by its SHA-256 (Redfish and racadm speak TLS; IPMI does
    not): server -> TLS, and a line per server saying what was trusted (or why nothing was)."""
    if driver == "ipmi":
        return {}, ["--trust-on-first-use: IPMI has no certificate to pin; nothing written"]
    pins: dict[str, TLS] = {}
    said: list[str] = []

    def read(item: tuple[str, str]) -> tuple[str, str, str | None, str | None]:
        name, address = item
        parts = urlsplit(address if "://" in address else f"//{address}")
        host, port = parts.hostname or address, parts.port or (443 if driver == "redfish" else 22)
        if driver != "redfish":
            return name, f"{host}:{port}", None, "racadm speaks SSH: pin its host key with bmc.host_key instead"
        try:
            pem = ssl.get_server_certificate((host, port), timeout=timeout)
        except (OSError, ssl.SSLError) as exc:
            return name, f"{host}:{port}", None, f"cannot reach it ({type(exc).__name__}); pin it later with bmc.tls"
        return name, f"{host}:{port}", hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest(), None

    with ThreadPoolExecutor(max_workers=16) as pool:
        for name, where, digest, why in pool.map(read, [(n, a) for n, _, a in targets.values()]):
            if digest is None:
                said.append(f"server {name} BMC {where}: not pinned: {why}")
                continue
            pins[name] = TLS(thumbprint=digest)
            said.append(f"server {name} BMC {where}: trusted on first use, SHA-256 {digest}; compare it with the BMC's own")
    return pins, said


def render(found: Discovered, options: Options) -> str:
    """The config file: commented, secrets as references; checked to load before it is returned."""
    doc = tomlkit.document()
    today = datetime.date.today().isoformat()
    doc.add(tomlkit.comment(f"labswitch configuration, written by `labswitch init` from {options.url} on {today}."))
    doc.add(tomlkit.comment("Review the groups and the BMC addresses, then run: labswitch status"))
    doc.add(tomlkit.comment(f"Secrets are references, never values: export {options.password_env} and {options.bmc_password_env}"))
    doc.add(tomlkit.comment('(or use { file = "PATH" } or { keyring = "service/user" }).'))
    doc.add(tomlkit.nl())
    if options.proxmox:
        doc.add("proxmox", _proxmox(options))
    else:
        doc.add("esxi" if options.standalone else "vcenter", _vcenter(found, options))
    doc.add("policy", _policy(options))
    doc.add("groups", _groups(found, options))
    doc.add("servers", _servers(found, options))
    text = tomlkit.dumps(doc)
    parse(text.encode(), source="labswitch init output", resolve_secrets=False)  # what is written loads, or nothing is written
    return text


def _vcenter(found: Discovered, options: Options) -> tomlkit.items.Table:
    vc = tomlkit.table()
    if not options.standalone:
        vc.add("url", options.url)
    vc.add("user", options.user)
    vc.add("password", _inline({"env": options.password_env}))
    tls = {k: v for k, v in options.tls.model_dump().items() if v}
    if tls:
        vc.add("tls", _inline(tls))
    else:
        vc.add(tomlkit.comment('tls = { ca_file = "/path/to/ca.pem" }  # or { thumbprint = "<sha256>" }; default: system CAs'))
    if found.vcenter_vm:
        vc.add("vm", _commented(found.vcenter_vm, "the vCenter appliance's VM (found by its guest address): never shut down"))
    return vc


def _proxmox(options: Options) -> tomlkit.items.Table:
    pve = tomlkit.table()
    pve.add("url", options.url)
    pve.add("user", _commented(options.user, 'user@realm; or an API token: token = "user@realm!name" with token_secret'))
    pve.add("password", _inline({"env": options.password_env}))
    tls = {k: v for k, v in options.tls.model_dump().items() if v}
    if tls:
        pve.add("tls", _inline(tls))
    else:
        pve.add(tomlkit.comment('tls = { ca_file = "/etc/pve/pve-root-ca.pem" }  # or { thumbprint = "<sha256>" }; default: system CAs'))
    return pve


def _policy(options: Options) -> tomlkit.items.Table:
    policy = tomlkit.table()
    if options.proxmox:
        policy.add("stop_last", _commented([], 'guest name globs the others need, stopped last and started first, e.g. ["pbs*"]'))
    elif options.standalone:
        policy.add("startup_from_autostart", _commented(True, "`labswitch up` starts VMs in each host's own autostart order"))
    else:
        policy.add("startup_tag", _commented("StartUp", "`labswitch up` starts the VMs with this tag (Tag or Category/Tag)"))
    policy.add("hard_power_off", _commented(False, "power off VMs without VMware Tools (or that ignore a shutdown) on `down`"))
    policy.add("protect", _commented([], 'VM name globs never shut down, e.g. ["dc*", "backup01"]'))
    return policy


def _groups(found: Discovered, options: Options) -> tomlkit.items.Table:
    groups = tomlkit.table(is_super_table=True)
    if options.proxmox:
        for cluster in found.clusters:
            g = tomlkit.table()
            g.add("always_on", _commented(False, f"Proxmox VE cluster {cluster}" if cluster != STANDALONE_NODE else "standalone nodes"))
            groups.add(group_name(cluster), g)
        return groups
    if options.standalone:
        lab = tomlkit.table()
        lab.add("always_on", _commented(False, "standalone hosts, no vCenter: switched off and on by labswitch"))
        groups.add(LAB, lab)
    elif found.standalone:
        always = tomlkit.table()
        always.add("always_on", _commented(True, "standalone hosts: never switched off"))
        groups.add(ALWAYS_ON, always)
    for cluster in found.clusters:
        g = tomlkit.table()
        g.add("always_on", _commented(False, f"cluster {cluster}"))
        groups.add(group_name(cluster), g)
    return groups


def _servers(found: Discovered, options: Options) -> tomlkit.items.AoT:
    servers = tomlkit.aot()
    for host, (name, group, address) in bmc_targets(found, options).items():
        s = tomlkit.table()
        s.add("name", name)
        if options.proxmox:
            s.add("node", host)
            if host in found.addresses:
                s.add("proxmox_url", f"https://{found.addresses[host]}:8006")
        else:
            s.add("esxi", host)
        s.add("group", group)
        bmc: dict[str, object] = {"driver": options.bmc_driver, "address": address, "user": options.bmc_user}
        bmc["password"] = {"env": options.bmc_password_env}
        if name in options.bmc_tls:
            bmc["tls"] = {k: v for k, v in options.bmc_tls[name].model_dump().items() if v}
        s.add("bmc", _inline(bmc))
        if host in options.host_tls:
            s.add("esxi_tls", _inline({k: v for k, v in options.host_tls[host].model_dump().items() if v}))
        servers.append(s)
    return servers


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
        write_private(out, text)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write: {exc.strerror}; pass --out a writable path") from exc
