"""A smart plug as a server's power, or as its meter: Shelly Gen2+ (RPC over HTTP, digest auth) and
Tasmota (HTTP ``cm?cmnd=``, user and password as parameters), as their documentation shows them.

The server's state comes from the relay and the draw: relay off is Off; relay on and a draw above
``standby_watts`` is On, at or below it Off (ESXi shut down, the power supply on standby). Powering
on switches the relay on (the server's firmware is set to power on after AC loss), or, with the
relay on and the server in standby, cycles the relay. A plug cannot ask an OS to shut down:
graceful shutdown is NotSupported.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from pydantic import SecretStr
from requests.auth import HTTPDigestAuth

from labswitch.bmc.base import Power, SystemInfo
from labswitch.config import Plug
from labswitch.errors import AuthenticationFailed, BMCError, ConnectionFailed, NotSupported

RELAY_OFF_SECONDS = 3.0  # a relay cycle: off this long, so the power supply sees the AC go


class PlugDriver:
    """Shelly or Tasmota, by ``plug.driver``; ``role`` names it in errors (bmc or meter)."""

    def __init__(self, server: str, plug: Plug, timeout: float, role: str = "bmc") -> None:
        self.server = server
        self.plug = plug
        self.timeout = timeout
        self.role = role
        self.where = f"server {server} plug {plug.base_url}"
        self.http = requests.Session()
        self.http.trust_env = False  # a proxy from the environment would not reach a plug on the LAN
        secret = plug.password.get_secret_value() if isinstance(plug.password, SecretStr) else None  # resolved on load
        self._password = secret
        if plug.driver == "shelly" and secret is not None:
            self.http.auth = HTTPDigestAuth(plug.user, secret)

    # -- protocol -----------------------------------------------------------------
    def power_state(self) -> Power:
        relay, watts = self._read()
        return Power.ON if relay and watts > self.plug.standby_watts else Power.OFF

    def power_on(self) -> bool:
        relay, watts = self._read()
        if relay and watts > self.plug.standby_watts:
            return False
        if relay:  # on standby: the firmware powers the server on when the AC comes back
            self._switch(False)
            time.sleep(RELAY_OFF_SECONDS)
        self._switch(True)
        return True

    def graceful_shutdown(self) -> bool:
        raise NotSupported(f"{self.where}: a plug cannot ask the OS to shut down; it is shut down through vSphere")

    def force_off(self) -> bool:
        relay, _ = self._read()
        if not relay:
            return False
        self._switch(False)
        return True

    def power_cycle(self) -> None:
        self._switch(False)
        time.sleep(RELAY_OFF_SECONDS)
        self._switch(True)

    def system_info(self) -> SystemInfo:
        if self.plug.driver == "shelly":
            info = self._get("/rpc/Shelly.GetDeviceInfo")
            return SystemInfo(str(info.get("model") or "") or None, None, None, info.get("ver"), info.get("id"), self.power_state())
        status = self._tasmota("Status 0")
        firmware = (status.get("StatusFWR") or {}).get("Version")
        return SystemInfo("Tasmota", None, None, firmware, (status.get("Status") or {}).get("DeviceName"), self.power_state())

    def watts(self) -> float:
        return self._read()[1]

    def relay(self) -> bool:
        """Whether the plug's relay is on (the outlet is live)."""
        return self._read()[0]

    def close(self) -> None:
        self.http.close()

    # -- the two protocols ------------------------------------------------------
    def _read(self) -> tuple[bool, float]:
        """(relay on, watts now)."""
        if self.plug.driver == "shelly":
            status = self._get("/rpc/Switch.GetStatus", id=self.plug.switch)
            return bool(status.get("output")), float(status.get("apower") or 0.0)
        relay = self._tasmota(f"Power{self.plug.switch + 1}")
        state = relay.get(f"POWER{self.plug.switch + 1}", relay.get("POWER"))
        energy = (self._tasmota("Status 10").get("StatusSNS") or {}).get("ENERGY") or {}
        return state == "ON", float(energy.get("Power") or 0.0)

    def _switch(self, on: bool) -> None:
        if self.plug.driver == "shelly":
            self._get("/rpc/Switch.Set", id=self.plug.switch, on="true" if on else "false")
        else:
            self._tasmota(f"Power{self.plug.switch + 1} {'On' if on else 'Off'}")

    def _tasmota(self, command: str) -> dict[str, Any]:
        params = {"cmnd": command}
        if self._password is not None:
            params |= {"user": self.plug.user, "password": self._password}
        return self._get("/cm", **params)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        try:
            r = self.http.get(self.plug.base_url + path, params=params, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            raise ConnectionFailed(f"{self.where}: cannot reach the plug ({type(exc).__name__}); check {self.role}.address") from exc
        if r.status_code == 401:
            raise AuthenticationFailed(
                f"{self.where}: login refused for user {self.plug.user!r}; check {self.role}.user and {self.role}.password"
            )
        if r.status_code != 200:
            raise BMCError(f"{self.where}: {path} answered HTTP {r.status_code}")
        try:
            body = r.json()
        except ValueError as exc:
            raise BMCError(f"{self.where}: {path} answered with no JSON; is it a {self.plug.driver} plug?") from exc
        return body if isinstance(body, dict) else {}
