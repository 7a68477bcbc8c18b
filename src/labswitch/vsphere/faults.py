"""vSphere faults in one line: every shape a vCenter, an ESXi host or a simulator answers with.

A task's ``info.error`` is a ``LocalizedMethodFault`` on a real vCenter (``.fault`` and
``.localizedMessage``); govmomi's simulator puts the ``MethodFault`` itself there; a multi-VM
power-on's ``notAttempted[].fault`` is either; a half-deserialised answer can be anything. None of
these may crash labswitch: each becomes text naming the fault, and ``call`` names the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labswitch.errors import VSphereError

MAX_TEXT = 300  # a vendor message can be a page long: one line, bounded


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def fault_name(fault: Any) -> str:
    """``InvalidPowerState`` for vim.fault.InvalidPowerState (its WSDL name, not the module path)."""
    name = type(fault).__name__
    return name.split(".")[-1] or "fault"


def fault_text(fault: Any) -> str:
    """A fault's name and message, for one-line reports: a MethodFault, a LocalizedMethodFault wrapping one,
    an exception of any kind, or None ("unknown fault")."""
    if fault is None:
        return "unknown fault"
    inner = getattr(fault, "fault", None)
    if inner is not None and inner is not fault:  # a LocalizedMethodFault (pyVmomi makes it a MethodFault too)
        text = fault_text(inner)
        localized = getattr(fault, "localizedMessage", None)
        if localized and isinstance(localized, str) and localized not in text:
            text = f"{text} ({_one_line(localized)})"
        return _one_line(text)
    name = fault_name(fault)
    msg = getattr(fault, "msg", None)
    if not isinstance(msg, str) or not msg.strip() or msg.strip("*").removeprefix("types.") == name:
        msg = ""  # the simulator's msg is its Go type name ('*types.InvalidPowerState'): it says nothing more
    if not msg and isinstance(fault, BaseException) and not hasattr(fault, "msg") and fault.args:
        msg = str(fault)
    return _one_line(f"{name}: {msg}" if msg else name)


def error(failed: str, fault: Any) -> VSphereError:
    """The one VSphereError for an answer of vSphere: what ``failed`` (where, doing what), then the fault in
    one line. Raised ``from`` the fault, so that ``-v`` shows it whole."""
    return VSphereError(f"{failed}: {fault_text(fault)}")


TASK_DONE = ("success", "error")
TASK_PATHS = ("info.state", "info.error")


def task_outcome(props: Mapping[str, Any], timeout: float) -> str | None:
    """None when a task (its TASK_PATHS) succeeded, else why not, in one line."""
    state = props.get("info.state")
    if state == "success":
        return None
    if state == "error":
        error = props.get("info.error")
        return fault_text(error) if error is not None else "task failed"
    return (
        f"task still {state or 'queued'} after {timeout:.0f}s; it may yet finish in vCenter (its Recent Tasks): "
        "once it has, run the same command again"
    )
