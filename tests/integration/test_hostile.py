"""`labswitch serve` tested as an attacker would, on 127.0.0.1: anonymous clients cannot make it read the lab,
hold its memory or stall the API; wrong passwords are slowed; a logged-out cookie is dead; bad input answers 4xx
in one line; every answer carries the security headers. Read back through the service's own process (its RSS),
labsim's counters (SOAP calls, BMC reads) and plain HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, configure
from tests.integration.test_serve import TOKEN, Served, add_serve, serving
from tests.labsim import Lab

PASSWORD = "page-pass-w0rd"


@pytest.fixture
def guarded(lab_factory: Callable[..., Lab], state_dir: Path) -> Iterator[Served]:
    """serve with a page password and a long poll interval: after its first round, the lab is read again only when
    a run changes it, so whatever the clients below do, it is theirs if labsim counts a read."""
    lab = lab_factory(*FAST)
    config = configure(lab, policy="bmc_timeout = 2\n")  # a hung BMC holds a request 2 s, not 30
    url = add_serve(lab, config, 'poll_interval = "1h"\n')
    set_password(lab, config, PASSWORD)
    with serving(lab, config, url, state_dir) as proc:
        wait_until(lambda: "labswitch_lab_read_age_seconds" in requests.get(url + "/metrics", timeout=10).text, 30, "a first round")
        yield Served(url, lab, config, proc)


def set_password(lab: Lab, config: Path, password: str) -> None:
    argv = [sys.executable, "-m", "labswitch", "--config", str(config), "serve", "passwd"]
    subprocess.run(argv, input=password + "\n", text=True, env={**os.environ, **lab.env}, check=True, capture_output=True)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def bmc_reads(lab: Lab) -> int:
    counts = requests.get(lab.url.replace("/sdk", "/labsim/bmc-counts"), verify=str(lab.cert), timeout=10).json()
    return sum(c["reads"] for c in counts.values())


def connections(lab: Lab, server: str) -> int:
    counts = requests.get(lab.url.replace("/sdk", "/labsim/bmc-counts"), verify=str(lab.cert), timeout=10).json()
    return int(counts[server]["connections"])


def login(url: str, password: str) -> tuple[requests.Session, requests.Response]:
    http = requests.Session()
    form = http.get(url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    answer = http.post(url + "/login", data={"password": password, "csrf_token": token}, allow_redirects=False, timeout=60)
    return http, answer


def csrf_of(http: requests.Session, url: str) -> str:
    page = http.get(url + "/", timeout=60).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_anonymous_scrapes_read_nothing_of_the_lab_and_stall_nothing(guarded: Served) -> None:
    lab = guarded.lab
    lab.fault("bmc", "esx11", "hang")  # a hung BMC: a scrape that read it would hang too
    lab.soap_calls(reset=True)
    reads = bmc_reads(lab)
    with ThreadPoolExecutor(max_workers=50) as pool:
        scrapes = [pool.submit(requests.get, guarded.url + "/metrics", timeout=30) for _ in range(100)]
        started = time.monotonic()
        lock = guarded.api("GET", "/api/lock")
        took = time.monotonic() - started
        codes = {f.result().status_code for f in scrapes}
    lab.fault("bmc", "esx11", "none")
    assert codes == {200}
    assert lock.status_code == 200 and took < 1.0, f"an authenticated call took {took:.2f}s during 100 scrapes"
    assert lab.soap_calls() == {}, "a scrape answers from the coordinator's last round: no vCenter call"
    assert bmc_reads(lab) == reads, "nor a BMC read"


def test_bodies_are_refused_before_they_are_read(guarded: Served) -> None:
    pid = guarded.proc.pid
    before = rss_mb(pid)
    blob = b"x" * (50 * 1024 * 1024)
    for _ in range(3):
        no_token = requests.post(guarded.url + "/api/runs", data=blob, timeout=60)
        assert no_token.status_code == 401
        too_big = requests.post(guarded.url + "/login", data=blob, timeout=60)
        assert too_big.status_code == 413
    # No length announced (chunked): cut off once past the limit, as it arrives.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    chunked = requests.post(guarded.url + "/login", data=iter([b"x" * 65536] * 800), headers=form, timeout=60)
    assert chunked.status_code == 413
    grown = rss_mb(pid) - before
    assert grown < 20, f"the service grew by {grown:.0f} MB on refused bodies"
    # With the token, a body over [serve] max_body is refused the same way.
    assert guarded.api("POST", "/api/runs", data=blob[: 2 * 1024 * 1024]).status_code == 413


def test_wrong_passwords_are_slowed_and_never_hold_the_api(guarded: Served) -> None:
    http = requests.Session()
    form = http.get(guarded.url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]

    def attempt(_: int) -> requests.Response:
        return http.post(guarded.url + "/login", data={"password": "wrong", "csrf_token": token}, allow_redirects=False, timeout=60)

    with ThreadPoolExecutor(max_workers=50) as pool:
        tries = [pool.submit(attempt, i) for i in range(50)]
        time.sleep(0.2)  # the tries under way
        started = time.monotonic()
        lock = guarded.api("GET", "/api/lock")
        took = time.monotonic() - started
        codes = [t.result().status_code for t in tries]
    assert lock.status_code == 200 and took < 1.0, f"an API call took {took:.2f}s during 50 bad logins"
    assert codes.count(401) <= 5 and codes.count(429) >= 45, codes
    throttled = next(t.result() for t in tries if t.result().status_code == 429)
    assert int(throttled.headers["Retry-After"]) >= 1 and "too many wrong passwords" in throttled.text
    # Once its back-off is over, the right password from that address gets in.
    wait_until(lambda: login(guarded.url, PASSWORD)[1].status_code == 303, 30, "the back-off over")


def test_logout_and_a_new_password_revoke_the_session(guarded: Served) -> None:
    http, answer = login(guarded.url, PASSWORD)
    assert answer.status_code == 303 and "labswitch_session" in http.cookies
    assert "Secure" not in answer.headers["set-cookie"], "plain HTTP from a client that is no trusted proxy"
    stolen = dict(http.cookies)
    assert requests.get(guarded.url + "/", cookies=stolen, allow_redirects=False, timeout=60).status_code == 200
    csrf = csrf_of(http, guarded.url)
    assert http.post(guarded.url + "/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=30).status_code == 303
    replay = requests.get(guarded.url + "/", cookies=stolen, allow_redirects=False, timeout=30)
    assert replay.status_code == 303 and replay.headers["location"] == "/login", "the cookie of a logged-out session is dead"
    start = requests.post(
        guarded.url + "/ui/runs", cookies=stolen, data={"intent": "down", "group": "payload", "csrf_token": csrf}, timeout=30
    )
    assert start.status_code == 401
    # A new password (written while serve runs) ends every session made under the old one, at once.
    http, answer = login(guarded.url, PASSWORD)
    assert answer.status_code == 303
    set_password(guarded.lab, guarded.config, "an0ther-passw0rd")
    assert http.get(guarded.url + "/", allow_redirects=False, timeout=30).status_code == 303
    assert login(guarded.url, PASSWORD)[1].status_code == 401
    assert login(guarded.url, "an0ther-passw0rd")[1].status_code == 303


def test_bad_input_answers_4xx_in_one_line_and_the_connection_lives_on(guarded: Served) -> None:
    http, _ = login(guarded.url, PASSWORD)
    csrf = csrf_of(http, guarded.url)
    api = {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        http.post(guarded.url + "/ui/runs", data={"intent": "explode", "group": "payload", "csrf_token": csrf}, timeout=30),
        http.get(guarded.url + "/ui/plan", params={"intent": "explode", "group": "payload"}, timeout=30),
        http.get(guarded.url + "/api/energy", params={"days": "1000000"}, headers=api, timeout=30),
        http.get(guarded.url + "/api/energy", params={"days": "99999999999"}, headers=api, timeout=30),
        http.get(guarded.url + "/api/energy", params={"since": "0001-01-01"}, headers=api, timeout=30),
        http.get(guarded.url + "/api/runs", params={"limit": "9223372036854775808"}, headers=api, timeout=30),
        http.post(guarded.url + "/api/runs", json={"intent": "down", "groups": ["g" * 500_000]}, headers=api, timeout=30),
    ]
    for answer in cases:
        assert 400 <= answer.status_code < 500, (answer.request.url[:120], answer.status_code, answer.text[:300])
        assert len(answer.content) < 2000, "no input echoed unbounded"
    assert http.get(guarded.url + "/api/lock", headers=api, timeout=30).status_code == 200, "the keep-alive connection lives on"


def test_security_headers_and_no_docs_by_default(guarded: Served) -> None:
    for path in ("/login", "/healthz", "/metrics", "/api/lock"):
        headers = requests.get(guarded.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer", path
        assert headers["x-frame-options"] == "DENY" and "server" not in headers, path
    assert guarded.config.stat().st_mode & 0o777 == 0o600, "serve passwd leaves the config (the password's hash) 0600"
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert requests.get(guarded.url + path, timeout=30).status_code == 404, f"{path}: off unless [serve] api_docs"


def test_behind_a_trusted_proxy_the_cookie_is_secure(lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*FAST)
    config = configure(lab)
    url = add_serve(lab, config, 'trusted_proxies = ["127.0.0.1"]\n')
    set_password(lab, config, PASSWORD)
    with serving(lab, config, url, state_dir):
        proxied = {"X-Forwarded-Proto": "https"}  # what the proxy in front says the client used
        form = requests.get(url + "/login", headers=proxied, timeout=10)
        assert "Secure" in form.headers["set-cookie"]
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        cookie = {"Cookie": form.headers["set-cookie"].split(";")[0]}  # a Secure cookie: sent by hand over this plain hop
        answer = requests.post(
            url + "/login", data={"password": PASSWORD, "csrf_token": token}, headers=proxied | cookie, allow_redirects=False, timeout=60
        )
        assert answer.status_code == 303 and "Secure" in answer.headers["set-cookie"]


def test_a_flood_of_page_requests_holds_only_the_pages_threads(guarded: Served) -> None:
    """The page's routes run in their own bounded pool (web/pools.py, 8 threads): 48 logged-in plan requests (more
    than Starlette's one shared pool of 40 would hold), each waiting on a hung BMC, queue there, and the API, in its
    own pool, answers at once."""
    http, answer = login(guarded.url, PASSWORD)
    assert answer.status_code == 303
    lab = guarded.lab
    before = connections(lab, "esx11")
    lab.fault("bmc", "esx11", "hang")  # an up plan reads every server's power: each request waits on it
    try:
        with ThreadPoolExecutor(max_workers=48) as pool:
            plans = [pool.submit(http.get, guarded.url + "/ui/plan?intent=up&group=payload", timeout=120) for _ in range(48)]
            wait_until(lambda: connections(lab, "esx11") - before >= 8, 20, "the page's 8 threads each held by the hung BMC")
            busy = sum(not p.done() for p in plans)
            started = time.monotonic()
            lock = guarded.api("GET", "/api/lock")
            runs = guarded.api("GET", "/api/runs")
            took = time.monotonic() - started
            codes = {p.result().status_code for p in plans}
    finally:
        lab.fault("bmc", "esx11", "none")
    assert busy >= 40, f"only {busy} page requests were still waiting: the BMC did not hold them"
    assert lock.status_code == 200 and runs.status_code == 200
    assert took < 1.0, f"two API calls took {took:.2f}s while {busy} page requests held the page's threads"
    assert codes <= {200, 502}, codes
