"""A server's power driver with a separate meter: a plug measures what its BMC does not report."""

from __future__ import annotations

from labswitch.bmc.base import Driver, Power, SystemInfo


class Metered:
    """Every call goes to the power driver but ``watts``, which the meter answers."""

    def __init__(self, power: Driver, meter: Driver) -> None:
        self.server = power.server
        self.power = power
        self.meter = meter

    def power_state(self) -> Power:
        return self.power.power_state()

    def power_on(self) -> bool:
        return self.power.power_on()

    def graceful_shutdown(self) -> bool:
        return self.power.graceful_shutdown()

    def force_off(self) -> bool:
        return self.power.force_off()

    def power_cycle(self) -> None:
        self.power.power_cycle()

    def system_info(self) -> SystemInfo:
        return self.power.system_info()

    def watts(self) -> float:
        return self.meter.watts()

    def close(self) -> None:
        try:
            self.power.close()
        finally:
            self.meter.close()
