"""`python bench/profile5000.py` (with LABSIM_BIN set, as `make bench` sets it): the 5,000-VM lab (100 hosts) as
shipped today — vSphere 8.0.3's embedded vCLS and HA on — one `down` under cProfile and one timed `up --restore`,
against labsim's physical limits. Prints the timings and where the down's time goes (labswitch's main thread), saves the
timings in results.json and rewrites RESULTS.md; bench/NOTES.md keeps what the profile found. Not part of `make test`."""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.labsim import start

from bench.run import DELAYS, HERE, configure, labswitch, limits, render_saved, server_hours_on

TOPOLOGY = ("--clusters", "10", "--hosts-per-cluster", "10", "--vms-per-host", "50", "--ha", "--vsphere", "8.0.3")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        lab = start(Path(tmp) / "lab", *TOPOLOGY, *DELAYS, "--mgmt-hosts", "1", "--startup-tag-fraction", "0.5", timeout=600)
        print(f"labsim up with 5,000 VMs in {time.perf_counter() - started:.0f} s", flush=True)
        try:
            config = configure(lab)
            down_limit, up_limit = limits(lab)
            status_s, _, _ = labswitch(lab, config, "status", "--json")
            plan_s, _, _ = labswitch(lab, config, "plan", "down")
            os.environ.update(lab.env)
            os.environ["XDG_STATE_HOME"] = str(config.parent / "state")
            profile = cProfile.Profile()
            since = time.time()
            t0 = time.perf_counter()
            profile.enable()
            code = _cli("--config", str(config), "down", "--yes", "--json")
            profile.disable()
            down_s = time.perf_counter() - t0
            hours = server_hours_on(lab, since)
            preflight = lab.first_calls()["ShutdownGuest"] - since
            up_s, up_mb, _ = labswitch(lab, config, "up", "--restore", "--yes", "--json")
        finally:
            lab.stop()
    print(f"status {status_s:.1f} s, plan down {plan_s:.1f} s")
    print(f"down {down_s:.1f} s (exit {code}) vs limit {down_limit:.1f} s; preflight {preflight:.1f} s; {hours:.3f} server-h")
    print(f"up --restore {up_s:.1f} s vs limit {up_limit:.1f} s ({up_mb} MB)")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(30)
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(15)
    print(out.getvalue())
    results = HERE / "results.json"
    saved = json.loads(results.read_text())
    saved.setdefault("vcls_1000", {})["5000"] = {
        "down_s": round(down_s, 1),
        "down_limit_s": down_limit,
        "up_s": round(up_s, 1),
        "up_limit_s": up_limit,
        "preflight_s": round(preflight, 1),
        "status_s": round(status_s, 1),
        "plan_s": round(plan_s, 1),
        "server_h": round(hours, 3),
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    results.write_text(json.dumps(saved, indent=1) + "\n")
    render_saved()  # RESULTS.md with the 5,000-VM row


def _cli(*argv: str) -> int:
    from labswitch.cli import main as cli_main

    sys.argv = ["labswitch", *argv]
    sys.stdout = io.StringIO()  # the down's JSON: not wanted here
    try:
        cli_main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.stdout = sys.__stdout__
    return 0


if __name__ == "__main__":
    main()
