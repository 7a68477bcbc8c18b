"""The group switch's state published to Home Assistant: from the BMCs' answers, never a guess."""

from __future__ import annotations

from labswitch.web.mqtt import group_states
from tests.unit.test_plan import config


def test_a_group_is_on_off_or_unknown_never_off_on_a_guess() -> None:
    c = config()  # payload: esx1, esx2; mgmt is always_on (no switch)
    assert group_states(c, {"esx1": "On", "esx2": "Unknown"}) == {"payload": "ON"}
    assert group_states(c, {"esx1": "Off", "esx2": "Off"}) == {"payload": "OFF"}
    assert group_states(c, {"esx1": "Off", "esx2": "Unknown"}) == {"payload": "None"}, "a silent BMC: unknown, not off"
    assert group_states(c, {"esx1": "Off"}) == {"payload": "None"}, "a server not read at all: unknown too"
