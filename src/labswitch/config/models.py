"""The configuration's shape: TOML tables validated into frozen pydantic models.

Key names are binding (see the README): ``[vcenter]``, ``[policy]``,
``[groups.NAME]``, ``[[servers]]`` with a ``bmc`` table, ``[energy]``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator

from labswitch.config.secrets import EnvSecret, FileSecret, KeyringSecret, SecretRef
from labswitch.errors import ConfigError

_SECRET_FORMS = 'a secret is { env = "VAR" }, { file = "PATH" }, { keyring = "service/user" } or a string'


def _parse_secret(value: Any) -> Any:
    if isinstance(value, str):
        return SecretStr(value)
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        kinds: dict[str, type[BaseModel]] = {"env": EnvSecret, "file": FileSecret, "keyring": KeyringSecret}
        if key in kinds:
            return kinds[key].model_validate(value)
    if isinstance(value, (EnvSecret, FileSecret, KeyringSecret, SecretStr)):
        return value
    raise ValueError(_SECRET_FORMS)


Secret = Annotated[SecretRef, BeforeValidator(_parse_secret)]
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?")


def _duration(value: Any) -> Any:
    """Seconds as a number, or a duration such as "90s", "2m", "1h30m"."""
    if not isinstance(value, str):
        return value
    if re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return float(value)
    m = _DURATION.fullmatch(value.strip().lower())
    if not value.strip() or m is None:
        raise ValueError('must be seconds or a duration such as "90s", "2m" or "1h30m"')
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return hours * 3600 + minutes * 60 + seconds


PositiveSeconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]  # seconds, or "90s", "5m", "1h30m"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLS(Strict):
    """How to trust an endpoint: system CAs by default, or one of these."""

    ca_file: str | None = None
    thumbprint: str | None = None
    insecure: bool = False

    @field_validator("thumbprint")
    @classmethod
    def _sha256_hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value.replace(":", "").strip().lower()
        if re.fullmatch(r"[0-9a-f]{40}", digits):
            raise ValueError("that is a SHA-1 thumbprint; give the SHA-256 one (openssl x509 -noout -fingerprint -sha256)")
        if not re.fullmatch(r"[0-9a-f]{64}", digits):
            raise ValueError("must be the certificate's SHA-256 as 64 hex digits (colons allowed)")
        return digits

    @model_validator(mode="after")
    def _one_way(self) -> TLS:
        chosen = [k for k in ("ca_file", "thumbprint") if getattr(self, k)] + (["insecure"] if self.insecure else [])
        if len(chosen) > 1:
            raise ValueError(f"choose one of ca_file, thumbprint or insecure, not {' and '.join(chosen)}")
        return self


def _check_address(value: str) -> str:
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a host name, host:port or URL without spaces")
    parts = urlsplit(value if "://" in value else f"//{value}")
    if "://" in value and parts.scheme not in ("http", "https", "ssh"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}; use https://")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("has a malformed port") from None
    if not parts.hostname:
        raise ValueError("has no host name")
    return value


Address = Annotated[str, BeforeValidator(lambda v: _check_address(v) if isinstance(v, str) else v)]


class VCenter(Strict):
    url: Address
    user: Annotated[str, Field(min_length=1)]
    password: Secret
    tls: TLS = TLS()
    timeout: PositiveSeconds = 30.0
    vm: str | None = None  # the vCenter appliance's VM name, when its guest IP/name cannot be matched

    @property
    def https_url(self) -> str:
        """The SDK URL: a bare host gets https:// and /sdk."""
        url = self.url if "://" in self.url else f"https://{self.url}"
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path if parts.path not in ('', '/') else '/sdk'}"


class Proxmox(Strict):
    """A Proxmox VE cluster's API: a node's URL (any node answers for the whole cluster; each server's proxmox_url is
    tried when it does not), and a login: user@realm with a password (a ticket, with its CSRF token on writes), or an
    API token (token = "user@realm!name" with token_secret)."""

    url: Address
    user: Annotated[str, Field(min_length=1, pattern=r"^[^@\s]+@[^@\s!]+$")] = "root@pam"
    password: Secret | None = None
    token: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s!]+![A-Za-z][A-Za-z0-9._-]*$")] | None = None
    token_secret: Secret | None = None
    tls: TLS = TLS()
    timeout: PositiveSeconds = 30.0

    @model_validator(mode="after")
    def _one_login(self) -> Proxmox:
        if (self.token is None) != (self.token_secret is None):
            raise ValueError('an API token needs both token = "user@realm!name" and token_secret')
        if (self.password is None) == (self.token is None):
            raise ValueError("give password (for user), or token and token_secret: one of the two")
        return self

    @property
    def https_url(self) -> str:
        """The API's base: https://host:8006 for a bare host (Proxmox VE's port)."""
        url = self.url if "://" in self.url else f"https://{self.url}"
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 8006}"


class ESXi(Strict):
    """The login for talking to ESXi hosts directly (whole-lab cycle; labs without vCenter)."""

    user: Annotated[str, Field(min_length=1)] = "root"
    password: Secret
    tls: TLS = TLS()
    timeout: PositiveSeconds = 30.0


def _openssh_key(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?", value.strip()):
        raise ValueError("must be an OpenSSH public key line such as 'ssh-ed25519 AAAA...' (ssh-keyscan prints them)")
    return value.strip() if value else value


class BMC(Strict):
    driver: Literal["redfish", "racadm", "ipmi"]
    address: Address
    user: Annotated[str, Field(min_length=1)]
    password: Secret
    tls: TLS = TLS()  # redfish
    # redfish: the ComputerSystem's path (default: the first one /redfish/v1/Systems lists). Given,
    # a power read is one request; needed when a service has several systems.
    system: Annotated[str, Field(pattern=r"^/redfish/v1/Systems/[^/]+/?$")] | None = None
    keep_alive: bool = True  # redfish: reuse the TLS connection within a run (false: sushy's Connection: close)
    known_hosts: str | None = None  # racadm: an OpenSSH known_hosts file (default ~/.ssh/known_hosts)
    host_key: str | None = None  # racadm: the pinned public key, "ssh-ed25519 AAAA..."

    _host_key = field_validator("host_key")(_openssh_key)

    def endpoint(self, scheme: str, default_port: int) -> tuple[str, int]:
        """(host, port) of the address for a driver's protocol."""
        parts = urlsplit(self.address if "://" in self.address else f"//{self.address}")
        return parts.hostname or "", parts.port or default_port

    @property
    def base_url(self) -> str:
        """The address as an https:// base URL (a Redfish service root's host)."""
        if "://" in self.address:
            parts = urlsplit(self.address)
            return f"{parts.scheme}://{parts.netloc}"
        return f"https://{self.address}"


def _mac(value: str) -> str:
    digits = re.sub(r"[:\-.]", "", value.strip()).lower()
    if not re.fullmatch(r"[0-9a-f]{12}", digits):
        raise ValueError("must be a MAC address such as 3c:ec:ef:12:34:56")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


class WakeOnLan(Strict):
    """No BMC: woken by a Wake-on-LAN magic packet; on/off worked out from the host's reachability."""

    driver: Literal["wol"]
    mac: Annotated[str, BeforeValidator(lambda v: _mac(v) if isinstance(v, str) else v)] | None = None
    broadcast: str = "255.255.255.255"  # the subnet's broadcast address, e.g. 192.168.4.255
    port: Annotated[int, Field(ge=1, le=65535)] = 9
    off_after: PositiveSeconds = 30.0  # once seen up, how long its host must stay unreachable to count as off
    # "proxmox": a peer node sends the packet (POST /nodes/{node}/wakeonlan; the MAC is the node's wakeonlan setting in
    # Proxmox VE), for a node on a segment labswitch's machine cannot broadcast to
    via: Literal["packet", "proxmox"] = "packet"

    @model_validator(mode="after")
    def _mac_needed(self) -> WakeOnLan:
        if self.via == "packet" and self.mac is None:
            raise ValueError('needs mac = "aa:bb:cc:dd:ee:ff" (or via = "proxmox": a peer node wakes it)')
        return self


class Plug(Strict):
    """A smart plug: the server's power (as ``bmc``) or only its meter (as ``meter``)."""

    driver: Literal["shelly", "tasmota"]
    address: Address  # http://plug01 (Shelly Gen2+ RPC, or Tasmota's HTTP API)
    user: str = "admin"
    password: Secret | None = None  # Shelly: digest auth (user admin); Tasmota: the web password
    switch: Annotated[int, Field(ge=0)] = 0  # Shelly's switch id; Tasmota's relay is Power<switch + 1>
    standby_watts: Annotated[float, Field(ge=0)] = 15.0  # relay on and a draw at or below it: the server is off
    cut_after_shutdown: bool = False  # as bmc: the relay is cut once a down confirmed the server off

    @property
    def base_url(self) -> str:
        return self.address.rstrip("/") if "://" in self.address else f"http://{self.address}"


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]


class Ups(Strict):
    """A UPS watched through NUT: when the power is gone, the lab goes down in order (and back up)."""

    url: str  # nut://USER@HOST[:PORT]/UPS
    password: Secret | None = None
    on_battery_after: Duration = 120.0  # on battery this long: down
    min_runtime: Duration = 0.0  # battery runtime under this: down at once (0: not used)
    groups: list[str] = []  # the groups a UPS down takes down (default: every group that is not always_on)
    whole_lab: bool = False  # the UPS down is a whole-lab one (vCenter's host last)
    up_after: Duration | None = None  # power back (OL) with the charge over up_min_charge this long: up --restore (off: None)
    up_min_charge: Annotated[float, Field(ge=0, le=100)] = 50.0
    poll_interval: PositiveSeconds = 5.0
    timeout: PositiveSeconds = 10.0

    @field_validator("url")
    @classmethod
    def _nut_url(cls, value: str) -> str:
        from labswitch.nut import parse_url

        parse_url(value)
        return value


class ServeSchedule(Strict):
    """A run by the clock inside `labswitch serve` (for containers without systemd): `labswitch schedule`'s form."""

    action: Literal["up", "down"]
    at: str  # DAYS HH:MM, local time: "Mon..Fri 07:30", "Sat,Sun 09:00", "18:00" (every day)
    groups: list[str] = []  # default: every group that is not always_on
    restore: bool = False  # up: start exactly the VMs that ran before the last down

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        from labswitch.schedule import parse_at

        try:
            parse_at(value)
        except ConfigError as exc:
            raise ValueError(str(exc).replace("--at ", "", 1)) from exc
        return value

    @model_validator(mode="after")
    def _restore_with_up(self) -> ServeSchedule:
        if self.restore and self.action != "up":
            raise ValueError('restore goes with action = "up"')
        return self


class Serve(Strict):
    """`labswitch serve`: where it listens, and the token every API request carries."""

    listen: str = "127.0.0.1:8330"  # loopback unless told otherwise; a reverse proxy is the usual way out
    token: Secret | None = None  # the API's bearer token (required: serve refuses to start without it)
    password_hash: str | None = None  # the page's login (bcrypt), written by `labswitch serve passwd`
    tls_cert: str | None = None
    tls_key: str | None = None
    schedules: list[ServeSchedule] = []
    poll_interval: PositiveSeconds = 30.0  # one read of the lab for the page, metrics, MQTT
    metrics_token: Secret | None = None  # /metrics wants it as a bearer token (Prometheus' authorization); unset: /metrics is open
    trusted_proxies: list[str] = []  # reverse proxies whose X-Forwarded-For/-Proto are believed (addresses); none by default
    max_body: Annotated[int, Field(ge=1024)] = 1_048_576  # bytes a request body may have; refused before it is read beyond
    api_docs: bool = False  # the OpenAPI pages (/docs, /openapi.json); off: they would load Swagger UI from a CDN


class Mqtt(Strict):
    """Home Assistant over MQTT (inside `labswitch serve`): discovery, a switch per group, sensors."""

    url: str  # mqtt://USER@HOST[:PORT] (1883), or mqtts:// (8883) for TLS
    password: Secret | None = None
    tls: TLS = TLS()  # mqtts://: how to trust the broker
    client_cert: str | None = None  # mqtts://: a client certificate (PEM) for brokers that want one (require_certificate)
    client_key: str | None = None  # its private key (PEM)
    discovery_prefix: str = "homeassistant"
    base_topic: str = "labswitch"
    lab_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "lab"  # one device per lab in Home Assistant
    state_interval: PositiveSeconds = 60.0  # seconds between state publications (and at once after a run)

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must be mqtt://USER@HOST[:PORT] or mqtts://USER@HOST[:PORT]")
        return value

    @model_validator(mode="after")
    def _client_pair(self) -> Mqtt:
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("give both client_cert and client_key, or neither")
        if self.client_cert and urlsplit(self.url).scheme != "mqtts":
            raise ValueError("client_cert is for mqtts:// (TLS); the url is mqtt://")
        return self


class Appliance(Strict):
    """The vCenter Server Appliance's SSH login, for `labswitch vcsa check|repair`."""

    address: Address
    user: Annotated[str, Field(min_length=1)] = "root"
    password: Secret
    known_hosts: str | None = None  # an OpenSSH known_hosts file (default ~/.ssh/known_hosts)
    host_key: str | None = None  # the pinned public key, "ssh-ed25519 AAAA..."
    timeout: PositiveSeconds = 60.0  # one command; a full service restart gets service_timeout
    service_timeout: PositiveSeconds = 1200.0  # service-control --stop/--start --all

    _host_key = field_validator("host_key")(_openssh_key)

    def endpoint(self) -> tuple[str, int]:
        parts = urlsplit(self.address if "://" in self.address else f"//{self.address}")
        return parts.hostname or "", parts.port or 22


class OSShutdown(Strict):
    """A plain server's own shutdown over SSH (platform = "servers"): key or password login, host key checked."""

    user: Annotated[str, Field(min_length=1)] = "root"
    key_file: str | None = None  # an OpenSSH private key (e.g. ~/.ssh/id_ed25519); else password
    password: Secret | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    command: Annotated[str, Field(min_length=1)] = "systemctl poweroff"
    known_hosts: str | None = None  # an OpenSSH known_hosts file (default ~/.ssh/known_hosts)
    host_key: str | None = None  # the pinned public key, "ssh-ed25519 AAAA..." (ssh-keyscan prints it)
    timeout: PositiveSeconds = 20.0  # login and the command's start

    _host_key = field_validator("host_key")(_openssh_key)

    @model_validator(mode="after")
    def _login(self) -> OSShutdown:
        if (self.key_file is None) == (self.password is None):
            raise ValueError("give key_file (an OpenSSH private key) or password, one of them")
        return self


_READY = re.compile(r"(tcp|http|https):(?:([^:/\s]+):)?(\d{1,5})")


def _ready(value: Any) -> Any:
    """ "tcp:2049", "https:443" or "tcp:nas2.lab:2049": what answers once a plain server is up."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        for item in value:
            m = _READY.fullmatch(str(item).strip())
            if m is None or not 0 < int(m.group(3)) < 65536:
                raise ValueError(f'{item!r}: a check is "tcp:PORT", "http:PORT" or "https:PORT" (optionally "tcp:HOST:PORT")')
    return value


class Server(Strict):
    name: Annotated[str, Field(min_length=1)]
    esxi: Annotated[str, Field(min_length=1)]  # the host's name in vCenter (and its address); a Proxmox node's: its node name
    node: Annotated[str, Field(min_length=1)] | None = None  # Proxmox VE: the node's name in the cluster
    proxmox_url: Address | None = None  # Proxmox VE: the node's own API (https://host:8006), tried when [proxmox] url does not answer
    group: Annotated[str, Field(min_length=1)]
    bmc: Annotated[BMC | WakeOnLan | Plug, Field(discriminator="driver")]  # what powers it on and off
    meter: Plug | None = None  # a plug that measures it (its BMC reports no watts, or there is none)
    esxi_url: Address | None = None  # how to reach the host's own API, when not https://<esxi>/sdk
    # This host's own login, where it differs from [esxi]'s (its own root password; its self-signed certificate's thumbprint):
    esxi_user: Annotated[str, Field(min_length=1)] | None = None
    esxi_password: Secret | None = None
    esxi_tls: TLS | None = None
    # A plain server (platform = "servers": a NAS, a storage box, a firewall), which no hypervisor API drives: down is
    # its OS's own shutdown (ssh, else the BMC's ACPI button), confirmed off by its BMC; up is powered on, then ready.
    platform: Literal["servers"] | None = None  # None: the lab's own platform ([vcenter], [esxi] or [proxmox])
    address: Annotated[str, Field(min_length=1)] | None = None  # a plain server's address (SSH, ready checks)
    ssh: OSShutdown | None = None
    ready: Annotated[list[str], BeforeValidator(_ready)] = []  # "tcp:2049" (NFS), "tcp:3260" (iSCSI), "https:443"

    @model_validator(mode="before")
    @classmethod
    def _node_names_the_host(cls, data: Any) -> Any:
        """A Proxmox VE server names its node (node = "pve1"); its host's name is the node's. A plain server has no
        host in any inventory: its name stands in."""
        if isinstance(data, dict) and "node" in data and "esxi" not in data:
            return {**data, "esxi": data["node"]}
        if isinstance(data, dict) and data.get("platform") == "servers" and "esxi" not in data and "name" in data:
            return {**data, "esxi": data["name"]}
        return data

    @model_validator(mode="after")
    def _plain(self) -> Server:
        lab_keys = ("node", "proxmox_url", "esxi_url", "esxi_user", "esxi_password", "esxi_tls")
        if self.plain:
            given = [k for k in lab_keys if getattr(self, k) is not None]
            if given or self.esxi != self.name:
                raise ValueError(f'{", ".join(given) or "esxi"}: a plain server (platform = "servers") has no hypervisor; remove it')
            if (self.ssh or self.ready) and self.address is None:
                raise ValueError('a plain server with ssh or ready needs its address = "nas.lab" (or an IP)')
        elif self.address is not None or self.ssh is not None or self.ready:
            raise ValueError('address, ssh and ready are for a plain server: add platform = "servers"')
        return self

    @property
    def plain(self) -> bool:
        """A machine no hypervisor API drives (platform = "servers")."""
        return self.platform == "servers"

    @property
    def woken_by_peer(self) -> bool:
        """A Proxmox VE node with no BMC of its own, woken by another node (bmc = { driver = "wol", via = "proxmox" })."""
        return isinstance(self.bmc, WakeOnLan) and self.bmc.via == "proxmox"

    @property
    def direct_url(self) -> str:
        """The host's own SDK URL: esxi_url, else https://<esxi>/sdk."""
        url = self.esxi_url or self.esxi
        url = url if "://" in url else f"https://{url}"
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path if parts.path not in ('', '/') else '/sdk'}"


class Group(Strict):
    always_on: bool = False
    holds_vcenter: bool = False  # its down is a whole-lab down: vCenter's own host goes last, through its own API
    after: list[str] = []  # groups it needs (storage, the directory): up before it, down after it (plan.groups)


class Policy(Strict):
    startup_tag: str = "StartUp"
    startup_from_autostart: bool = False  # up: start VMs in each host's own autostart order (its AutoStartManager)
    protect: list[str] = []
    protect_tag: str | None = None
    max_parallel: Annotated[int, Field(ge=1, le=256)] = 16
    guest_shutdown_timeout: PositiveSeconds = 300.0
    hard_power_off: bool = False
    host_off_timeout: PositiveSeconds = 600.0
    bmc_force_off: bool = False
    host_connect_timeout: PositiveSeconds = 900.0
    maintenance_timeout: PositiveSeconds = 600.0
    bmc_timeout: PositiveSeconds = 30.0
    bmc_poll_interval: PositiveSeconds = 2.0
    vcls_timeout: PositiveSeconds = 180.0  # a cluster's vCLS agents gone after retreat mode, or running again after it
    vcenter_dependencies: list[str] = []  # VM name globs vCenter needs (DNS, directory): started before it, stopped after it
    vcenter_boot_timeout: PositiveSeconds = 1200.0  # whole-lab up: from vCenter's VM started to its SOAP and REST APIs answering
    stop_last: list[str] = []  # Proxmox VE: guest name globs the others need (a backup server, a storage VM): stopped last, started first
    ha_start_timeout: PositiveSeconds = 300.0  # Proxmox VE up: HA's own start of its started resources' guests, waited for
    ceph_ready_timeout: PositiveSeconds = 600.0  # Proxmox VE up: from the flags cleared to every placement group active
    idle_down_after: Duration | None = None  # `serve`: a group idle this long goes down (off: None), e.g. "3h"
    idle_cpu_mhz: Annotated[float, Field(gt=0)] = 100.0  # a VM using less CPU than this (quickStats.overallCpuUsage) is idle


class Wave(Strict):
    """One start-up wave: the selected VMs it names start together, then labswitch waits."""

    name: str | None = None
    vms: list[str] = []  # VM name globs
    tags: list[str] = []  # "Tag" or "Category/Tag"
    wait: Literal["tools", "heartbeat", "none"] = "tools"
    delay: Annotated[float, Field(ge=0)] = 0.0  # seconds to wait after the condition
    timeout: PositiveSeconds = 300.0


class Startup(Strict):
    waves: list[Wave] = []


class Energy(Strict):
    price_per_kwh: Annotated[float, Field(ge=0)] = 0.30
    currency: str = "EUR"
    server_watts: Annotated[float, Field(gt=0)] = 80.0  # a server's draw when on, where no BMC reading says otherwise
    sample_interval: Duration = 300.0  # `serve` samples every server's draw this often into the journal (0: not at all)


def _group_order(groups: dict[str, Group]) -> None:
    """groups.NAME.after names groups that exist, and no group needs itself, directly or not."""
    for name, group in groups.items():
        for needed in group.after:
            if needed not in groups:
                raise ValueError(f"groups.{name}.after: no group {needed!r} (groups: {', '.join(sorted(groups))})")
    for name in groups:
        seen: set[str] = set()
        todo = list(groups[name].after)
        while todo:
            needed = todo.pop()
            if needed == name:
                raise ValueError(f"groups.{name}.after: {name} would need itself (through {', '.join(sorted(seen)) or name}); remove one")
            if needed not in seen:
                seen.add(needed)
                todo += groups[needed].after


class Config(Strict):
    state_dir: str | None = None
    vcenter: VCenter | None = None  # None: a lab of standalone ESXi hosts, reached through [esxi]
    proxmox: Proxmox | None = None  # a Proxmox VE cluster instead of vSphere
    policy: Policy = Policy()
    groups: dict[str, Group] = {}
    servers: list[Server] = []
    startup: Startup = Startup()
    energy: Energy = Energy()
    vcsa: Appliance | None = None
    esxi: ESXi | None = None
    ups: Ups | None = None
    serve: Serve = Serve()
    mqtt: Mqtt | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.proxmox is not None and (self.vcenter is not None or self.esxi is not None):
            raise ValueError("[proxmox] and [vcenter]/[esxi] in one config: a config drives one lab; split it in two")
        if self.vcenter is None and self.esxi is None and self.proxmox is None:
            raise ValueError(
                "no [vcenter], [esxi] or [proxmox]: add [vcenter] (url, user, password), [esxi] (user, password) for standalone "
                "hosts, or [proxmox] (url, user and password or token) for a Proxmox VE cluster"
            )
        for i, server in enumerate(self.servers):
            if server.woken_by_peer and self.proxmox is None:
                raise ValueError(f'servers[{i}].bmc: via = "proxmox" wakes a node through a Proxmox VE cluster; add [proxmox]')
            if self.proxmox is not None and server.node is None and not server.plain:
                raise ValueError(f'servers[{i}]: a Proxmox VE server names its node: node = "{server.name}"')
            if self.proxmox is None and (server.node is not None or server.proxmox_url is not None):
                raise ValueError(f"servers[{i}]: node and proxmox_url are for a Proxmox VE lab; add [proxmox] or remove them")
        _group_order(self.groups)
        for name in self.ups.groups if self.ups else []:
            if name not in self.groups:
                raise ValueError(f"ups.groups: unknown group {name!r} (groups: {', '.join(sorted(self.groups)) or 'none'})")
        for i, schedule in enumerate(self.serve.schedules):
            for name in schedule.groups:
                if name not in self.groups:
                    known = ", ".join(sorted(self.groups)) or "none"
                    raise ValueError(f"serve.schedules[{i}].groups: unknown group {name!r} (groups: {known})")
        if self.policy.idle_down_after is not None and not self.energy.sample_interval:
            raise ValueError("policy.idle_down_after needs energy samples: set energy.sample_interval (idleness is read with them)")
        seen: dict[str, str] = {}
        for i, server in enumerate(self.servers):
            if server.group not in self.groups:
                known = ", ".join(sorted(self.groups)) or "none defined"
                raise ValueError(f"servers[{i}].group: unknown group {server.group!r} (groups: {known}); add [groups.{server.group}]")
            for key in dict.fromkeys((server.name, server.esxi)):
                if key in seen:
                    raise ValueError(f"servers[{i}]: {key!r} is already used by {seen[key]}; names must be unique")
                seen[key] = f"servers[{i}]"
        return self

    def need_vsphere(self, what: str) -> None:
        """What only vSphere has (audits, fixes, the vCenter appliance): one line for a Proxmox VE lab."""
        if self.proxmox is not None:
            raise ConfigError(f"{what} is for vSphere; this config drives a Proxmox VE cluster ([proxmox]): nothing to do there")

    def need_vcenter(self, what: str) -> VCenter:
        """[vcenter], for what works only through vCenter; a lab of standalone hosts (or a Proxmox VE one) gets one clear line."""
        self.need_vsphere(what)
        if self.vcenter is None:
            raise ConfigError(f"{what} works through vCenter; this config has [esxi] and no [vcenter]: add [vcenter] to use it")
        return self.vcenter

    def server(self, name: str) -> Server | None:
        return next((s for s in self.servers if s.name == name or s.esxi == name), None)

    @property
    def lab_id(self) -> str:
        """Which lab this config drives, for the journal and the run lock: its vCenter (scheme, host and port of the
        SDK URL), or, without one, the set of its hosts. Two labs never see each other's runs, VM states, cluster
        changes or lock; one vCenter reached by two names counts as two labs (the identity needs no connection:
        the lock is taken before anything is contacted)."""
        if self.vcenter is not None:
            parts = urlsplit(self.vcenter.https_url)
            return f"vcenter {parts.scheme}://{parts.netloc.lower()}"
        if self.proxmox is not None:
            return "proxmox " + ",".join(sorted((s.node or s.esxi).lower() for s in self.lab_servers))
        return "hosts " + ",".join(sorted(s.esxi.lower() for s in self.lab_servers))

    @property
    def lab_servers(self) -> list[Server]:
        """The servers the lab's platform drives (its hosts or nodes), without the plain ones."""
        return [s for s in self.servers if not s.plain]
