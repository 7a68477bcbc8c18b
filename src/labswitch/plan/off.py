"""How a server is confirmed off, and what may follow (PURE): shared by every way a host goes down."""

from __future__ import annotations

from labswitch.config import Config
from labswitch.plan.model import Action, Step, bmc


def off_fallbacks(config: Config, off: Step, feed: bool = True) -> list[Step]:
    """vSphere's shutdown of ``off``'s host: the BMC's GracefulShutdown if it fails, then confirmed off.
    ``feed = False``: vCenter is off by then, so the steps name no host moid to follow on its change feed."""
    server = off.server or off.target
    moid = off.moid if feed else None
    graceful = Step("host-shutdown", Action.BMC_GRACEFUL_SHUTDOWN, server, moid, server, endpoint=bmc(server), fallback_of=off.id)
    return [graceful, *confirm_off(config, off, feed)]


def confirm_off(config: Config, after: Step, feed: bool = True) -> list[Step]:
    """The BMC confirms the server off (a GracefulShutdown of its own if it stays on); ForceOff only by policy;
    a smart plug's relay cut then where the server's bmc says cut_after_shutdown (its standby draw saved).
    With ``feed`` the steps name the host's moid: vCenter's change feed tells when to ask the BMC."""
    server = after.server or after.target
    moid = after.moid if feed else None
    confirm = Step("host-shutdown", Action.CONFIRM_OFF, server, moid, server, after=(after.id,), endpoint=bmc(server))
    steps = [confirm]
    if config.policy.bmc_force_off:
        steps.append(Step("host-shutdown", Action.BMC_FORCE_OFF, server, moid, server, endpoint=bmc(server), fallback_of=confirm.id))
    entry = config.server(server)
    if entry is not None and getattr(entry.bmc, "cut_after_shutdown", False):
        steps.append(Step("host-shutdown", Action.CUT_POWER, server, None, server, after=(confirm.id,), endpoint=bmc(server)))
    return steps
