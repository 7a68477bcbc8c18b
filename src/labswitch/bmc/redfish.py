"""Redfish driver on OpenStack's sushy: session auth with basic fallback, TLS per config, iDRAC quirks.

Reset types are chosen from what the system advertises (ResetType@Redfish.AllowableValues).
An iDRAC answers a power change the server is already in with HTTP 409: that counts as done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

import requests
import sushy
from sushy import exceptions as sx
from sushy.auth import SessionOrBasicAuth
from sushy.connector import Connector

from labswitch import tls
from labswitch.bmc.base import Power, SystemInfo
from labswitch.config import BMC
from labswitch.errors import AuthenticationFailed, BMCError, ConnectionFailed, NotSupported, TLSVerificationFailed

log = logging.getLogger(__name__)
T = TypeVar("T")

_POWER = {sushy.PowerState.ON: Power.ON, sushy.PowerState.OFF: Power.OFF}


class RedfishDriver:
    """One Redfish BMC (an iDRAC, or any DMTF Redfish service)."""

    def __init__(self, server: str, bmc: BMC, timeout: float) -> None:
        self.server = server
        self.bmc = bmc
        self.timeout = timeout
        self.where = f"server {server} BMC {bmc.base_url}"
        self._root: sushy.Sushy | None = None
        self._system_path: str | None = None

    # -- protocol -----------------------------------------------------------------
    def power_state(self) -> Power:
        state = self._call(lambda: self._system().power_state)
        return _POWER.get(state, Power.UNKNOWN)

    def power_on(self) -> bool:
        return self._reset(["On"], already=Power.ON)

    def graceful_shutdown(self) -> bool:
        return self._reset(["GracefulShutdown", "PushPowerButton"], already=Power.OFF)

    def force_off(self) -> bool:
        return self._reset(["ForceOff"], already=Power.OFF)

    def power_cycle(self) -> None:
        self._reset(["PowerCycle", "ForceRestart"], already=None)

    def system_info(self) -> SystemInfo:
        def read() -> SystemInfo:
            system = self._system()
            managers = system.managers
            return SystemInfo(
                model=system.model,
                service_tag=system.sku or system.serial_number,
                bios_version=system.bios_version,
                bmc_firmware=managers[0].firmware_version if managers else None,
                host_name=system.hostname,
                power=_POWER.get(system.power_state, Power.UNKNOWN),
            )

        return self._call(read)

    def watts(self) -> float:
        def read() -> float | None:
            try:
                chassis_list = self._system().chassis
            except (sx.MissingAttributeError, sx.ResourceNotFoundError):
                return None  # a linked Chassis that is not there (seen in real iDRAC captures)
            for chassis in chassis_list:
                try:
                    # sushy's Power resource does not model PowerControl: read the member from its JSON.
                    controls = chassis.power.json.get("PowerControl") or []
                except (sx.MissingAttributeError, sx.ResourceNotFoundError):
                    continue
                for control in controls:
                    if isinstance(control, dict) and isinstance(control.get("PowerConsumedWatts"), int | float):
                        return float(control["PowerConsumedWatts"])
            return None

        watts = self._call(read)
        if watts is None:
            raise NotSupported(f"{self.where}: reports no PowerControl PowerConsumedWatts")
        return watts

    def close(self) -> None:
        if self._root is not None:
            try:
                self._root._conn.close()
            except Exception:
                log.debug("%s: closing the session failed", self.where, exc_info=True)
            self._root = None

    # -- internals ----------------------------------------------------------------
    def _connect(self) -> sushy.Sushy:
        if self._root is None:
            password = self.bmc.password.get_secret_value()  # type: ignore[union-attr]  # resolved on load
            connector = Connector(
                self.bmc.base_url,
                verify=tls.requests_verify(self.bmc.tls),
                default_request_timeout=self.timeout,
                connect_timeout=self.timeout,
                server_side_retries=3,
                server_side_retries_delay=1,
            )
            # sushy passes verify on each request (safe from REQUESTS_CA_BUNDLE);
            # a thumbprint pin needs urllib3's assert_fingerprint on its session.
            tls.configure_session(connector._session, self.bmc.tls, self.where)
            self._root = sushy.Sushy(
                self.bmc.base_url,
                auth=SessionOrBasicAuth(username=self.bmc.user, password=password),
                connector=connector,
                verify=tls.requests_verify(self.bmc.tls),
            )
        return self._root

    def _system(self) -> sushy.resources.system.system.System:
        root = self._connect()
        if self._system_path is None:
            members = root.get_system_collection().members_identities
            if not members:
                raise BMCError(f"{self.where}: the Redfish service lists no ComputerSystem")
            self._system_path = sorted(members)[0]
        return root.get_system(self._system_path)

    def _reset(self, preferred: Iterable[str], already: Power | None) -> bool:
        def do() -> bool:
            system = self._system()
            allowed = {v.value for v in system.get_allowed_reset_system_values()}
            choice = next((t for t in preferred if t in allowed), None)
            if choice is None:
                raise NotSupported(f"{self.where}: none of {', '.join(preferred)} is an allowed ResetType ({', '.join(sorted(allowed))})")
            if already is not None and _POWER.get(system.power_state) == already:
                return False
            try:
                system.reset_system(sushy.ResetType(choice))
            except sx.HTTPError as exc:
                if exc.status_code == 409 and already is not None:
                    return False  # iDRAC: "Server is already powered ON/OFF"
                raise
            return True

        return self._call(do)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (AuthenticationFailed, BMCError):
            raise
        except sx.AccessError:
            raise AuthenticationFailed(f"{self.where}: login refused for user {self.bmc.user!r}; check bmc.user and bmc.password") from None
        except sx.ConnectionError as exc:
            text = str(exc)
            if "SSL" in text or "certificate" in text.lower() or "Fingerprint" in text:
                raise TLSVerificationFailed(f"{self.where}: certificate not trusted or not the pinned one; check bmc.tls") from None
            reason = "timed out" if "timed out" in text.lower() or "timeout" in text.lower() else "connection failed"
            raise ConnectionFailed(f"{self.where}: cannot connect ({reason}); check bmc.address and that the BMC is up") from None
        except sx.HTTPError as exc:
            raise BMCError(f"{self.where}: HTTP {exc.status_code}: {exc.detail or exc.code}") from None
        except (sx.SushyError, requests.RequestException, ValueError) as exc:
            raise BMCError(f"{self.where}: unexpected answer: {type(exc).__name__}") from None
