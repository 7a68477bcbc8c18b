"""Peers the BMC conformance suite runs against, each started on 127.0.0.1 and stopped after use.

See ../shared/peers.md. Only the racadm SSH server is written here (no racadm emulator
exists anywhere); it answers in the documented formats of two iDRAC generations.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BIN = Path(sys.executable).parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free now for a server the test starts next. Taken below Linux's ephemeral range (32768-60999), where
    no bind(0) of labsim's or a client's lands, and from this pytest worker's own slice of it (make test runs two):
    a port is never handed to two servers between its choice here and its server's bind."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    low = 20000 + 2000 * (index % 6)
    for port in random.sample(range(low, low + 2000), 2000):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{low + 1999}")


def self_signed(directory: Path) -> tuple[Path, Path, str]:
    """A P-256 certificate for 127.0.0.1: (cert, key, sha256 thumbprint)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "peer.pem", directory / "peer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30, ready_line: bytes | None = None) -> None:
    """Until the peer accepts TCP on ``port``, or (UDP peers) prints ``ready_line`` once bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode}")
        if ready_line is not None:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if ready and proc.stdout.readline().strip() == ready_line:
                return
            continue
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"peer not listening on {port} after {timeout}s")


@contextmanager
def process(cmd: list[str], port: int, ready_line: bytes | None = None, **kw: object) -> Iterator[subprocess.Popen[bytes]]:
    stdout = subprocess.PIPE if ready_line is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    try:
        wait_listening(port, proc, ready_line=ready_line)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class RedfishPeer:
    url: str
    user: str
    password: str
    thumbprint: str
    cert: Path


@contextmanager
def sushy_emulator(workdir: Path, systems: tuple[str, ...] = ("lab-1",), power: str = "Off") -> Iterator[RedfishPeer]:
    """OpenStack sushy-tools' emulator with its fake driver (power changes land 0-11 s later): one system per
    name in ``systems`` (its URL id), each starting in ``power``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key, thumb = self_signed(workdir)
    port = free_port()
    auth = workdir / "htpasswd"
    auth.write_text("admin:" + bcrypt.hashpw(b"s3cret-sushy", bcrypt.gensalt()).decode() + "\n")
    conf = workdir / "emulator.conf"
    conf.write_text(
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {[{'uuid': n, 'name': n, 'power_state': power, 'nics': []} for n in systems]!r}\n"
        f"SUSHY_EMULATOR_STATE_DIR = {str(workdir / 'state')!r}\n"
        f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n"
        f"SUSHY_EMULATOR_AUTH_FILE = {str(auth)!r}\n"
        f"SUSHY_EMULATOR_SSL_CERT = {str(cert)!r}\nSUSHY_EMULATOR_SSL_KEY = {str(key)!r}\n"
    )
    with process([str(BIN / "sushy-emulator"), "--config", str(conf)], port):
        yield RedfishPeer(f"https://127.0.0.1:{port}", "admin", "s3cret-sushy", thumb, cert)


def idrac_mockup(directory: Path) -> Path:
    """Lay the iDRAC R640 captures shipped in sushy-oem-idrac out as a sushy-static mockup tree."""
    import sushy_oem_idrac

    samples = Path(sushy_oem_idrac.__file__).parent / "tests" / "unit" / "json_samples"
    tree = {  # sushy-static serves DIR/<path after /redfish/v1>/index.json
        ".": "root.json",
        "Systems/System.Embedded.1": "system.json",
        "Managers": "manager_collection.json",
        "Managers/iDRAC.Embedded.1": "manager.json",
    }
    for path, sample in tree.items():
        (directory / path).mkdir(parents=True, exist_ok=True)
        shutil.copy(samples / sample, directory / path / "index.json")
    # The captures hold no Systems collection: this one is written here, in the standard shape.
    collection = {
        "@odata.id": "/redfish/v1/Systems",
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        "Name": "Computer System Collection",
        "Members": [{"@odata.id": "/redfish/v1/Systems/System.Embedded.1"}],
        "Members@odata.count": 1,
    }
    (directory / "Systems/index.json").write_text(json.dumps(collection))
    return directory


@contextmanager
def sushy_static_idrac(workdir: Path) -> Iterator[RedfishPeer]:
    """Real iDRAC JSON (PowerEdge R640, iDRAC 3.34) served read-only by sushy-tools' sushy-static."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key, thumb = self_signed(workdir)
    port = free_port()
    mockup = idrac_mockup(workdir / "mockup")
    with process([str(BIN / "sushy-static"), "-i", "127.0.0.1", "-p", str(port), "-m", str(mockup), "-c", str(cert), "-k", str(key)], port):
        yield RedfishPeer(f"https://127.0.0.1:{port}", "root", "calvin-unused", thumb, cert)


DMTF_MOCKUP = Path(__file__).parent / "data" / "dmtf-public-rackmount1"
# Which power layouts each variant of the DMTF tree keeps linked from its chassis (and whether its system links the chassis).
DMTF_LAYOUTS = {
    "published": {},  # EnvironmentMetrics, PowerSubsystem and the deprecated Power, as published
    "power-subsystem": {"drop": ["EnvironmentMetrics"]},
    "deprecated-power": {"drop": ["EnvironmentMetrics", "PowerSubsystem"]},
    "power-in-links": {"drop": ["EnvironmentMetrics", "PowerSubsystem", "Power"], "links_power": True},
    "unlinked-chassis": {"unlink_system": True},
    "no-power": {"drop": ["EnvironmentMetrics", "PowerSubsystem", "Power"]},
}


def dmtf_mockup(directory: Path, layout: str) -> Path:
    """The DMTF public-rackmount1 resources (tests/data) laid out with only ``layout``'s power sources linked."""
    shutil.copytree(DMTF_MOCKUP, directory, ignore=shutil.ignore_patterns("*.md"))
    spec: dict[str, Any] = DMTF_LAYOUTS[layout]
    chassis_file = directory / "Chassis/1U/index.json"
    chassis = json.loads(chassis_file.read_text())
    for key in spec.get("drop", []):
        chassis.pop(key, None)
        chassis.pop(f"{key}@Redfish.Deprecated", None)
    if spec.get("links_power"):
        chassis["Links"]["Power"] = {"@odata.id": "/redfish/v1/Chassis/1U/Power"}
    chassis_file.write_text(json.dumps(chassis))
    if spec.get("unlink_system"):
        system_file = directory / "Systems/437XR1138R2/index.json"
        system = json.loads(system_file.read_text())
        system["Links"].pop("Chassis")
        system_file.write_text(json.dumps(system))
    return directory


@contextmanager
def sushy_static_dmtf(workdir: Path, layout: str) -> Iterator[RedfishPeer]:
    """A variant of DMTF's published rackmount mockup, served read-only by sushy-static."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key, thumb = self_signed(workdir)
    port = free_port()
    mockup = dmtf_mockup(workdir / "mockup", layout)
    with process([str(BIN / "sushy-static"), "-i", "127.0.0.1", "-p", str(port), "-m", str(mockup), "-c", str(cert), "-k", str(key)], port):
        yield RedfishPeer(f"https://127.0.0.1:{port}", "root", "unused", thumb, cert)


FAKE_BMC = """
import os
import sys
from pyghmi.cmd.fakebmc import FakeBmc
import pyghmi.ipmi.bmc as bmc
from pyghmi.ipmi.private import serversession

# pyghmi's fake BMC answers cipher suite 3 (SHA-1) whatever the client proposes, so pyghmi's
# own client, which proposes SHA-256 first, fails (peers.md). A suite-3-only BMC rejects the
# proposal instead (RMCP+ status 0x04, invalid authentication algorithm) and the client falls
# back to SHA-1: this makes the fake do that, and nothing else.
_open = serversession.ServerSession.create_open_session_response
def _suite3_only(self, request):
    if request[12] != 1:
        return bytearray([request[0], 0x04, 0, 0]) + request[4:8]
    return _open(self, request)
serversession.ServerSession.create_open_session_response = _suite3_only

class LabBmc(FakeBmc):
    def __init__(self, port):
        bmc.Bmc.__init__(self, {"admin": "s3cret-ipmi"}, port=port, address="127.0.0.1")
        self.powerstate = "off"
        self.bootdevice = "default"

bmc_server = LabBmc(int(sys.argv[1]))  # binds its UDP socket
print("READY", flush=True)
sys.stdout = open(os.devnull, "w")  # FakeBmc prints each power change; nobody reads the pipe after READY
bmc_server.listen()
"""


@dataclass
class IpmiPeer:
    port: int
    user: str = "admin"
    password: str = "s3cret-ipmi"

    def ipmitool_power(self) -> str:
        """Power as Debian's ipmitool reads it (the cross-check)."""
        out = subprocess.run(
            [
                "ipmitool",
                "-I",
                "lanplus",
                "-C",
                "3",
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-P",
                self.password,
                "power",
                "status",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return "On" if out.strip().lower().endswith("on") else "Off"


@contextmanager
def pyghmi_fake_bmc(workdir: Path) -> Iterator[IpmiPeer]:
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "fakebmc.py"
    script.write_text(FAKE_BMC)
    port = free_port(socket.SOCK_DGRAM)
    with process([sys.executable, str(script), str(port)], port, ready_line=b"READY"):
        yield IpmiPeer(port)


# -- racadm over SSH ----------------------------------------------------------------------
GENERATIONS = {
    # iDRAC 7/8 style
    "idrac8": {
        "status": "Server power status: {state}",
        "ok": "Server power operation successful",
        "already": "Server is already powered {state}",
    },
    # iDRAC 9 style
    "idrac9": {
        "status": "Server Power Status: {state}",
        "ok": "Server power operation successful",
        "already": "Server is already powered {state}.",
    },
}


@dataclass
class RacadmPeer:
    """A test SSH server answering racadm commands: the only hand-written peer (no emulator exists)."""

    port: int
    host_key: str  # OpenSSH public key line
    generation: str
    user: str = "root"
    password: str = "s3cret-racadm"
    power: str = "OFF"
    watts_on: int = 112
    commands: list[str] = field(default_factory=list)

    def answer(self, command: str) -> tuple[str, int]:
        self.commands.append(command)
        fmt = GENERATIONS[self.generation]
        args = command.split()
        if args[:2] == ["racadm", "serveraction"] and len(args) == 3:
            verb = args[2]
            if verb == "powerstatus":
                return fmt["status"].format(state=self.power) + "\n", 0
            target = {"powerup": "ON", "powerdown": "OFF", "graceshutdown": "OFF", "powercycle": "ON", "hardreset": "ON"}.get(verb)
            if target is None:
                return f"ERROR: Invalid action: {verb}\n", 1
            if verb in ("powerup", "powerdown", "graceshutdown") and self.power == target:
                return fmt["already"].format(state=target) + "\n", 1
            self.power = target
            return fmt["ok"] + "\n", 0
        if args[:2] == ["racadm", "getsysinfo"]:
            return (
                "RAC Information:\nRAC Date/Time           = Mon Nov 23 20:00:00 2026\nFirmware Version        = 2.83.83.83\n\n"
                "System Information:\nSystem Model            = PowerEdge R620\nSystem BIOS Version     = 2.9.0\n"
                f"Service Tag             = RAC0620\nHost Name               = esx21.lab.local\nPower Status            = {self.power}\n",
                0,
            )
        if args[:3] == ["racadm", "getconfig", "-g"] and "cfgServerActualPowerConsumption" in command:
            watts = self.watts_on if self.power == "ON" else 0
            return f"{watts} W | {round(watts * 3.412)} Btu/hr\n", 0
        return "ERROR: Unable to perform the requested operation.\n", 1


@contextmanager
def ssh_server(user: str, password: str, handle: Any) -> Iterator[tuple[int, str]]:
    """An asyncssh server on 127.0.0.1 (its own thread and loop) running ``handle(process)``: (port, host key line)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, given: str) -> bool:
            return username == user and given == password

    async def serve() -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(Server, "127.0.0.1", port, server_host_keys=[key], process_factory=handle)

    acceptor: list[asyncssh.SSHAcceptor] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        acceptor.append(loop.run_until_complete(serve()))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("SSH test server did not start")
    try:
        yield port, key.export_public_key().decode().strip()
    finally:
        loop.call_soon_threadsafe(acceptor[0].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


@contextmanager
def racadm_ssh(generation: str = "idrac9") -> Iterator[RacadmPeer]:
    peer = RacadmPeer(0, "", generation)

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        out, status = peer.answer(process.command or "")
        process.stdout.write(out)
        process.exit(status)

    with ssh_server(peer.user, peer.password, handle) as (port, host_key):
        peer.port, peer.host_key = port, host_key
        yield peer


# -- NUT: Debian's nut-server, its dummy-ups driver reading a file the test edits ---------------------
NUT_DRIVER, NUT_UPSD = Path("/lib/nut/dummy-ups"), Path("/lib/nut/upsd")


@dataclass
class NutPeer:
    url: str  # nut://upsmon@127.0.0.1:PORT/ups1
    password: str
    dev: Path  # the dummy file: the UPS's variables, re-read by the driver within a second or two
    env: dict[str, str]

    def set(self, **values: str) -> None:
        """Change UPS variables (``ups_status="OB DISCHRG"`` is ups.status) by editing the dummy file."""
        current = dict(line.split(": ", 1) for line in self.dev.read_text().splitlines() if ": " in line)
        current.update({k.replace("_", "."): v for k, v in values.items()})
        self.dev.write_text("".join(f"{k}: {v}\n" for k, v in current.items()))

    def upsc(self, var: str) -> str:
        """A variable as NUT's own upsc reads it (independent of labswitch)."""
        port = self.url.rsplit(":", 1)[1].split("/")[0]
        proc = subprocess.run(["upsc", f"ups1@127.0.0.1:{port}", var], capture_output=True, text=True, env=self.env, timeout=10)
        return proc.stdout.strip()


@contextmanager
def nut_server(workdir: Path, password: str = "ups-s3cret") -> Iterator[NutPeer]:
    """upsd on 127.0.0.1 with one UPS (ups1) served by dummy-ups in dummy-loop mode: edit the file, NUT follows."""
    etc, state = workdir / "etc", workdir / "state"
    etc.mkdir(parents=True, exist_ok=True)
    state.mkdir(mode=0o700, exist_ok=True)
    port = free_port()
    dev = etc / "ups1.dev"
    dev.write_text("ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\nups.model: Smart-UPS 1500\nups.mfr: APC\n")
    (etc / "ups.conf").write_text(f'[ups1]\ndriver = dummy-ups\nport = {dev}\nmode = dummy-loop\ndesc = "test UPS"\n')
    (etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\nSTATEPATH {state}\n")
    (etc / "upsd.users").write_text(f"[upsmon]\npassword = {password}\nupsmon secondary\n")
    (etc / "nut.conf").write_text("MODE=standalone\n")
    for f in etc.iterdir():
        f.chmod(0o640)
    env = {**os.environ, "NUT_CONFPATH": str(etc), "NUT_STATEPATH": str(state), "NUT_ALTPIDPATH": str(state)}
    user = ["-u", "root"] if os.geteuid() == 0 else []
    driver = subprocess.Popen([str(NUT_DRIVER), "-a", "ups1", "-F", *user], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        socket_file = state / "dummy-ups-ups1"
        deadline = time.monotonic() + 30
        while not socket_file.exists() and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.1)
        with process([str(NUT_UPSD), "-F", *user], port, env=env):
            peer = NutPeer(f"nut://upsmon@127.0.0.1:{port}/ups1", password, dev, env)
            deadline = time.monotonic() + 30
            while peer.upsc("ups.status") in ("", "WAIT") and time.monotonic() < deadline:  # upsd has not heard the driver yet
                time.sleep(0.2)
            yield peer
    finally:
        driver.terminate()
        driver.wait(timeout=10)


# -- MQTT: Debian's mosquitto on 127.0.0.1, with a password file -------------------------------------
@dataclass
class MqttPeer:
    port: int
    user: str
    password: str

    @property
    def url(self) -> str:
        return f"mqtt://{self.user}@127.0.0.1:{self.port}"

    def sub(self, topic: str, count: int, timeout: float = 30) -> list[tuple[str, str]]:
        """(topic, payload) of the first ``count`` messages on ``topic`` (retained ones first), read with mosquitto_sub."""
        argv = ["mosquitto_sub", *self._login(), "-t", topic, "-v", "-C", str(count), "-W", str(int(timeout))]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
        return [tuple(line.split(" ", 1)) for line in proc.stdout.splitlines() if " " in line]  # type: ignore[misc]

    def pub(self, topic: str, payload: str) -> None:
        subprocess.run(["mosquitto_pub", *self._login(), "-t", topic, "-m", payload, "-q", "1"], check=True, timeout=30)

    def _login(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-u", self.user, "-P", self.password]


@contextmanager
def mosquitto(
    workdir: Path,
    user: str = "labswitch",
    password: str = "mqtt-s3cret",
    others: dict[str, str] | None = None,
    acl: str | None = None,
    anonymous: bool = False,
) -> Iterator[MqttPeer]:
    """The broker, with ``user`` (and ``others``: user -> password) in its password file; ``acl``: an acl_file's
    text; ``anonymous``: clients without a login are let in (what a careless broker does; the ACL still applies)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    passwd = workdir / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), user, password], check=True, capture_output=True)
    for name, secret in (others or {}).items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), name, secret], check=True, capture_output=True)
    conf = workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", f"allow_anonymous {str(anonymous).lower()}", f"password_file {passwd}"]
    if acl is not None:
        (workdir / "acl").write_text(acl)
        lines.append(f"acl_file {workdir / 'acl'}")
    conf.write_text("\n".join([*lines, "persistence false", "user root"]) + "\n")
    with process(["mosquitto", "-c", str(conf)], port):
        yield MqttPeer(port, user, password)
