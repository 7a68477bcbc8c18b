"""The page's login throttle and server-side sessions (web/sessions.py), on a clock of their own."""

from __future__ import annotations

import os
from pathlib import Path

from labswitch.web.sessions import Passwords, Sessions, Throttle


def test_tries_are_free_then_back_off_doubling_and_a_right_one_clears_them() -> None:
    throttle = Throttle(free=3, ceiling=8)
    assert [throttle.admit("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.admit("a", now=0.0) == 1.0  # the fourth waits 1 s after the third
    assert throttle.admit("a", now=1.0) == 0.0
    assert throttle.admit("a", now=1.5) == 1.5  # 2 s after the fourth
    assert throttle.admit("b", now=1.5) == 0.0, "another address is not held by a's tries"
    for t in range(3, 10):  # the back-off stops growing at the ceiling
        throttle.admit("a", now=t * 100.0)
    assert throttle.wait("a", now=900.0) == 8.0
    throttle.succeeded("a")
    assert throttle.admit("a", now=900.0) == 0.0


def test_many_addresses_at_once_hold_everyone_for_a_minute() -> None:
    throttle = Throttle(free=3, overall=5)
    for i in range(5):
        assert throttle.admit(f"10.0.0.{i}", now=10.0) == 0.0
    assert throttle.admit("10.0.0.99", now=20.0) == 50.0
    assert throttle.admit("10.0.0.99", now=71.0) == 0.0


def test_sessions_die_with_logout_and_with_a_new_password(tmp_path: Path) -> None:
    config = tmp_path / "labswitch.toml"
    config.write_text('[serve]\npassword_hash = "$2b$12$old"\n')
    sessions = Sessions(Passwords("$2b$12$old", config), max_sessions=2)
    one, two = sessions.issue(), sessions.issue()
    assert sessions.valid(one) and sessions.valid(two) and not sessions.valid("forged") and not sessions.valid(None)
    sessions.revoke(one)
    assert not sessions.valid(one) and sessions.valid(two)
    three, four = sessions.issue(), sessions.issue()
    assert not sessions.valid(two), "bounded: the oldest goes first"
    config.write_text('[serve]\npassword_hash = "$2b$12$new"\n')
    os.utime(config, (1, 1))  # a different mtime, whatever the file system's resolution
    assert not sessions.valid(three) and not sessions.valid(four)
    assert sessions.passwords.current() == b"$2b$12$new"
