"""The web page in a real browser (Debian's chromium, driven headless by Playwright) against labsim: real runs, not
seeded HTML. Log in, open the confirmation sheet, press Down and follow the run host by host, as the terminal shows it;
open a run late, look at 112 steps and 14 hosts on a phone, use it with the keyboard alone. What the page says is read
back through Redfish, pyVmomi and the REST API, never from the page's own report. Screenshots land in the test's
directory (phone and desktop) to be looked at."""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from labswitch.journal import Journal
from labswitch.samples import Sample, Samples
from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, configure, payload
from tests.integration.test_serve import TOKEN, add_serve, serving
from tests.labsim import Lab, bmc_power, vm_power

PASSWORD = "page-pass-w0rd"
PAYLOAD = ("esx11", "esx12", "esx21", "esx22")
CHROMIUM = "/usr/bin/chromium"
RESET = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 900}


@dataclass
class Console:
    url: str
    lab: Lab
    state: Path
    config: Path

    def api(self, method: str, path: str, **kw: object) -> requests.Response:
        return requests.request(method, self.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120, **kw)  # type: ignore[arg-type]


@contextmanager
def console_of(
    lab: Lab, state_dir: Path, seed: Callable[[Path], None] | None = None, policy: str = "", replace: tuple[tuple[str, str], ...] = ()
) -> Iterator[Console]:
    """`labswitch serve` on the lab with a page password, energy sampled every second; ``seed`` fills its journal first."""
    config = configure(lab, policy=policy, replace=replace)
    url = add_serve(lab, config, '\n[energy]\nsample_interval = "1s"\n')
    argv = [sys.executable, "-m", "labswitch", "--config", str(config), "serve", "passwd"]
    subprocess.run(argv, input=PASSWORD + "\n", text=True, env={**os.environ, **lab.env}, check=True, capture_output=True)
    assert 'password_hash = "$2b$' in config.read_text() and PASSWORD not in config.read_text()
    if seed is not None:
        seed(state_dir / "labswitch" / "journal.sqlite3")
    with serving(lab, config, url, state_dir):
        yield Console(url, lab, state_dir, config)


SLOW = "esx22-vm01=12s"  # one slow guest keeps esx22 on while the other hosts go off


@pytest.fixture
def page_url(lab_factory: Callable[..., Lab], state_dir: Path, request: pytest.FixtureRequest) -> Iterator[Console]:
    """A down of some seconds (one slow guest keeps esx22 on while the other hosts go off; a test may ask for a slower
    one), idle auto-down's countdown, six hours of energy samples an earlier `serve` left."""
    slow = getattr(request, "param", SLOW)
    lab = lab_factory(*FAST, "--guest-shutdown-delay", "3s", "--slow-guests", slow)
    slow = (("guest_shutdown_timeout = 5", "guest_shutdown_timeout = 60"),)
    with console_of(lab, state_dir, lambda path: seed_samples(path, hours=6), 'idle_down_after = "1h"\n', slow) as console:
        yield console


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def seed_samples(path: Path, hours: int) -> None:
    """Energy samples every 5 minutes over the last hours, as an earlier `serve` would have left them (the page's
    watts chart needs more than the seconds a test runs): the lab at 400 W, then 100 W for the last two hours."""
    now = time.time()
    with Samples(path) as store:
        for step in range(hours * 12, 0, -1):
            at = now - step * 300
            watts = 400.0 if step > 24 else 100.0
            store.add([Sample(at, "esx11", "On", watts, True, 300, watts * 300 / 3.6e6)])


def api_idle(url: str) -> list[dict[str, object]]:
    answer = requests.get(url + "/api/automation", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    return list(answer.json()["idle"])


def log_in(page: Page, url: str, password: str = PASSWORD) -> None:
    page.goto(url + "/")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def logged_in(browser: Browser, url: str, viewport: dict[str, int]) -> Page:
    page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    log_in(page, url)
    page.wait_for_selector("section.group[data-group=payload]")
    return page


def seconds(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    return parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) > 2 else 0)


CUT_OFF = """(width) => [...document.querySelectorAll('body *')].filter((e) => {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const r = e.getBoundingClientRect();
    return own && r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden' && (r.left < -0.5 || r.right > width + 0.5);
  }).map((e) => `${e.tagName}.${e.className}: ${e.textContent.trim().slice(0, 40)} [${Math.round(e.getBoundingClientRect().left)}, `
    + `${Math.round(e.getBoundingClientRect().right)}]`)"""


def test_log_in_confirm_in_the_sheet_and_follow_the_down_host_by_host(page_url: Console, browser: Browser, tmp_path: Path) -> None:
    url, lab = page_url.url, page_url.lab
    phone = browser.new_page(viewport=PHONE)  # type: ignore[arg-type]
    log_in(phone, url, "not-the-password")
    assert phone.locator("[role=alert]").inner_text() == "wrong password"
    wait_until(lambda: api_idle(url), 30, "the idle clock started by the first sample")
    log_in(phone, url)
    group = phone.locator("section.group[data-group=payload]")
    assert group.locator(".state").inner_text() == "on"
    countdown = group.locator(".countdown")
    assert re.fullmatch(r"0:59:\d\d", countdown.inner_text()), countdown.inner_text()
    ticking = "t => document.querySelector('section.group[data-group=payload] .countdown').textContent !== t"
    phone.wait_for_function(ticking, arg=countdown.inner_text())
    assert phone.locator("section.group[data-group=mgmt] .countdown").count() == 0, "always_on: no countdown"
    lines = phone.locator("svg.watts polyline")
    assert lines.count() == 1 and len(lines.get_attribute("points").split()) >= 6, "the seeded hours, as one line"
    phone.screenshot(path=str(tmp_path / "page-phone.png"), full_page=True)

    # the sheet: the plan in brief, every host the plan's JSON names, a link to every step; nothing runs until Go
    group.locator("button[data-intent=down]").click()
    phone.wait_for_selector("#sheet[open] #sheet-go:not([disabled])", timeout=60_000)
    plan = page_url.api("GET", "/api/plan/down?group=payload").json()
    planned = {s["target"] if s["action"] == "confirm-off" else None for s in plan["steps"]} - {None}
    listed = set(phone.eval_on_selector_all("#sheet-hosts tbody tr", "rows => rows.map(r => r.dataset.host)"))
    assert listed == planned == set(PAYLOAD), (listed, planned)
    assert phone.locator("#sheet-steps li").count() == len(plan["steps"])
    assert phone.locator("#sheet-what").inner_text().startswith("stop 12 VMs and switch off 4 servers")
    phone.screenshot(path=str(tmp_path / "page-sheet-phone.png"), full_page=False)
    assert phone.evaluate(CUT_OFF, PHONE["width"]) == [], "the sheet fits a phone"
    assert all(bmc_power(lab, s) == "On" for s in PAYLOAD), "the sheet changes nothing"
    phone.click("#sheet-go")
    phone.wait_for_url(re.compile(r"/\?run="), timeout=60_000)

    # each host's row says what it waits for: its slowest guest by name, with a clock
    shutting = "() => /esx22-vm01: shutting down 00:0[0-9]/.test(document.querySelector('#run-hosts').innerText)"
    phone.wait_for_function(shutting, timeout=30_000)
    # a host that is off shows Off in the group while the run still goes on (esx22's slow guest holds it)
    off_during = """() => !document.querySelector('#run-state').className.startsWith('outcome-') &&
        document.querySelector('section.group[data-group=payload] tr[data-server=esx11] td.power').dataset.power === 'Off'"""
    phone.wait_for_function(off_during, timeout=30_000)
    assert bmc_power(lab, "esx11") == "Off", "the page says what the BMC says"
    assert page_url.api("GET", "/api/lock").json()["running"], "and the run was still going"
    phone.screenshot(path=str(tmp_path / "page-run-phone.png"), full_page=True)
    desktop = logged_in(browser, url, DESKTOP)
    desktop.wait_for_selector("#run-hosts tr[data-server=esx22]")
    desktop.screenshot(path=str(tmp_path / "page-run-desktop.png"), full_page=True)

    # the run's end, read in one go; the page is not reloaded: the run stays, the groups follow
    at_end = """() => document.querySelector('#run-state.outcome-ok') && {
        servers: [...document.querySelectorAll('#run-hosts tbody tr[data-server]')].map(r => r.dataset.server),
        states: [...document.querySelectorAll('#run-hosts td.host-state')].map(td => td.innerText),
        steps: document.querySelectorAll('#run-steps li').length, clock: document.querySelector('#run-clock').innerText}"""
    end = phone.wait_for_function(at_end, timeout=90_000).json_value()
    assert sorted(end["servers"]) == sorted(PAYLOAD) and set(end["states"]) == {"✓ off (BMC)"}, end
    assert end["steps"] > 0 and seconds(end["clock"]) >= 8, end
    phone.wait_for_function("() => document.querySelector('section.group[data-group=payload] .state').innerText === 'off'", timeout=30_000)
    assert "?run=" in phone.url, "no reload: the finished run stays on screen"
    # a past run is a link to its steps, numbered whole, and it stays on screen
    assert phone.locator("#runs td.outcome-ok").first.is_visible(), "the outcome column fits on a phone"
    phone.locator("#runs a").first.click()
    phone.wait_for_function("() => document.querySelector('#run-state.outcome-ok')", timeout=30_000)
    assert phone.locator("#run-steps li").count() == end["steps"]
    assert phone.locator("#run-steps li .n").last.inner_text() == f"{end['steps']}."
    phone.screenshot(path=str(tmp_path / "page-past-run-phone.png"), full_page=True)
    assert all(bmc_power(lab, s) == "Off" for s in PAYLOAD) and bmc_power(lab, "mgmt01") == "On"
    assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
    # every figure the page shows is what `status --json` and `history --json` say (the API gives the same JSON)
    status = page_url.api("GET", "/api/status").json()
    shown = phone.eval_on_selector_all(
        "section.group tr[data-server]",
        "rows => rows.map(r => [r.dataset.server, r.querySelector('td.power').dataset.power, +r.querySelector('td.vms-on').innerText])",
    )
    on = {
        h["name"]: sum(1 for v in status["vms"] if v["host"] == h["name"] and v["power_state"] == "poweredOn" and not v["system"])
        for h in status["hosts"]
    }
    assert sorted(shown) == sorted([h["name"], h["bmc_power"], on[h["name"]]] for h in status["hosts"]), shown
    runs = page_url.api("GET", "/api/runs").json()
    listed = phone.eval_on_selector_all("#runs tr", "rows => rows.map(r => r.querySelector('td:last-child').innerText)")
    assert listed == [r["outcome"] for r in runs][: len(listed)] and listed, listed


@pytest.mark.parametrize("page_url", ["esx22-vm01=30s"], indirect=True)  # a down still going 20 s in
def test_a_page_opened_late_counts_from_the_runs_start(page_url: Console, browser: Browser) -> None:
    started = page_url.api("POST", "/api/runs", json={"intent": "down", "groups": ["payload"]})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    begun = time.time()
    wait_until(lambda: time.time() - begun >= 20, 25, "20 s into the down")
    page = logged_in(browser, page_url.url, DESKTOP)
    page.wait_for_function("() => document.querySelector('#run-hosts tr[data-server]')", timeout=30_000)
    assert page.locator("#run").get_attribute("data-run") == run_id
    assert seconds(page.locator("#run-clock").inner_text()) >= 20, page.locator("#run-clock").inner_text()
    # and it ticks: every second, not only when an event comes
    first = page.locator("#run-clock").inner_text()
    page.wait_for_function("t => document.querySelector('#run-clock').innerText !== t", arg=first, timeout=3_000)
    ticking = page.locator("#run-hosts tr[data-server=esx22] td.time").inner_text()
    assert seconds(ticking) >= 18, ticking  # the service's SIGTERM at teardown stops the down, journaled as interrupted


def test_a_lab_of_fourteen_hosts_collapses_per_cluster_and_fits_a_phone(
    lab_factory: Callable[..., Lab], state_dir: Path, browser: Browser, tmp_path: Path
) -> None:
    """112 VMs on 14 hosts: step 105 reads "105", the rows collapse per cluster (opened on demand), no text leaves a
    390 px screen."""
    lab = lab_factory(*FAST, "--hosts-per-cluster", "7", "--vms-per-host", "8", "--guest-shutdown-delay", "2s")
    with console_of(lab, state_dir) as console:
        run_id = console.api("POST", "/api/runs", json={"intent": "down", "groups": ["payload"]}).json()["run_id"]
        phone = logged_in(browser, console.url, PHONE)
        phone.wait_for_selector("#run-hosts button.cluster-toggle")
        toggles = phone.locator("#run-hosts button.cluster-toggle")
        assert toggles.count() == 2 and re.search(r"Cluster1 · 7 hosts: ", toggles.first.inner_text()), toggles.first.inner_text()
        assert phone.locator("#run-hosts tr[data-server]").count() == 0, "collapsed"
        toggles.first.click()
        assert phone.locator("#run-hosts tr[data-server]").count() == 7
        phone.evaluate("() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")  # every VM, every step
        assert phone.evaluate(CUT_OFF, PHONE["width"]) == []
        phone.screenshot(path=str(tmp_path / "page-14-hosts-phone.png"), full_page=True)
        wait_until(lambda: not console.api("GET", "/api/lock").json()["running"], 120, "the down of 14 hosts finished")
        steps = len(console.api("GET", f"/api/runs/{run_id}").json()["steps"])
        assert steps >= 105, steps
        phone.goto(f"{console.url}/?run={run_id}")
        phone.wait_for_function("() => document.querySelector('#run-state.outcome-ok')", timeout=30_000)
        assert phone.locator("#run-steps li").count() == steps
        number = phone.locator("#run-steps li:nth-child(105) .n")
        number.scroll_into_view_if_needed()
        box = number.bounding_box()
        assert number.inner_text() == "105." and box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert phone.evaluate(CUT_OFF, PHONE["width"]) == []
        phone.screenshot(path=str(tmp_path / "page-105-steps-phone.png"), full_page=True)


CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const back = (e) => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
  return [...document.querySelectorAll('body *')].filter((e) => [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())
      && e.getClientRects().length && !e.closest('svg, dialog:not([open]), button:disabled'))
    .map((e) => { const s = getComputedStyle(e); const a = lum(rgb(s.color)), b = lum(back(e));
      const big = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && Number(s.fontWeight) >= 700);
      return { text: e.textContent.trim().slice(0, 30), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), need: big ? 3 : 4.5 }; })
    .filter((x) => x.ratio < x.need); }"""


def test_keyboard_alone_and_contrast(page_url: Console, browser: Browser) -> None:
    """Tab to Down, Enter opens the sheet with Go focused, Escape closes it and gives the focus back; every text on
    the page meets WCAG AA contrast; power and state are said in words, not colour alone."""
    page = logged_in(browser, page_url.url, DESKTOP)
    assert page.evaluate(CONTRAST) == []
    powers = page.locator("section.group[data-group=payload] td.power").all_inner_texts()
    assert set(powers) == {"● on"}, powers
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.matches('section.group[data-group=payload] button[data-intent=down]')"):
            break
    else:
        pytest.fail("Tab never reached payload's Down button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#sheet[open] #sheet-go:not([disabled])", timeout=60_000)
    assert page.evaluate("() => document.activeElement.id") == "sheet-go"
    assert page.evaluate(CONTRAST) == []
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.querySelector('#sheet').open")
    assert page.evaluate("() => document.activeElement.dataset.intent") == "down"
    assert all(bmc_power(page_url.lab, s) == "On" for s in PAYLOAD), "Escape changed nothing"


def test_state_changes_need_a_session_and_its_csrf_token(page_url: Console) -> None:
    url, lab = page_url.url, page_url.lab
    anonymous = requests.post(url + "/ui/runs", data={"intent": "down", "group": "payload", "csrf_token": "x"}, timeout=30)
    assert anonymous.status_code == 401
    assert requests.get(url + "/ui/lab/events", timeout=30).status_code == 401, "no anonymous client reads the lab"
    assert requests.get(url + "/ui/plan?intent=down&group=payload", timeout=30).status_code == 401
    session = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', session.get(url + "/login", timeout=30).text)
    assert token is not None
    logged = session.post(url + "/login", data={"password": PASSWORD, "csrf_token": token.group(1)}, timeout=30, allow_redirects=False)
    assert logged.status_code == 303
    set_cookie = logged.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    cross_site = session.post(url + "/ui/runs", data={"intent": "down", "group": "payload", "csrf_token": "forged"}, timeout=30)
    assert cross_site.status_code == 403, "a form posted from elsewhere has no CSRF token of this session"
    page = session.get(url + "/", timeout=30).text
    assert PASSWORD not in page and lab.env["LABSIM_BMC_PASSWORD"] not in page and TOKEN not in page
    assert all(bmc_power(lab, s) == "On" for s in PAYLOAD), "nothing ran"


def seed_history(path: Path) -> None:
    """An up of the payload 24 hours ago, and ten minutes of samples then (80 W each): most of the day unsampled, its
    kWh estimated at the servers' sampled draw."""
    now = time.time()
    with Journal(path) as journal:
        run = journal.start_run("up", ["payload"])
        for server in PAYLOAD:
            journal.add_step(run, "power-on", "bmc-power-on", server, "ok", "", 1.0, server=server, effect="on")
        journal.finish(run, "ok")
        journal._db.execute("UPDATE runs SET started = ?, finished = ? WHERE id = ?", (now - DAY, now - DAY + 60, run))
        journal._db.execute("UPDATE steps SET at = ? WHERE run_id = ?", (now - DAY + 30, run))
    with Samples(path) as store:
        store.add(
            Sample(now - DAY + 60 + i, s, "On", 80.0, True, 1 if i else 0, 80.0 / 3.6e6 if i else 0.0) for i in range(600) for s in PAYLOAD
        )


DAY = 86400.0


def sample_rounds(state: Path) -> int:
    with sqlite3.connect(f"file:{state / 'labswitch' / 'journal.sqlite3'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(DISTINCT at) FROM energy_samples").fetchone()[0])


def test_energy_holds_when_only_the_draw_now_changes(lab_factory: Callable[..., Lab], state_dir: Path, browser: Browser) -> None:
    """Two readings one sample apart, esx12 booting between them (0 W, then 70 W): the day's kWh and the always-on
    figure do not move (valuing the unsampled hours at the draw now moved them by about 0.2 kWh); the page's month says
    what `/api/energy` says."""
    lab = lab_factory(*FAST)
    with console_of(lab, state_dir, seed_history) as console:
        since = (dt.datetime.now() - dt.timedelta(hours=25)).isoformat(timespec="seconds")
        lab.redfish("esx12", method="POST", path=RESET, json={"ResetType": "ForceOff"})
        wait_until(lambda: bmc_power(lab, "esx12") == "Off", 20, "esx12 off")
        rounds = sample_rounds(console.state)
        wait_until(lambda: sample_rounds(console.state) >= rounds + 2, 20, "a sample with esx12 off")
        before = console.api("GET", f"/api/energy?since={since}").json()
        lab.redfish("esx12", method="POST", path=RESET, json={"ResetType": "On"})  # booting: its BMC reads 70 W now
        rounds = sample_rounds(console.state)
        wait_until(lambda: sample_rounds(console.state) >= rounds + 1, 20, "one sample later")
        after = console.api("GET", f"/api/energy?since={since}").json()
        draw = {s["server"]: s["watts"] for s in after["servers"]}
        assert draw["esx12"] == 70 and {s["server"]: s["watts"] for s in before["servers"]}["esx12"] == 0, "the draw now changed"
        assert abs(after["kwh"] - before["kwh"]) < 0.005, (before["kwh"], after["kwh"])
        assert abs(after["always_on_kwh"] - before["always_on_kwh"]) < 0.005, (before["always_on_kwh"], after["always_on_kwh"])
        counted = dt.datetime.fromisoformat(after["counted_since"]).timestamp()
        assert abs(counted - (time.time() - DAY)) < 300, "counted from the lab's first record, a day ago, not 25 hours"
        assert after["estimated_kwh"] > 1, "most of the day is estimated"
        page = logged_in(browser, console.url, DESKTOP)
        month = console.api("GET", "/api/energy?since=" + dt.date.today().replace(day=1).isoformat()).json()
        assert abs(float(page.locator("#energy-kwh").inner_text()) - month["kwh"]) <= 0.011, (
            page.locator("#energy-kwh").inner_text(),
            month,
        )


def test_a_lab_one_hour_old_has_no_bars_before_today(lab_factory: Callable[..., Lab], state_dir: Path, browser: Browser) -> None:
    hour_ago = time.time() - 3600

    def seed(path: Path) -> None:
        with Samples(path) as store:
            store.add([Sample(hour_ago, "esx11", "On", 80.0, True, 0, 0.0)])

    with console_of(lab_factory(*FAST), state_dir, seed) as console:
        page = logged_in(browser, console.url, DESKTOP)
        days = page.eval_on_selector_all("svg.days g.bar", "bars => bars.map(b => b.dataset.day)")
        first = dt.date.fromtimestamp(hour_ago)
        assert days == [(first + dt.timedelta(days=i)).isoformat() for i in range((dt.date.today() - first).days + 1)], days
        assert page.locator("svg.days text.axis").count() >= 14 + 3, "every day of two weeks has its label, the axis its values"
        page.locator("svg.days g.bar").last.focus()
        assert re.fullmatch(
            r"\w{3} \w{3} \d\d: [\d.]+ kWh \([\d.]+ measured, [\d.]+ estimated\)", page.locator("figure output").first.inner_text()
        )


def test_a_down_the_cli_started_is_followed_host_by_host(page_url: Console, browser: Browser) -> None:
    """The page open, a down started at a terminal: the page follows it by itself, a row per host from the journal
    (the plan it recorded, each step's start and end), esx22 still waiting for its slow guest by name while the
    others are off."""
    page = logged_in(browser, page_url.url, DESKTOP)
    env = {**os.environ, **page_url.lab.env, "XDG_STATE_HOME": str(page_url.state)}
    argv = [sys.executable, "-m", "labswitch", "--config", str(page_url.config), "down", "--yes"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rows = """() => { const r = Object.fromEntries([...document.querySelectorAll('#run-hosts tr[data-server]')]
            .map(tr => [tr.dataset.server, tr.querySelector('td.host-state').innerText]));
            return r.esx11 && r.esx11.startsWith('✓ off (BMC)') && r.esx22 && /esx22-vm01: shutting down/.test(r.esx22) && r; }"""
        seen = page.wait_for_function(rows, timeout=60_000).json_value()
        assert set(seen) == set(PAYLOAD), seen
        assert page.locator("#run-title").inner_text() == "down of payload"
        assert bmc_power(page_url.lab, "esx11") == "Off" and bmc_power(page_url.lab, "esx22") == "On"
        assert proc.wait(timeout=90) == 0
        page.wait_for_function("() => document.querySelector('#run-state.outcome-ok')", timeout=30_000)
    finally:
        proc.kill() if proc.poll() is None else None
