"""racadm over SSH (asyncssh): what lab owners run by hand today, without a password in a script.

``racadm serveraction powerstatus|powerup|graceshutdown|powerdown|powercycle`` and
``racadm getsysinfo``. Output differs across iDRAC generations (``Server power status: ON``
and ``Server Power Status: ON``), so it is parsed case-insensitively. Host keys are checked:
known_hosts by default, or a key pinned in the config.
"""

from __future__ import annotations

import asyncio
import re

from labswitch import ssh
from labswitch.bmc.base import Power, SystemInfo
from labswitch.config import BMC
from labswitch.config.secrets import plain
from labswitch.errors import BMCError, ConnectionFailed, NotSupported

_POWER = re.compile(r"power\s+status\s*[:=]\s*(on|off)", re.IGNORECASE)
_ALREADY = re.compile(r"already\s+powered\s+(on|off)", re.IGNORECASE)
_SUCCESS = re.compile(r"operation\s+successful", re.IGNORECASE)
_KEY_VALUE = re.compile(r"^\s*([^=\n]+?)\s*=\s*(.*?)\s*$", re.MULTILINE)
_WATTS = re.compile(r"(\d+(?:\.\d+)?)\s*W\b")


class RacadmDriver:
    """An iDRAC driven by racadm commands over SSH."""

    def __init__(self, server: str, bmc: BMC, timeout: float) -> None:
        self.server = server
        self.bmc = bmc
        self.timeout = timeout
        self.host, self.port = bmc.endpoint("ssh", 22)
        self.where = f"server {server} BMC {self.host}:{self.port} (racadm over SSH)"

    def power_state(self) -> Power:
        match = _POWER.search(self._racadm("serveraction powerstatus"))
        if not match:
            raise BMCError(f"{self.where}: no power status in the answer to 'racadm serveraction powerstatus'")
        return Power.ON if match.group(1).lower() == "on" else Power.OFF

    def power_on(self) -> bool:
        return self._action("powerup")

    def graceful_shutdown(self) -> bool:
        return self._action("graceshutdown")

    def force_off(self) -> bool:
        return self._action("powerdown")

    def power_cycle(self) -> None:
        self._action("powercycle")

    def system_info(self) -> SystemInfo:
        fields = {k.strip().lower(): v for k, v in _KEY_VALUE.findall(self._racadm("getsysinfo"))}
        power = fields.get("power status", "").lower()
        return SystemInfo(
            model=fields.get("system model"),
            service_tag=fields.get("service tag"),
            bios_version=fields.get("system bios version"),
            bmc_firmware=fields.get("firmware version"),
            host_name=fields.get("host name"),
            power=Power.ON if power == "on" else Power.OFF if power == "off" else Power.UNKNOWN,
        )

    def watts(self) -> float:
        # cfgServerActualPowerConsumption (iDRAC 6-8 reference): "95 W | 324 Btu/hr"
        out = self._racadm("getconfig -g cfgServerPower -o cfgServerActualPowerConsumption")
        match = _WATTS.search(out)
        if not match:
            raise NotSupported(f"{self.where}: no power reading in the answer to cfgServerActualPowerConsumption")
        return float(match.group(1))

    def close(self) -> None:
        pass  # one SSH connection per command: nothing stays open

    def _action(self, verb: str) -> bool:
        out = self._racadm(f"serveraction {verb}")
        if _ALREADY.search(out):
            return False
        if _SUCCESS.search(out):
            return True
        raise BMCError(f"{self.where}: 'racadm serveraction {verb}' answered: {out.strip().splitlines()[0] if out.strip() else 'nothing'}")

    def _racadm(self, args: str) -> str:
        try:
            return asyncio.run(asyncio.wait_for(self._exec(f"racadm {args}"), self.timeout))
        except TimeoutError as exc:
            raise ConnectionFailed(f"{self.where}: no answer within {self.timeout:.0f}s (bmc_timeout); check that the BMC is up") from exc

    async def _exec(self, command: str) -> str:
        trust = ssh.known_hosts(self.bmc.host_key, self.bmc.known_hosts, self.where, "bmc.host_key")
        password = plain(self.bmc.password)
        settings = "bmc.user and bmc.password"
        async with await ssh.connect(self.host, self.port, self.bmc.user, password, trust, self.timeout, self.where, settings) as conn:
            result = await conn.run(command, check=False)
        out = str(result.stdout or "") + str(result.stderr or "")
        if result.exit_status not in (0, None) and not (_ALREADY.search(out) or _POWER.search(out)):
            first = out.strip().splitlines()[0] if out.strip() else f"exit status {result.exit_status}"
            raise BMCError(f"{self.where}: '{command}' failed: {first}")
        return out
