"""IPMI 2.0 (lanplus) through pyghmi: for BMCs without Redfish, or with IPMI only enabled."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pyghmi import exceptions as pyghmi_errors
from pyghmi.ipmi import command

from labswitch.bmc.base import Power, SystemInfo
from labswitch.config import BMC
from labswitch.config.secrets import plain
from labswitch.errors import AuthenticationFailed, BMCError, ConnectionFailed, NotSupported

T = TypeVar("T")
_COMMANDS: dict[tuple[str, int, str, str], Any] = {}
_COMMANDS_LOCK = threading.Lock()


class IpmiDriver:
    """A BMC over IPMI 2.0 lanplus (UDP 623 by default)."""

    def __init__(self, server: str, bmc: BMC, timeout: float) -> None:
        self.server = server
        self.bmc = bmc
        self.timeout = timeout
        self.host, self.port = bmc.endpoint("ipmi", 623)
        self.where = f"server {server} BMC {self.host}:{self.port} (IPMI)"
        self._ipmi: Any = None

    def power_state(self) -> Power:
        state = self._call(lambda c: c.get_power()).get("powerstate")
        return Power.ON if state == "on" else Power.OFF if state == "off" else Power.UNKNOWN

    def power_on(self) -> bool:
        return self._set_power("on", unless=Power.ON)

    def graceful_shutdown(self) -> bool:
        return self._set_power("shutdown", unless=Power.OFF)  # ACPI soft-off

    def force_off(self) -> bool:
        return self._set_power("off", unless=Power.OFF)

    def _set_power(self, state: str, unless: Power) -> bool:
        """False, sending nothing, when the server already is ``unless``."""
        if self.power_state() is unless:
            return False
        self._call(lambda c: c.set_power(state, wait=False))
        return True

    def power_cycle(self) -> None:
        self._call(lambda c: c.set_power("boot", wait=False))  # cycle when on, on when off

    def system_info(self) -> SystemInfo:
        def read(c: Any) -> SystemInfo:
            fru: dict[str, Any] = {}
            # Many BMCs (and pyghmi's fake) keep no System FRU or firmware list: say nothing rather than guess.
            with contextlib.suppress(pyghmi_errors.IpmiException):
                fru = c.get_inventory_of_component("System") or {}
            firmware = None
            with contextlib.suppress(pyghmi_errors.IpmiException, TypeError, AttributeError):
                firmware = next((v.get("version") for k, v in c.get_firmware() if k.lower() in ("bmc version", "bmc")), None)
            state = c.get_power().get("powerstate")
            return SystemInfo(
                model=fru.get("Product name") or fru.get("Board product name"),
                service_tag=fru.get("Serial Number") or fru.get("Product serial"),
                bios_version=None,
                bmc_firmware=firmware,
                host_name=None,
                power=Power.ON if state == "on" else Power.OFF if state == "off" else Power.UNKNOWN,
            )

        return self._call(read)

    def watts(self) -> float:
        try:
            return float(self._call(lambda c: c.get_system_power_watts()))
        except BMCError as exc:
            raise NotSupported(f"{self.where}: no DCMI power reading ({exc})") from exc

    def close(self) -> None:
        self._ipmi = None  # pyghmi keeps sessions in its own pool; they time out there

    def _command(self) -> Any:
        # pyghmi keeps one session per (BMC, user, password, port) in the process, and a second
        # Command for the same BMC blocks in its constructor: share one Command per BMC.
        password = plain(self.bmc.password)
        key = (self.host, self.port, self.bmc.user, hashlib.sha256(password.encode()).hexdigest())
        with _COMMANDS_LOCK:
            if key not in _COMMANDS:
                _COMMANDS[key] = command.Command(bmc=self.host, userid=self.bmc.user, password=password, port=self.port)
            return _COMMANDS[key]

    def _call(self, fn: Callable[[Any], T]) -> T:
        """One operation within bmc_timeout, pyghmi's own login retries included."""
        try:
            return _within(self.timeout, lambda: self._unbounded(fn))
        except TimeoutError as exc:
            raise ConnectionFailed(
                f"{self.where}: no answer within {self.timeout:g}s (policy.bmc_timeout); check bmc.address and IPMI over LAN"
            ) from exc

    def _unbounded(self, fn: Callable[[Any], T]) -> T:
        logging_in = True
        try:
            if self._ipmi is None:
                self._ipmi = self._command()
            logging_in = False
            return fn(self._ipmi)
        except pyghmi_errors.IpmiException as exc:
            text = str(exc.args[0]) if exc.args and exc.args[0] else ""
            if any(word in text.lower() for word in ("password", "unauthorized", "invalid user")):
                raise AuthenticationFailed(
                    f"{self.where}: login refused for user {self.bmc.user!r}; check bmc.user and bmc.password"
                ) from exc
            if logging_in or "timeout" in text.lower() or "unreachable" in text.lower():
                # pyghmi reports a login that got no answer without a message
                raise ConnectionFailed(
                    f"{self.where}: no answer ({text or 'login timed out'}); check bmc.address and IPMI over LAN"
                ) from exc
            raise BMCError(f"{self.where}: {text or type(exc).__name__}") from exc
        except OSError as exc:
            raise ConnectionFailed(f"{self.where}: {exc.strerror or type(exc).__name__}; check bmc.address") from exc


def _within(timeout: float, fn: Callable[[], T]) -> T:
    """fn's result, or TimeoutError after ``timeout`` (pyghmi has no overall deadline; its thread is left to end)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="ipmi-call").start()
    if not done.wait(timeout):
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
