"""How the Redfish driver uses a BMC's connection and sessions, read back from labsim's iDRAC-shaped BMC.

Reads are one GET each on one kept-alive TLS connection with Basic auth; an action opens one
Redfish session, which close() deletes (BMCs have few session slots); a BMC that refuses Basic
auth is read through a session. Connections are counted by urllib3's pool (the HTTP library's
own count), sessions by GET /redfish/v1/SessionService/Sessions on the BMC.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import pytest
import requests

from labswitch.bmc import Power, driver_for
from labswitch.bmc.redfish import RedfishDriver
from labswitch.config import Server
from tests.conftest import wait_until
from tests.labsim import Lab

SYSTEM = "/redfish/v1/Systems/System.Embedded.1"
SESSIONS = "/redfish/v1/SessionService/Sessions"


def driver(lab: Lab, server: str = "esx11", **bmc: Any) -> RedfishDriver:
    entry = {
        "name": server,
        "esxi": f"{server}.lab.local",
        "group": "g",
        "bmc": {
            "driver": "redfish",
            "address": lab.bmc_url(server),
            "user": "root",
            "password": lab.env["LABSIM_BMC_PASSWORD"],
            "tls": {"thumbprint": lab.thumbprint},
            **bmc,
        },
    }
    d = driver_for(Server.model_validate(entry), timeout=5)
    assert isinstance(d, RedfishDriver)
    return d


@pytest.fixture
def handshakes(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """TLS handshakes made by this process from now on (each one a new connection)."""
    count = 0
    real = ssl.SSLSocket.do_handshake

    def counted(self: ssl.SSLSocket, *args: Any) -> None:
        nonlocal count
        count += 1
        real(self, *args)

    monkeypatch.setattr(ssl.SSLSocket, "do_handshake", counted)
    return lambda: count


def requests_sent(d: RedfishDriver) -> int:
    """Requests sent to the BMC, as urllib3's pool counted them."""
    assert d._conn is not None
    adapter = d._conn._session.get_adapter(d.bmc.base_url)
    return sum(p.num_requests for p in adapter.poolmanager.pools._container.values())  # type: ignore[attr-defined]


def session_token(lab: Lab, server: str) -> str:
    r = requests.post(
        lab.bmc_url(server) + SESSIONS,
        json={"UserName": "root", "Password": lab.env["LABSIM_BMC_PASSWORD"]},
        verify=str(lab.cert),
        timeout=10,
    )
    r.raise_for_status()
    return r.headers["X-Auth-Token"]


def open_sessions(lab: Lab, server: str, token: str | None = None) -> list[str]:
    """The BMC's open sessions, read with Basic auth, or with a session of the test's own (left out)."""
    if token is None:
        members = lab.redfish(server, path=SESSIONS).json()["Members"]
    else:
        r = requests.get(lab.bmc_url(server) + SESSIONS, headers={"X-Auth-Token": token}, verify=str(lab.cert), timeout=10)
        members = r.json()["Members"]
    return [m["@odata.id"] for m in members if not (token and m["@odata.id"].endswith(token))]


def test_power_reads_are_one_request_each_on_one_connection_and_open_no_session(lab: Lab, handshakes: Callable[[], int]) -> None:
    d = driver(lab, system=SYSTEM)
    try:
        states = [d.power_state() for _ in range(3)]
        assert states == [Power.ON] * 3
        assert (handshakes(), requests_sent(d)) == (1, 3)
        assert open_sessions(lab, "esx11") == []
    finally:
        d.close()


def test_without_bmc_system_the_first_read_finds_the_system_once(lab: Lab, handshakes: Callable[[], int]) -> None:
    d = driver(lab)
    try:
        assert [d.power_state(), d.power_state()] == [Power.ON, Power.ON]
        assert (handshakes(), requests_sent(d)) == (1, 3)  # the Systems collection once, then the system twice
    finally:
        d.close()


def test_an_action_opens_one_session_and_close_deletes_it(lab: Lab) -> None:
    d = driver(lab)
    assert d.power_on() is False  # already on: the iDRAC's 409, counted as done
    assert len(open_sessions(lab, "esx11")) == 1
    assert d.power_state() is Power.ON  # read through the session now
    d.close()
    assert open_sessions(lab, "esx11") == []


def test_keep_alive_false_is_one_connection_per_request(lab: Lab, handshakes: Callable[[], int]) -> None:
    d = driver(lab, system=SYSTEM, keep_alive=False)
    try:
        assert [d.power_state(), d.power_state()] == [Power.ON, Power.ON]
        assert (handshakes(), requests_sent(d)) == (2, 2)
    finally:
        d.close()


def test_a_bmc_that_refuses_basic_auth_is_read_and_driven_through_a_session(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory("--bmc-no-basic-auth", "--host-shutdown-delay", "200ms")
    token = session_token(lab, "esx11")
    assert lab.redfish("esx11").status_code == 401  # the BMC really refuses Basic auth
    d = driver(lab)
    assert d.power_state() is Power.ON
    assert d.graceful_shutdown() is True
    assert len(open_sessions(lab, "esx11", token)) == 1
    d.close()
    assert open_sessions(lab, "esx11", token) == []

    def off() -> bool:
        r = requests.get(lab.bmc_url("esx11") + SYSTEM, headers={"X-Auth-Token": token}, verify=str(lab.cert), timeout=10)
        return bool(r.json()["PowerState"] == "Off")

    wait_until(off, 10, "esx11 off after the driver's graceful shutdown")
