"""The web page in a real browser (Debian's chromium, driven headless by Playwright): log in, press Down on a
labsim lab, watch the progress reach done, see the group off — and read it back through Redfish and pyVmomi.
The screenshots land in the test's directory (phone and desktop) to be looked at."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, sync_playwright

from labswitch.samples import Sample, Samples
from tests.conftest import wait_until
from tests.integration.test_down_up import FAST, configure, payload
from tests.integration.test_serve import TOKEN, add_serve, serving
from tests.labsim import Lab, bmc_power, vm_power

PASSWORD = "page-pass-w0rd"
PAYLOAD = ("esx11", "esx12", "esx21", "esx22")
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def page_url(lab_factory: Callable[..., Lab], state_dir: Path) -> Iterator[tuple[str, Lab]]:
    lab = lab_factory(*FAST, "--guest-shutdown-delay", "3s")  # a down of some seconds: the page's clock is seen to run
    config = configure(lab, policy='idle_down_after = "1h"\n')  # the page shows idle auto-down's countdown
    url = add_serve(lab, config, '\n[energy]\nsample_interval = "1s"\n')
    argv = [sys.executable, "-m", "labswitch", "--config", str(config), "serve", "passwd"]
    subprocess.run(argv, input=PASSWORD + "\n", text=True, env={**os.environ, **lab.env}, check=True, capture_output=True)
    assert 'password_hash = "$2b$' in config.read_text() and PASSWORD not in config.read_text()
    seed_samples(state_dir / "labswitch" / "journal.sqlite3", hours=6)
    with serving(lab, config, url, state_dir):
        yield url, lab


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


def test_log_in_press_down_and_watch_the_group_go_off(page_url: tuple[str, Lab], tmp_path: Path) -> None:
    url, lab = page_url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            log_in(phone, url, "not-the-password")
            assert phone.locator("[role=alert]").inner_text() == "wrong password"
            wait_until(lambda: api_idle(url), 30, "the idle clock started by the first sample")
            log_in(phone, url)
            group = phone.locator("section.group[data-group=payload]")
            assert group.locator(".state").inner_text() == "on"
            countdown = group.locator(".countdown")
            assert re.fullmatch(r"0:59:\d\d", countdown.inner_text()), countdown.inner_text()
            first = countdown.inner_text()
            ticking = "t => document.querySelector('section.group[data-group=payload] .countdown').textContent !== t"
            phone.wait_for_function(ticking, arg=first)
            assert phone.locator("section.group[data-group=mgmt] .countdown").count() == 0, "always_on: no countdown"
            lines = phone.locator("svg.watts polyline")
            assert lines.count() == 1 and len(lines.get_attribute("points").split()) >= 6, "the seeded hours, as one line"
            heights = [float(p.split(",")[1]) for p in lines.get_attribute("points").split()]
            # the hour before the last holds only seeded 100 W; the last one also this serve's own samples
            assert heights[0] < 15 and heights[-2] > 60, f"400 W near the top, the last hours' 100 W low: {heights}"
            phone.screenshot(path=str(tmp_path / "page-phone.png"), full_page=True)
            questions: list[str] = []
            phone.on("dialog", lambda d: (questions.append(d.message), d.accept()))
            group.locator("form[data-intent=down] button").click()
            phone.wait_for_url(re.compile(r"/\?run="), timeout=60_000)
            assert questions and questions[0].startswith("Down of payload: stop") and "switch off 4 servers" in questions[0]
            # each host's row says what it waits for: its slowest guest by name, with a clock
            shutting = "() => /esx\\d\\d-vm\\d\\d: shutting down 00:0[0-9]/.test(document.querySelector('#run-hosts').innerText)"
            phone.wait_for_function(shutting, timeout=30_000)
            phone.screenshot(path=str(tmp_path / "page-run-phone.png"), full_page=True)
            # the page at the run's end, read in one go (it goes back to the groups 1.5 s later)
            at_end = """() => document.querySelector('#run-state.outcome-ok') && {
                servers: [...document.querySelectorAll('#run-hosts tbody tr')].map(r => r.dataset.server),
                states: [...document.querySelectorAll('#run-hosts td.host-state')].map(td => td.innerText),
                steps: document.querySelectorAll('#run-steps li').length,
                clock: document.querySelector('#run-clock').innerText}"""
            end = phone.wait_for_function(at_end, timeout=90_000).json_value()
            assert sorted(end["servers"]) == sorted(PAYLOAD) and set(end["states"]) == {"off (BMC)"}, end
            assert end["steps"] > 0 and end["clock"] != "00:00", end
            phone.wait_for_url(url + "/", timeout=30_000)  # the page reads the groups again once the run is done
            assert phone.locator("section.group[data-group=payload] .state").inner_text() == "off"
            # a past run is a link: its steps, numbered whole (two and three digits fit), and it stays on screen
            assert phone.locator("table.runs td.outcome-ok").first.is_visible(), "the outcome column fits on a phone"
            phone.locator("table.runs a").first.click()
            phone.wait_for_function("() => document.querySelector('#run-state.outcome-ok')", timeout=30_000)
            listed = phone.locator("#run-steps li").count()
            assert listed == end["steps"], (listed, end["steps"])
            box = phone.locator("#run-steps").bounding_box()
            assert box is not None and box["x"] >= 0, "the list's numbers are inside the page"
            assert phone.evaluate("getComputedStyle(document.querySelector('#run-steps')).paddingLeft") != "19.2px"
            phone.screenshot(path=str(tmp_path / "page-past-run-phone.png"), full_page=True)
            desktop = browser.new_page(viewport={"width": 1100, "height": 900})
            log_in(desktop, url)
            desktop.screenshot(path=str(tmp_path / "page-desktop.png"), full_page=True)
        finally:
            browser.close()
    assert all(bmc_power(lab, s) == "Off" for s in PAYLOAD) and bmc_power(lab, "mgmt01") == "On"
    assert set(payload(vm_power(lab)).values()) == {"poweredOff"}
    assert (tmp_path / "page-phone.png").stat().st_size > 10_000 and (tmp_path / "page-desktop.png").stat().st_size > 10_000


def test_state_changes_need_a_session_and_its_csrf_token(page_url: tuple[str, Lab]) -> None:
    url, lab = page_url
    anonymous = requests.post(url + "/ui/runs", data={"intent": "down", "group": "payload", "csrf_token": "x"}, timeout=30)
    assert anonymous.status_code == 401
    session = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', session.get(url + "/login", timeout=30).text)
    assert token is not None
    logged_in = session.post(url + "/login", data={"password": PASSWORD, "csrf_token": token.group(1)}, timeout=30, allow_redirects=False)
    assert logged_in.status_code == 303
    set_cookie = logged_in.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    cookie = next(c for c in session.cookies if c.name == "labswitch_session")
    assert cookie.has_nonstandard_attr("HttpOnly") or "httponly" in str(cookie._rest).lower()
    cross_site = session.post(url + "/ui/runs", data={"intent": "down", "group": "payload", "csrf_token": "forged"}, timeout=30)
    assert cross_site.status_code == 403, "a form posted from elsewhere has no CSRF token of this session"
    page = session.get(url + "/", timeout=30).text
    assert PASSWORD not in page and lab.env["LABSIM_BMC_PASSWORD"] not in page and TOKEN not in page
    assert all(bmc_power(lab, s) == "On" for s in PAYLOAD), "nothing ran"
