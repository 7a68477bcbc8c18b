"""Redfish driver on OpenStack's sushy: session auth with basic fallback, TLS per config, iDRAC quirks.

Reset types are chosen from what the system advertises (ResetType@Redfish.AllowableValues).
An iDRAC answers a power change the server is already in with HTTP 409: that counts as done.
``bmc_timeout`` is the budget of one whole operation, sushy's retries included: every request
gets what is left of it, and a request that fails with no time left for a retry ends the operation.

Reads are cheap: one connection per BMC kept alive for the run (unless ``keep_alive = false``),
and a power read is one GET of the system with HTTP Basic auth (two the first time when
``bmc.system`` is not configured). A Redfish session is opened only for the first action (a
reset), on the same connection, and deleted on close. A service that refuses Basic auth gets a
session for its reads too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import requests
import sushy
from sushy import exceptions as sx
from sushy.auth import SessionOrBasicAuth
from sushy.connector import Connector

from labswitch import tls
from labswitch.bmc.base import Power, SystemInfo
from labswitch.config import BMC
from labswitch.config.secrets import plain
from labswitch.errors import AuthenticationFailed, BMCError, ConnectionFailed, NotSupported, TLSVerificationFailed

log = logging.getLogger(__name__)
T = TypeVar("T")

_POWER = {sushy.PowerState.ON: Power.ON, sushy.PowerState.OFF: Power.OFF}
_POWER_JSON = {"On": Power.ON, "Off": Power.OFF}  # ComputerSystem.PowerState; PoweringOn/Off: unknown yet
RETRY_DELAY = 1.0  # sushy's pause between retries (server_side_retries_delay)
BUDGET_SPENT = "no answer within the bmc_timeout budget"


class _BudgetSpent(requests.exceptions.RequestException):
    """The operation's time is up: not one of the errors sushy retries."""


class RedfishDriver:
    """One Redfish BMC (an iDRAC, or any DMTF Redfish service)."""

    # Over 200 lines: the Driver protocol's methods (bmc/base.py), each short, on one sushy session; split, a
    # reader would have to open two files to follow one BMC.

    def __init__(self, server: str, bmc: BMC, timeout: float) -> None:
        self.server = server
        self.bmc = bmc
        self.timeout = timeout
        self.where = f"server {server} BMC {bmc.base_url}"
        self._conn: Connector | None = None
        self._root: sushy.Sushy | None = None
        self._basic = True  # reads with Basic auth until the service refuses it
        self._system_path: str | None = bmc.system.rstrip("/") if bmc.system else None
        self._deadline = float("inf")  # of the operation under way
        self._last_status: int | None = None  # the last HTTP status of the operation under way (None: no answer yet)

    # -- protocol -----------------------------------------------------------------
    def power_state(self) -> Power:
        state = self._call(lambda: self._system_json().get("PowerState"))
        return _POWER_JSON.get(state, Power.UNKNOWN) if isinstance(state, str) else Power.UNKNOWN

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
        """The chassis' power draw wherever the service publishes it (see _chassis_watts)."""

        def read() -> float | None:
            links = (self._system_json().get("Links") or {}).get("Chassis") or []
            paths = [c["@odata.id"] for c in links if isinstance(c, dict) and "@odata.id" in c]
            if not paths:  # the system links no chassis: every chassis of the service
                paths = [m["@odata.id"] for m in self._get("/redfish/v1/Chassis").get("Members") or [] if isinstance(m, dict)]
            for path in paths:
                watts = _chassis_watts(self._get, path)
                if watts is not None:
                    return watts
            return None

        watts = self._call(read)
        if watts is None:
            raise NotSupported(
                f"{self.where}: reports no power draw (no EnvironmentMetrics PowerWatts, power supply InputPowerWatts "
                "or PowerControl PowerConsumedWatts on its chassis)"
            )
        return watts

    def close(self) -> None:
        """Delete the Redfish session if one was opened (BMCs have few session slots), then the connection."""
        root, conn, self._root, self._conn = self._root, self._conn, None, None
        if root is not None and root._auth is not None:
            self._deadline = time.monotonic() + self.timeout
            try:
                root._auth.close()
            except Exception:
                log.debug("%s: closing the session failed", self.where, exc_info=True)
            root._auth = None  # sushy's __del__ would try again at exit, on a closed connection
        if conn is not None:
            conn.close()

    # -- internals ----------------------------------------------------------------
    def _connector(self) -> Connector:
        """sushy's connection to the BMC: TLS per config, the budget, Basic auth, kept alive."""
        if self._conn is None:
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
            connector._session.request = self._within_budget(connector._session.request)
            if self.bmc.keep_alive:  # sushy asks for Connection: close, for BMCs that choke on long-lived ones
                connector._session.headers.pop("Connection", None)
            password = plain(self.bmc.password)
            connector.set_http_basic_auth(self.bmc.user, password)
            self._conn = connector
        return self._conn

    def _connect(self) -> sushy.Sushy:
        """The service root, with a Redfish session (or Basic auth where sessions are refused)."""
        if self._root is None:
            password = plain(self.bmc.password)
            self._root = sushy.Sushy(
                self.bmc.base_url,
                auth=SessionOrBasicAuth(username=self.bmc.user, password=password),
                connector=self._connector(),
                verify=tls.requests_verify(self.bmc.tls),
            )
        return self._root

    def _system_json(self) -> dict[str, Any]:
        """The system resource's JSON: with Basic auth on the kept connection; a service that
        refuses Basic auth gets a session, once."""
        if self._basic and self._root is None:
            try:
                return self._get(self._find_system())
            except sx.AccessError:
                self._basic = False
        self._connect()
        return self._get(self._find_system())

    def _find_system(self) -> str:
        """The system's path: configured, or the first member of /redfish/v1/Systems."""
        if self._system_path is None:
            collection = _optional(self._get, "/redfish/v1/Systems")  # the URI Redfish fixes; else the root's link
            if collection is None:
                link = self._get("/redfish/v1/").get("Systems")
                collection = _follow(self._get, link) or {}
            members = collection.get("Members") or []
            paths = sorted(m["@odata.id"] for m in members if isinstance(m, dict) and isinstance(m.get("@odata.id"), str))
            if not paths:
                raise BMCError(f"{self.where}: the Redfish service lists no ComputerSystem")
            self._system_path = paths[0]
        return self._system_path

    def _within_budget(self, request: Callable[..., requests.Response]) -> Callable[..., requests.Response]:
        """Every request gets what is left of the operation's budget; none starts once it is spent."""

        def send(method: str, url: str, **kwargs: Any) -> requests.Response:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0.05:
                raise _BudgetSpent(BUDGET_SPENT)
            timeout = kwargs.get("timeout")
            if isinstance(timeout, tuple):
                kwargs["timeout"] = tuple(min(t or remaining, remaining) for t in timeout)
            else:
                kwargs["timeout"] = min(timeout or remaining, remaining)
            try:
                response = request(method, url, **kwargs)
                self._last_status = response.status_code
                return response
            except requests.exceptions.SSLError:
                raise
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if self._deadline - time.monotonic() < RETRY_DELAY:  # no time left for sushy's retry
                    raise _BudgetSpent(BUDGET_SPENT) from exc
                raise

        return send

    def _get(self, path: str) -> dict[str, Any]:
        """A resource's JSON through sushy's connection (auth, TLS, budget)."""
        data = self._connector().get(path).json()
        if not isinstance(data, dict):
            raise BMCError(f"{self.where}: {path} is not a JSON object")
        return data

    def _system(self) -> sushy.resources.system.system.System:
        """The system as a sushy resource, for actions (opens the session)."""
        root = self._connect()
        return root.get_system(self._find_system())

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
        self._deadline = time.monotonic() + self.timeout
        self._last_status = None
        try:
            return fn()
        except (AuthenticationFailed, BMCError):
            raise
        except sx.AccessError as exc:
            raise AuthenticationFailed(f"{self.where}: login refused for user {self.bmc.user!r}; check bmc.user and bmc.password") from exc
        except sx.ConnectionError as exc:
            text = str(exc)
            if BUDGET_SPENT in text and (self._last_status or 0) >= 500:
                raise BMCError(
                    f"{self.where}: HTTP {self._last_status} to every try for {self.timeout:g}s (policy.bmc_timeout); "
                    "the BMC answers but fails: check it (a BMC reset often helps)"
                ) from exc
            if BUDGET_SPENT in text:
                raise ConnectionFailed(
                    f"{self.where}: no answer within {self.timeout:g}s (policy.bmc_timeout); check bmc.address and that the BMC is up"
                ) from exc
            if "SSL" in text or "certificate" in text.lower() or "Fingerprint" in text:
                raise TLSVerificationFailed(f"{self.where}: certificate not trusted or not the pinned one; check bmc.tls") from exc
            reason = "timed out" if "timed out" in text.lower() or "timeout" in text.lower() else "connection failed"
            raise ConnectionFailed(f"{self.where}: cannot connect ({reason}); check bmc.address and that the BMC is up") from exc
        except sx.HTTPError as exc:
            raise BMCError(f"{self.where}: HTTP {exc.status_code}: {exc.detail or exc.code}") from exc
        except (sx.SushyError, requests.RequestException, ValueError) as exc:
            raise BMCError(f"{self.where}: unexpected answer: {type(exc).__name__}") from exc


# -- where a chassis publishes its power draw -----------------------------------------
Getter = Callable[[str], dict[str, Any]]


def _chassis_watts(get: Getter, path: str) -> float | None:
    """In order: EnvironmentMetrics PowerWatts.Reading; the present power supplies' InputPowerWatts;
    the deprecated Power resource's PowerControl[].PowerConsumedWatts (by its property or a Links entry)."""
    chassis = _optional(get, path)
    if chassis is None:
        return None
    for source in (_environment_metrics, _power_subsystem, _power_control):
        watts = source(get, chassis)
        if watts is not None:
            return watts
    return None


def _environment_metrics(get: Getter, chassis: dict[str, Any]) -> float | None:
    metrics = _follow(get, chassis.get("EnvironmentMetrics"))
    return _number(((metrics or {}).get("PowerWatts") or {}).get("Reading"))


def _power_subsystem(get: Getter, chassis: dict[str, Any]) -> float | None:
    """The sum over the installed power supplies, when every one of them reports its input watts."""
    supplies = _follow(get, (_follow(get, chassis.get("PowerSubsystem")) or {}).get("PowerSupplies"))
    readings = []
    for member in (supplies or {}).get("Members") or []:
        supply = _follow(get, member) or {}
        if (supply.get("Status") or {}).get("State") == "Absent":
            continue
        reading = _number(((_follow(get, supply.get("Metrics")) or {}).get("InputPowerWatts") or {}).get("Reading"))
        if reading is None:
            return None
        readings.append(reading)
    return sum(readings) if readings else None


def _power_control(get: Getter, chassis: dict[str, Any]) -> float | None:
    links = chassis.get("Links") or {}
    for ref in _refs(chassis.get("Power")) + _refs(links.get("Power") if isinstance(links, dict) else None):
        power = _follow(get, ref) or {}
        for control in power.get("PowerControl") or []:
            watts = _number(control.get("PowerConsumedWatts")) if isinstance(control, dict) else None
            if watts is not None:
                return watts
    return None


def _refs(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value else []


def _follow(get: Getter, ref: Any) -> dict[str, Any] | None:
    if isinstance(ref, dict) and isinstance(ref.get("@odata.id"), str):
        return _optional(get, ref["@odata.id"])
    return None


def _optional(get: Getter, path: str) -> dict[str, Any] | None:
    """A linked resource that is not there (seen in real iDRAC captures) is no source, not an error."""
    try:
        return get(path.split("#", 1)[0])
    except (sx.ResourceNotFoundError, sx.MissingAttributeError):
        return None
    except sx.HTTPError as exc:
        if exc.status_code in (404, 405, 501):
            return None
        raise


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
