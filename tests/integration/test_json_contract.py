"""One JSON per result, whoever asks: the CLI's `--json` and `labswitch serve`'s API give the same plan, the
same run list, the same run with its steps, and the Server-Sent Events the same steps — compared field for
field against one labsim, the run read back from both sides after it ended."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_down_up import Run, run
from tests.integration.test_serve import Served, events, served  # noqa: F401 - the fixture

STEP_KEYS = {"phase", "action", "target", "status", "detail", "seconds", "server"}
PLAN_STEP_KEYS = {"phase", "action", "target", "id", "after", "endpoint", "fallback_of", "settled"}


def test_the_cli_and_the_api_give_the_same_json(served: Served, cli: Run, state_dir: Path) -> None:  # noqa: F811
    lab, config = served.lab, served.config
    by_cli = run(cli, lab, state_dir, config, "plan", "down", "--group", "payload", "--json").json()
    by_api = served.api("GET", "/api/plan/down", params={"group": "payload"}).json()
    assert by_cli == by_api and by_cli["steps"] and set(by_cli["steps"][0]) == PLAN_STEP_KEYS
    assert by_cli["intent"] == "down" and by_cli["groups"] == ["payload"]
    # A group that is not the default one: the API plans the group it is given (?group= was once ignored).
    mgmt_cli = run(cli, lab, state_dir, config, "plan", "down", "--group", "mgmt", "--json").json()
    mgmt_api = served.api("GET", "/api/plan/down", params={"group": "mgmt"}).json()
    assert mgmt_cli == mgmt_api and mgmt_api["groups"] == ["mgmt"] and "mgmt01" in mgmt_api["servers"]

    run_id = served.api("POST", "/api/runs", json={"intent": "down", "groups": ["payload"]}).json()["run_id"]
    streamed = [json.loads(data) for kind, data in events(served, run_id) if kind == "step"]

    one_cli = run(cli, lab, state_dir, config, "history", run_id, "--json").json()
    one_api = served.api("GET", f"/api/runs/{run_id}").json()
    assert one_cli == one_api, (one_cli, one_api)
    assert one_cli["run_id"] == run_id and one_cli["outcome"] == "ok" and one_cli["failed_steps"] == 0
    assert one_cli["steps"] == streamed and set(streamed[0]) == STEP_KEYS, "the events carry the journal's steps"

    list_cli = run(cli, lab, state_dir, config, "history", "--json").json()
    list_api = served.api("GET", "/api/runs").json()
    assert list_cli == list_api and list_cli[0]["run_id"] == run_id and list_cli[0]["steps"] == len(streamed)
