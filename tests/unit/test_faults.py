"""vsphere/faults.py on every fault shape pyVmomi can deserialise (property-based): a task's info.error as a
real vCenter sends it (LocalizedMethodFault), as govmomi's simulator sends it (the MethodFault itself),
half-filled, or not a fault at all. Nothing crashes; every answer is one bounded line that names the fault."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyVmomi import VmomiSupport, vim, vmodl

from labswitch.vsphere.faults import MAX_TEXT, fault_name, fault_text, task_outcome


def _fault_types() -> list[type]:
    out = []
    for key in sorted(VmomiSupport._wsdlDefMap):
        try:
            kind = VmomiSupport.GetWsdlType(*key)
        except Exception:  # noqa: BLE001 - a lazy type of another namespace: not a fault
            continue
        if isinstance(kind, type) and issubclass(kind, vmodl.MethodFault) and kind is not vmodl.LocalizedMethodFault:
            out.append(kind)
    return out


FAULTS = _fault_types()
texts = st.none() | st.text(max_size=2000)


@st.composite
def method_faults(draw: Any) -> Any:
    kind = draw(st.sampled_from(FAULTS))
    fault = kind()
    msg = draw(texts | st.just(f"*types.{kind.__name__.split('.')[-1]}"))  # the simulator's msg is its Go type
    if msg is not None:
        fault.msg = msg
    return fault


@st.composite
def task_errors(draw: Any) -> Any:
    """What info.error (or notAttempted[].fault) can hold."""
    shape = draw(st.sampled_from(["localized", "bare", "empty-localized", "other"]))
    if shape == "bare":
        return draw(method_faults())
    if shape == "localized":
        return vmodl.LocalizedMethodFault(fault=draw(method_faults()), localizedMessage=draw(texts))
    if shape == "empty-localized":
        return vmodl.LocalizedMethodFault()
    return draw(st.none() | st.integers() | st.text(max_size=50) | st.builds(ValueError, st.text(max_size=50)) | st.just(object()))


def assert_one_line(text: str) -> None:
    assert isinstance(text, str) and text.strip()
    assert "\n" not in text and len(text) <= MAX_TEXT


@settings(max_examples=400, deadline=None)
@given(error=task_errors(), state=st.sampled_from(["success", "error", "running", "queued", None, "bogus"]))
def test_task_outcome_never_crashes_and_says_one_line(error: Any, state: str | None) -> None:
    props = {"info.state": state, "info.error": error} if state is not None else {}
    outcome = task_outcome(props, 30)
    if state == "success":
        assert outcome is None
        return
    assert outcome is not None
    assert_one_line(outcome)
    inner = getattr(error, "fault", None)
    if state == "error" and isinstance(error, vmodl.MethodFault):
        named = inner if inner is not None else error
        assert fault_name(named) in outcome


@settings(max_examples=300, deadline=None)
@given(error=task_errors())
def test_fault_text_names_the_fault_inside_either_shape(error: Any) -> None:
    text = fault_text(error)
    assert_one_line(text)
    if isinstance(error, vmodl.LocalizedMethodFault) and error.fault is not None:
        assert text.startswith(fault_name(error.fault))


def test_the_simulators_go_type_name_is_not_repeated_as_a_message() -> None:
    fault = vim.fault.InvalidPowerState(msg="*types.InvalidPowerState", existingState="poweredOn")
    assert fault_text(fault) == "InvalidPowerState"
    assert task_outcome({"info.state": "error", "info.error": fault}, 5) == "InvalidPowerState"
    wrapped = vmodl.LocalizedMethodFault(fault=fault, localizedMessage="The attempted operation cannot be performed in the current state.")
    assert fault_text(wrapped) == "InvalidPowerState (The attempted operation cannot be performed in the current state.)"


def test_a_translated_fault_keeps_its_cause_and_verbose_prints_it_without_secrets() -> None:
    """faults.error is the one VSphereError of a fault, raised ``from`` it; the CLI's -v chain names the fault
    and redacts a resolved secret and a password in a URL (a plug's, a vendor's message)."""
    import requests
    from pydantic import SecretStr

    from labswitch.cli import causes
    from labswitch.config.secrets import resolve
    from labswitch.errors import ConnectionFailed, VSphereError
    from labswitch.vsphere import faults

    fault = vim.fault.InvalidPowerState(msg="The attempted operation cannot be performed in the current state (Powered on).")
    try:
        try:
            raise fault
        except vmodl.MethodFault as exc:
            raise faults.error("vCenter: powering on vm01 failed", exc) from exc
    except VSphereError as err:
        assert err.__cause__ is fault
        assert str(err) == f"vCenter: powering on vm01 failed: InvalidPowerState: {fault.msg}"
        assert causes(err) == [f"pyVmomi.VmomiSupport.vim.fault.InvalidPowerState: {fault.msg}"]
    resolve(SecretStr("pl4g-s3cret"), "plug.password")
    url = "http://127.0.0.1:9/cm?cmnd=Power&user=admin&password=pl4g-s3cret"
    try:
        try:
            raise requests.exceptions.ConnectionError(f"Max retries exceeded with url: {url}")
        except requests.exceptions.RequestException as exc:
            raise ConnectionFailed("plug esx11: cannot reach the plug (ConnectionError); check plug.address") from exc
    except ConnectionFailed as err:
        (line,) = causes(err)
        assert line.startswith("requests.exceptions.ConnectionError: Max retries") and "pl4g-s3cret" not in line, line
        assert "password=***" in line
