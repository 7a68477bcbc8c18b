"""One conformance suite for every BMC driver, against BMCs this project did not write.

Targets (peers.md): labsim's iDRAC-shaped Redfish BMC; sushy-tools' emulator (fake driver);
real iDRAC R640 captures served read-only by sushy-static; pyghmi's fake BMC over IPMI,
cross-checked with ipmitool; an SSH server answering racadm as iDRAC 8 and iDRAC 9 do; and the
drivers of servers without a BMC against labsim: Wake-on-LAN (its UDP port), a Shelly Gen2 plug
and a Tasmota plug (labsim's plug endpoints, shaped from their documentation: no emulator exists).
Every power claim is read back outside the driver (Redfish GET, ipmitool, the SSH server's state,
labsim's /labsim/physical). A driver that cannot do something says NotSupported; the suite checks it does.
"""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from labswitch.bmc import Driver, Power, driver_for
from labswitch.config import Server
from labswitch.errors import AuthenticationFailed, ConnectionFailed, NotSupported, TLSVerificationFailed
from tests import peers
from tests.conftest import wait_until
from tests.labsim import start as start_labsim


@dataclass
class Target:
    name: str
    server: dict[str, Any]  # the [[servers]] entry, as a user writes it
    truth: Callable[[], str]  # "On" / "Off", read without the driver
    writable: bool = True
    settle: float = 10.0  # how long a power change may take to show
    watts: Callable[[float], bool] | None = None  # None: the driver must say NotSupported
    info: dict[str, Any] = field(default_factory=dict)
    wrong_trust: dict[str, Any] = field(default_factory=dict)  # bmc keys that make trust fail
    can: frozenset[str] = frozenset({"force_off", "graceful", "cycle"})  # the rest must be NotSupported
    turn_off: Callable[[], None] | None = None  # how the test switches the server off when the driver cannot
    password: bool = True  # it has a password to get wrong

    def driver(self, **bmc: Any) -> Driver:
        entry = {**self.server, "bmc": {**self.server["bmc"], **bmc}}
        return driver_for(Server.model_validate(entry), timeout=5)


def redfish_get(url: str, auth: tuple[str, str] | None, cert: str) -> dict[str, Any]:
    return dict(requests.get(url, auth=auth, verify=cert, timeout=10).json())


def entry(driver: str, address: str, user: str, password: str, **bmc: Any) -> dict[str, Any]:
    return {
        "name": "bmc-under-test",
        "esxi": "esx.lab",
        "group": "g",
        "bmc": {"driver": driver, "address": address, "user": user, "password": password, **bmc},
    }


def labsim_target(stack: ExitStack, tmp: Any) -> Target:
    lab = start_labsim(tmp / "labsim", "--host-shutdown-delay", "300ms", "--host-boot-delay", "300ms")
    stack.callback(lab.stop)
    url = lab.bmc_url("esx11")
    return Target(
        "labsim-redfish",
        entry("redfish", url, "root", lab.env["LABSIM_BMC_PASSWORD"], tls={"thumbprint": lab.thumbprint}),
        truth=lambda: str(lab.redfish("esx11").json()["PowerState"]),
        watts=lambda w: w > 0,
        info={"model": "PowerEdge R640", "bmc_firmware": "6.10.30.00", "host_name": "esx11.lab.local"},
        wrong_trust={"tls": {"thumbprint": "0" * 64}},
    )


def sushy_emulator_target(stack: ExitStack, tmp: Any) -> Target:
    peer = stack.enter_context(peers.sushy_emulator(tmp / "sushy"))
    system = f"{peer.url}/redfish/v1/Systems/lab-1"
    return Target(
        "sushy-emulator",
        entry("redfish", peer.url, peer.user, peer.password, tls={"ca_file": str(peer.cert)}),
        truth=lambda: str(redfish_get(system, (peer.user, peer.password), str(peer.cert))["PowerState"]),
        settle=20.0,  # the fake driver applies a change 0-11 s later
        wrong_trust={"tls": {}},  # system CAs: a self-signed certificate is refused
    )


def idrac_capture_target(stack: ExitStack, tmp: Any) -> Target:
    peer = stack.enter_context(peers.sushy_static_idrac(tmp / "idrac"))
    return Target(
        "idrac-r640-capture",
        entry("redfish", peer.url, peer.user, peer.password, tls={"thumbprint": peer.thumbprint}),
        truth=lambda: str(redfish_get(f"{peer.url}/redfish/v1/Systems/System.Embedded.1", None, str(peer.cert))["PowerState"]),
        writable=False,
        info={"model": "PowerEdge R640", "service_tag": "8CYCZ23", "bios_version": "2.10.2", "bmc_firmware": "3.34.34.34"},
        wrong_trust={"tls": {"thumbprint": "f" * 64}},
    )


def ipmi_target(stack: ExitStack, tmp: Any) -> Target:
    peer = stack.enter_context(peers.pyghmi_fake_bmc(tmp / "ipmi"))
    return Target("pyghmi-ipmi", entry("ipmi", f"127.0.0.1:{peer.port}", peer.user, peer.password), truth=peer.ipmitool_power)


def racadm_target(generation: str) -> Callable[[ExitStack, Any], Target]:
    def make(stack: ExitStack, tmp: Any) -> Target:
        peer = stack.enter_context(peers.racadm_ssh(generation))
        return Target(
            f"racadm-{generation}",
            entry("racadm", f"127.0.0.1:{peer.port}", peer.user, peer.password, host_key=peer.host_key),
            truth=lambda: "On" if peer.power == "ON" else "Off",
            watts=lambda w: w == 112,
            info={"model": "PowerEdge R620", "service_tag": "RAC0620", "bios_version": "2.9.0", "bmc_firmware": "2.83.83.83"},
            wrong_trust={"host_key": peers.asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()},
        )

    return make


def labsim_physical(lab: Any, server: str) -> str:
    """A server's power as labsim models it (GET /labsim/physical), whatever drives it."""
    r = requests.get(lab.url.replace("/sdk", "/labsim/physical"), verify=str(lab.cert), timeout=10)
    return str(r.json()["hosts"][server]["power"])


def shut_down_through_vsphere(lab: Any, server: str) -> Callable[[], None]:
    def off() -> None:
        with lab.host_api(server) as host:
            host.rootFolder.childEntity[0].hostFolder.childEntity[0].ShutdownHost_Task(force=True)

    return off


def wol_target(stack: ExitStack, tmp: Any) -> Target:
    lab = start_labsim(tmp / "labsim", "--wol-hosts", "esx11", "--host-shutdown-delay", "300ms", "--host-boot-delay", "300ms")
    stack.callback(lab.stop)
    cfg = tomllib.loads(lab.config.read_text())
    bmc = next(s["bmc"] for s in cfg["servers"] if s["name"] == "esx11")
    server = {**entry("wol", "unused", "", ""), "bmc": {**bmc, "off_after": 1}, "esxi_url": lab.esxi_url("esx11")}
    return Target(
        "wake-on-lan",
        server,
        truth=lambda: labsim_physical(lab, "esx11"),
        can=frozenset(),
        turn_off=shut_down_through_vsphere(lab, "esx11"),
        password=False,
        info={"model": None},
    )


def plug_target(kind: str) -> Callable[[ExitStack, Any], Target]:
    def make(stack: ExitStack, tmp: Any) -> Target:
        lab = start_labsim(tmp / "labsim", "--plug-hosts", f"esx12={kind}", "--host-shutdown-delay", "300ms", "--host-boot-delay", "300ms")
        stack.callback(lab.stop)
        cfg = tomllib.loads(lab.config.read_text())
        bmc = next(s["bmc"] for s in cfg["servers"] if s["name"] == "esx12")
        return Target(
            f"{kind}-plug",
            entry(kind, bmc["address"], "admin", lab.env["LABSIM_BMC_PASSWORD"]),
            truth=lambda: labsim_physical(lab, "esx12"),
            watts=lambda w: w > 15,
            can=frozenset({"force_off", "cycle"}),
            info={"model": "SNPL-00112EU" if kind == "shelly" else "Tasmota"},
        )

    return make


TARGETS = {
    "labsim-redfish": labsim_target,
    "sushy-emulator": sushy_emulator_target,
    "idrac-r640-capture": idrac_capture_target,
    "pyghmi-ipmi": ipmi_target,
    "racadm-idrac8": racadm_target("idrac8"),
    "racadm-idrac9": racadm_target("idrac9"),
    "wake-on-lan": wol_target,
    "shelly-plug": plug_target("shelly"),
    "tasmota-plug": plug_target("tasmota"),
}


@pytest.fixture(scope="module", params=list(TARGETS))
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with ExitStack() as stack:
        yield TARGETS[request.param](stack, tmp_path_factory.mktemp(request.param))


def settle(target: Target, want: str) -> None:
    wait_until(lambda: target.truth() == want, target.settle, f"{target.name} power {want}")


def test_power_state_matches_an_independent_read(target: Target) -> None:
    assert str(target.driver().power_state()) == target.truth()


def switch_off(target: Target, driver: Driver) -> None:
    """Off by the driver where it can, else as the test's target says (through vSphere)."""
    if "force_off" in target.can:
        assert driver.force_off() is True
    else:
        with pytest.raises(NotSupported, match="bmc-under-test"):
            driver.force_off()
        assert target.turn_off is not None
        target.turn_off()
    settle(target, "Off")


def test_power_on_off_graceful_and_already(target: Target) -> None:
    driver = target.driver()
    if not target.writable:
        # Read-only capture: the server is On, so power-on is "already on" and sends nothing.
        assert driver.power_state() is Power.ON and driver.power_on() is False
        return
    if target.truth() == "On":
        switch_off(target, driver)
    if "force_off" in target.can:
        assert driver.force_off() is False  # already off
    assert driver.power_on() is True
    settle(target, "On")
    wait_until(lambda: driver.power_state() is Power.ON, target.settle, f"{target.name}: the driver sees it on")
    assert driver.power_on() is False  # already on: an iDRAC's 409 counts as done
    if "graceful" not in target.can:
        with pytest.raises(NotSupported, match="bmc-under-test"):
            driver.graceful_shutdown()
        return
    assert driver.graceful_shutdown() is True
    settle(target, "Off")
    assert driver.power_state() is Power.OFF


def test_power_cycle_leaves_the_server_on(target: Target) -> None:
    if not target.writable:
        pytest.skip("read-only capture: a cycle cannot be observed (sushy-static ignores POSTs)")
    driver = target.driver()
    if "cycle" not in target.can:
        with pytest.raises(NotSupported, match="bmc-under-test"):
            driver.power_cycle()
        return
    if target.truth() == "Off":
        driver.power_on()
        settle(target, "On")
    driver.power_cycle()
    settle(target, "On")


def test_system_info(target: Target) -> None:
    info = target.driver().system_info()
    assert str(info.power) == target.truth()
    for key, value in target.info.items():
        assert getattr(info, key) == value, key


def test_watts_or_not_supported(target: Target) -> None:
    driver = target.driver()
    if target.watts is None:
        with pytest.raises(NotSupported, match="bmc-under-test"):
            driver.watts()
        return
    if target.truth() == "Off" and target.writable:
        driver.power_on()
        settle(target, "On")
    assert target.watts(driver.watts())


def test_wrong_password(target: Target) -> None:
    if target.name == "idrac-r640-capture":
        pytest.skip("sushy-static has no authentication to refuse")
    if not target.password:
        pytest.skip("Wake-on-LAN has no credentials: a magic packet is not authenticated")
    with pytest.raises(AuthenticationFailed) as err:
        target.driver(password="wrong-s3cret").power_state()
    assert "bmc-under-test" in str(err.value) and "wrong-s3cret" not in str(err.value)


def test_untrusted_identity(target: Target) -> None:
    if not target.wrong_trust:
        pytest.skip(f"{target.name}: no server identity to check (IPMI; plain HTTP plugs on the LAN; a magic packet)")
    with pytest.raises(TLSVerificationFailed, match="bmc-under-test"):
        target.driver(**target.wrong_trust).power_state()


@pytest.mark.parametrize("driver", ["redfish", "racadm", "ipmi", "shelly", "tasmota"])
def test_unreachable_and_silent_bmcs_fail_within_the_timeout(driver: str) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    port = silent.getsockname()[1] if driver != "ipmi" else peers.free_port(socket.SOCK_DGRAM)
    address = (
        f"https://127.0.0.1:{port}"
        if driver == "redfish"
        else f"http://127.0.0.1:{port}"
        if driver in ("shelly", "tasmota")
        else f"127.0.0.1:{port}"
    )
    extra = (
        {"host_key": peers.asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()} if driver == "racadm" else {}
    )
    server = Server.model_validate(entry(driver, address, "root", "pw", **extra))
    start = time.monotonic()
    with pytest.raises(ConnectionFailed, match="bmc-under-test"):
        driver_for(server, timeout=2).power_state()
    # bmc_timeout is the whole budget of the operation, retries included (it once took 17.8 s for 5 s).
    assert time.monotonic() - start < 2 + 0.5
    silent.close()


# Where a Redfish service publishes a chassis' power draw: read back with plain GETs of the served resources.
PUBLISHED_AT = {
    "published": ("Chassis/1U/EnvironmentMetrics", lambda d: d["PowerWatts"]["Reading"]),
    "power-subsystem": ("Chassis/1U/PowerSubsystem/PowerSupplies/Bay1/Metrics", lambda d: d["InputPowerWatts"]["Reading"]),
    "deprecated-power": ("Chassis/1U/Power", lambda d: d["PowerControl"][0]["PowerConsumedWatts"]),
    "power-in-links": ("Chassis/1U/Power", lambda d: d["PowerControl"][0]["PowerConsumedWatts"]),
    "unlinked-chassis": ("Chassis/1U/EnvironmentMetrics", lambda d: d["PowerWatts"]["Reading"]),
}


@pytest.mark.parametrize("layout", list(peers.DMTF_LAYOUTS))
def test_redfish_watts_wherever_the_service_publishes_them(layout: str, tmp_path: Any) -> None:
    with peers.sushy_static_dmtf(tmp_path, layout) as peer:
        driver = driver_for(
            Server.model_validate(entry("redfish", peer.url, peer.user, peer.password, tls={"thumbprint": peer.thumbprint})), timeout=5
        )
        if layout not in PUBLISHED_AT:
            with pytest.raises(NotSupported, match="reports no power draw"):
                driver.watts()
            return
        path, reading = PUBLISHED_AT[layout]
        truth = reading(redfish_get(f"{peer.url}/redfish/v1/{path}", None, str(peer.cert)))
        assert driver.watts() == pytest.approx(float(truth))
