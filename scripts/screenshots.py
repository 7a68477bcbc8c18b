"""The README's and the docs' pictures of the page, taken from a real run against labsim (make screenshots).

Starts labsim (2 clusters of 3 hosts, one slow guest so that a host is off while another still waits), `labswitch
serve` with a page password, and Debian's chromium through Playwright; presses Down in the sheet and takes the run in
progress on a desktop and a phone. Writes docs/page-desktop.png, docs/page-run-desktop.png, docs/page-run-phone.png
and docs/page-sheet-phone.png. Needs `make venv labsim`; everything binds to 127.0.0.1."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PASSWORD = "screenshot-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: gave up waiting for {what}")
        time.sleep(0.2)


def log_in(page: Page, url: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("section.group[data-group=payload]")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="labswitch-shots-"))
    config, secrets = work / "lab.toml", work / "lab.env"
    labsim = REPO / "labsim" / "bin" / "labsim"
    args = ["--write-config", str(config), "--secrets-file", str(secrets), "--hosts-per-cluster", "3", "--vms-per-host", "4"]
    args += ["--guest-shutdown-delay", "4s", "--host-shutdown-delay", "1s", "--slow-guests", "esx23-vm02=40s"]
    lab = subprocess.Popen([str(labsim), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    serve = None
    try:
        until(lambda: secrets.exists() and config.exists(), 30, "labsim")
        env = {**os.environ, "XDG_STATE_HOME": str(work / "state"), "LABSWITCH_TOKEN": "screenshots"}
        for line in secrets.read_text().splitlines():
            if m := re.match(r"(?:export )?(\w+)=(.*)", line):
                env[m.group(1)] = m.group(2).strip("'\"")
        port = free_port()
        text = config.read_text().replace("[policy]\n", "[policy]\nguest_shutdown_timeout = 90\n")
        config.write_text(text + f'\n[serve]\ntoken = {{ env = "LABSWITCH_TOKEN" }}\nlisten = "127.0.0.1:{port}"\n')
        labswitch = [sys.executable, "-m", "labswitch", "--config", str(config)]
        subprocess.run([*labswitch, "serve", "passwd"], input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True)
        serve = subprocess.Popen([*labswitch, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        until(lambda: subprocess.run(["curl", "-sf", url + "/healthz"], capture_output=True).returncode == 0, 30, "serve")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            desktop = browser.new_page(viewport={"width": 1100, "height": 1000})
            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            log_in(desktop, url)
            log_in(phone, url)
            desktop.screenshot(path=str(DOCS / "page-desktop.png"), full_page=True)
            phone.locator("section.group[data-group=payload] button[data-intent=down]").click()
            phone.wait_for_selector("#sheet[open] #sheet-go:not([disabled])", timeout=60_000)
            phone.screenshot(path=str(DOCS / "page-sheet-phone.png"))
            phone.click("#sheet-go")
            phone.wait_for_url(re.compile(r"/\?run="), timeout=60_000)
            off = "() => document.querySelectorAll('section.group[data-group=payload] td.power[data-power=Off]').length >= 4"
            desktop.wait_for_function(off, timeout=60_000)
            phone.wait_for_function(off, timeout=10_000)
            desktop.screenshot(path=str(DOCS / "page-run-desktop.png"))
            phone.screenshot(path=str(DOCS / "page-run-phone.png"))
            browser.close()
        print("screenshots: docs/page-desktop.png, page-run-desktop.png, page-run-phone.png, page-sheet-phone.png")
    finally:
        for proc in (serve, lab):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
