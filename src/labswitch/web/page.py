"""The web page of `labswitch serve`: one screen for the lab, the lab's live console. Its skeleton and energy
panel are rendered here (Jinja2); the lab itself (web/view.py) comes as JSON, on load and from an event stream
while the page is open, and is drawn by the page's own JavaScript (static/app.js): groups, hosts, VMs, the run in
progress with a row per host, the confirmation sheet with the plan in brief. No build step, no CDN.

A password login ([serve] password_hash, written by `labswitch serve passwd`) gives a signed, HttpOnly,
SameSite=Strict session cookie naming a session kept on the server (web/sessions.py: revoked by logout, a new
password or a restart); every form that changes state carries the session's CSRF token.
The page never offers an override of a safety refusal: a refusal is shown with its reason."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal

import bcrypt
from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from labswitch.config import Config
from labswitch.errors import LabswitchError
from labswitch.plan import Intent
from labswitch.render import serialise
from labswitch.render.live import power_by
from labswitch.render.runs import brief
from labswitch.usecases import power
from labswitch.usecases.automation import Automation
from labswitch.usecases.coordinator import Coordinator
from labswitch.usecases.service import Service
from labswitch.web import charts, view
from labswitch.web.events import run_events
from labswitch.web.pools import PAGE_THREADS, Pool
from labswitch.web.sessions import Sessions, Throttle

log = logging.getLogger("labswitch.serve")

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def mount(app: FastAPI, config: Config, service: Service, automation: Automation, coordinator: Coordinator, sessions: Sessions) -> None:
    """The page's routes on the app (the cookie middleware is the app's; the sessions behind it are ``sessions``)."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.sessions = sessions
    ui = APIRouter(include_in_schema=False)
    pool = Pool("page", PAGE_THREADS)  # the page's own threads, apart from the API's
    _session_routes(ui, pool, sessions, Throttle())
    _lab_routes(ui, pool, config, service, automation, coordinator)
    app.include_router(ui)


def logged_in(request: Request) -> bool:
    """The cookie names a session this service issued, has not revoked, under the password in force."""
    sessions: Sessions = request.app.state.sessions
    return sessions.valid(request.session.get("sid"))


def csrf(request: Request) -> str:
    """The session's CSRF token (made on first use), carried by every form."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf(request: Request, token: str) -> None:
    if not logged_in(request):
        raise HTTPException(401, "log in first")
    if not secrets.compare_digest(token.encode(), csrf(request).encode()):
        raise HTTPException(403, "the form's CSRF token does not match the session: reload the page")


def _session_routes(ui: APIRouter, pool: Pool, sessions: Sessions, throttle: Throttle) -> None:
    """Log in (throttled per address and overall, awaited: no worker is held) and out (the session revoked)."""

    @ui.get("/login", response_class=HTMLResponse)
    @pool.route
    def login_page(request: Request) -> Response:
        enabled = bool(sessions.passwords.current())
        return templates.TemplateResponse(request, "login.html", {"csrf": csrf(request), "error": None, "enabled": enabled})

    @ui.post("/login")
    async def login(request: Request, password: str = Form(...), csrf_token: str = Form(...)) -> Response:
        if not secrets.compare_digest(csrf_token.encode(), csrf(request).encode()):
            raise HTTPException(403, "the form's CSRF token does not match the session: reload the page")
        address = request.client.host if request.client else "?"
        wait = throttle.admit(address)  # counted as wrong until it proves right
        if wait > 0:
            return _login_failed(request, 429, f"too many wrong passwords; try again in {wait:.0f}s", {"Retry-After": f"{wait:.0f}"})
        hashed = sessions.passwords.current()
        right = bool(hashed) and await asyncio.to_thread(bcrypt.checkpw, password.encode()[:72], hashed)
        if not right:
            log.warning("page: wrong password from %s", address)
            await asyncio.sleep(0.5)  # a wrong password costs a little time, without holding a worker
            return _login_failed(request, 401, "wrong password")
        throttle.succeeded(address)
        request.session.clear()
        request.session["sid"] = sessions.issue()
        request.session["csrf"] = secrets.token_urlsafe(32)  # a fresh token for the session that starts
        return RedirectResponse("/", status_code=303)

    def _login_failed(request: Request, status: int, error: str, headers: dict[str, str] | None = None) -> Response:
        context = {"csrf": csrf(request), "error": error, "enabled": bool(sessions.passwords.current())}
        return templates.TemplateResponse(request, "login.html", context, status_code=status, headers=headers)

    @ui.post("/logout")
    @pool.route
    def logout(request: Request, csrf_token: str = Form(...)) -> Response:
        check_csrf(request, csrf_token)
        sessions.revoke(request.session.get("sid"))
        request.session.clear()
        return RedirectResponse("/login", status_code=303)


def _lab_routes(ui: APIRouter, pool: Pool, config: Config, service: Service, automation: Automation, coordinator: Coordinator) -> None:
    """The page, the lab as it goes (an event stream), what a button would do, starting a run and following it."""

    @ui.get("/", response_class=HTMLResponse)
    @pool.route
    def index(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=303)
        reading = coordinator.read()  # one round for the groups and the energy panel alike
        context = {
            "csrf": csrf(request),
            "lab": view.lab(config, service, automation, reading),
            "energy": charts.panel(config, reading.power),
        }
        return templates.TemplateResponse(request, "index.html", context)

    @ui.get("/ui/lab/events")
    async def ui_lab_events(request: Request) -> StreamingResponse:
        """``event: lab`` with the page's lab whenever it changed (a new round of the coordinator: every 2 s during a
        run, from the BMCs and vCenter; a run starting or ending), checked each second while the page is open."""
        if not logged_in(request):
            raise HTTPException(401, "log in first")

        async def stream() -> AsyncIterator[str]:
            sent = ""
            while not await request.is_disconnected():
                reading = coordinator.latest()
                if reading is not None:
                    now = json.dumps(await pool.call(functools.partial(view.lab, config, service, automation, reading)))
                    if now != sent:
                        sent = now
                        yield f"event: lab\ndata: {now}\n\n"
                await asyncio.sleep(LAB_POLL)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @ui.get("/ui/plan")
    @pool.route
    def ui_plan(
        request: Request, intent: Literal["down", "up"], group: Annotated[str, Query(max_length=200)], restore: bool = False
    ) -> JSONResponse:
        """What a button would do, for its confirmation sheet: the plan (every step), its brief per host, the cluster
        changes, notes and refusals."""
        if not logged_in(request):
            raise HTTPException(401, "log in first")
        try:
            plan = power.make(config, power.Request(Intent(intent), (group,), restore=restore and intent == "up"))
        except LabswitchError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        groups = {s.name: s.group for s in config.servers}
        planned = serialise.plan(plan)
        planned["steps"] = [{**step, "label": f"{step['action']} {step['target']}"} for step in planned["steps"]]
        return JSONResponse({**planned, "brief": serialise.brief(brief(plan, groups, power_by(config.servers)))})

    @ui.post("/ui/runs")
    @pool.route
    def ui_start(
        request: Request,
        intent: Literal["down", "up"] = Form(...),
        group: str = Form(..., max_length=200),
        csrf_token: str = Form(...),
        restore: bool = Form(False),
    ) -> Response:
        check_csrf(request, csrf_token)
        try:
            started = service.start(Intent(intent), [group], restore=restore and intent == "up", reason="page")
        except LabswitchError as exc:
            request.session["flash"] = str(exc)
            return RedirectResponse("/", status_code=303)
        return RedirectResponse(f"/?run={started.run_id}" if started.run_id else "/", status_code=303)

    @ui.get("/ui/runs/{run_id}/events")
    async def ui_events(request: Request, run_id: str) -> StreamingResponse:
        if not logged_in(request):
            raise HTTPException(401, "log in first")

        return run_events(service, run_id, pool)


LAB_POLL = 1.0  # seconds between looks at the coordinator's latest round for an open page
