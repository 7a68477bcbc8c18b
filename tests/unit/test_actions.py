"""The action registry: every Action declared once, and every part of it usable by those who read it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from labswitch.config import Policy
from labswitch.journal import Journal
from labswitch.plan import REGISTRY, Action, Effect, Subject, slow_after
from labswitch.plan.actions import WAVE
from labswitch.render.live import DOING
from labswitch.render.runs import CLUSTER_WORDS, HOST_WORDS
from labswitch.steps import handlers
from labswitch.vsphere.port import CONDITIONS


def test_every_action_is_declared_with_a_handler_and_words() -> None:
    missing = set(Action) - set(REGISTRY)
    assert not missing, f"actions without a Spec in plan/actions.py: {sorted(missing)}"
    resolved = handlers()
    assert set(resolved) == set(Action)
    assert all(callable(h) for h in resolved.values())
    for action, spec in REGISTRY.items():
        assert spec.doing and DOING[action] == spec.doing, action
        if spec.subject in (Subject.HOST, Subject.CLUSTER):
            assert spec.word, f"{action}: a host or cluster step is named in the plan's summary"
    assert set(HOST_WORDS) == {a for a, s in REGISTRY.items() if s.subject is Subject.HOST}
    assert set(CLUSTER_WORDS) == {a for a, s in REGISTRY.items() if s.subject is Subject.CLUSTER}


@pytest.mark.parametrize("action", list(Action))
def test_waits_timeouts_and_privileges_name_what_exists(action: Action) -> None:
    spec = REGISTRY[action]
    assert set(spec.waits) <= set(CONDITIONS) | {WAVE}, f"{action}: unknown change-feed condition"
    policy_fields = set(Policy.model_fields)
    assert spec.timeout is None or spec.timeout in policy_fields, f"{action}: {spec.timeout} is not a policy field"
    if spec.privileges is not None:
        on, privileges = spec.privileges
        assert spec.subject is Subject.CLUSTER and on in ("cluster", "vcenter") and privileges
    if spec.doing_vm:
        assert spec.subject is Subject.VM


def test_power_effects_are_the_steps_that_switch_a_server() -> None:
    effects = {a: s.power for a, s in REGISTRY.items() if s.power is not None}
    assert effects == {Action.CONFIRM_OFF: Effect.OFF, Action.BMC_FORCE_OFF: Effect.OFF, Action.BMC_POWER_ON: Effect.ON}


def test_slow_after_is_half_the_policy_timeout() -> None:
    policy = Policy()
    slow = slow_after(policy)
    assert slow[Action.SHUTDOWN_GUEST] == policy.guest_shutdown_timeout / 2
    assert slow[Action.WAIT_CONNECTED] == policy.host_connect_timeout / 2
    assert Action.POWER_ON_VM not in slow


def test_the_power_history_is_read_from_effects_and_old_journals_get_theirs(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path)  # a journal as versions before the effect column wrote it
    old.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, intent TEXT NOT NULL, groups TEXT NOT NULL, pid INTEGER, started REAL NOT NULL, "
        "finished REAL, outcome TEXT NOT NULL, reason TEXT);"
        "CREATE TABLE steps (run_id TEXT NOT NULL, seq INTEGER NOT NULL, phase TEXT, action TEXT, target TEXT, status TEXT, "
        "detail TEXT, seconds REAL, at REAL, server TEXT);"
        "INSERT INTO runs VALUES ('r', 'down', '[\"g\"]', NULL, 1, 20, 'ok', NULL);"
        "INSERT INTO steps VALUES ('r', 0, 'p', 'confirm-off', 'esx11', 'ok', 'off (BMC)', 1, 10, 'esx11');"
        "INSERT INTO steps VALUES ('r', 1, 'p', 'bmc-power-on', 'esx12', 'ok', 'already on', 1, 11, 'esx12');"
        "INSERT INTO steps VALUES ('r', 2, 'p', 'bmc-power-on', 'esx13', 'ok', 'powered on', 1, 12, 'esx13');"
        "INSERT INTO steps VALUES ('r', 3, 'p', 'confirm-off', 'esx14', 'fallback', 'still on', 1, 13, 'esx14');"
    )
    old.close()
    journal = Journal(path)
    try:
        assert journal.power_steps() == [(10.0, False, "esx11"), (12.0, True, "esx13")]
        run = journal.start_run("down", ["g"])
        journal.add_step(run, "p", Action.BMC_FORCE_OFF, "esx14", "ok", "forced off", 1, "esx14", effect=Effect.OFF)
        journal.add_step(run, "p", Action.BMC_POWER_ON, "esx12", "ok", "whatever the words", 1, "esx12")
        assert [(on, server) for _, on, server in journal.power_steps()] == [(False, "esx11"), (True, "esx13"), (False, "esx14")]
    finally:
        journal.close()
