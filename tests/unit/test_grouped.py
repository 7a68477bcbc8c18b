"""Many servers' BMC errors with one cause are one line (bmc.grouped)."""

from __future__ import annotations

from labswitch.bmc.grouped import grouped

WHY = "login refused for user 'root'; check bmc.user and bmc.password"


def test_one_cause_is_one_line_naming_the_servers() -> None:
    errors = {f"esx{i}": f"server esx{i} BMC https://10.0.0.{i}: {WHY}" for i in range(11, 23)}
    errors["esx99"] = "server esx99 BMC https://10.0.0.99: no answer within 30s (policy.bmc_timeout); check bmc.address"
    lines = grouped(errors, "; fix it or pass --skip-unreachable")
    assert lines[0] == f"BMC of 12 servers (esx11, esx12, esx13, … esx22): {WHY}; fix it or pass --skip-unreachable"
    assert lines[1].startswith("server esx99 BMC https://10.0.0.99: no answer") and len(lines) == 2
    assert all(len(line) < 200 for line in lines)


def test_a_single_server_or_an_unknown_shape_stays_as_it_was() -> None:
    assert grouped({"a": f"server a BMC https://x: {WHY}"}) == [f"server a BMC https://x: {WHY}"]
    assert grouped({"a": "something else"}, "!") == ["something else!"]
