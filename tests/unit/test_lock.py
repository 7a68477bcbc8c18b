"""The run lock: one holder at a time, named to the one refused, free again when released."""

from __future__ import annotations

from pathlib import Path

import pytest

from labswitch import lock
from labswitch.errors import RunInProgress


def test_a_second_holder_is_refused_with_the_first_one_named(tmp_path: Path) -> None:
    with lock.hold(tmp_path, "down", ["payload"]) as held:
        held.update("20261124-190000-abcdef")
        with pytest.raises(RunInProgress) as refused, lock.hold(tmp_path, "up", ["payload"]):
            pass
        text = str(refused.value)
        assert "down of payload (run 20261124-190000-abcdef, started" in text and "--wait" in text
        holder = lock.holder(lock.lock_path(tmp_path))
        assert holder is not None and holder.intent == "down" and holder.run_id == "20261124-190000-abcdef"
    assert lock.holder(lock.lock_path(tmp_path)) is None
    with lock.hold(tmp_path, "up", ["payload"]):  # released: the next one proceeds
        pass


def test_wait_gives_up_after_its_bound(tmp_path: Path) -> None:
    said: list[str] = []
    with (
        lock.hold(tmp_path, "down", ["payload"]),
        pytest.raises(RunInProgress, match="still runs after --wait"),
        lock.hold(tmp_path, "up", [], wait=0.3, on_wait=said.append),
    ):
        pass
    assert said and said[0].startswith("waiting for the run in progress to finish: down of payload")
