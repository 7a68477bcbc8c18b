"""The web page of `labswitch serve`: one screen for the lab, server-rendered (Jinja2), a little CSS and
JavaScript of its own (EventSource for a run's progress, fetch for a plan's summary), no build step, no
CDN. A password login ([serve] password_hash, written by `labswitch serve passwd`) gives a signed,
HttpOnly, SameSite=Strict session cookie naming a session kept on the server (web/sessions.py: revoked by
logout, a new password or a restart); every form that changes state carries the session's CSRF token.
The page never offers an override of a safety refusal: a refusal is shown with its reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from pathlib import Path
from typing import Any, Literal

import bcrypt
from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.errors import EndpointError, LabswitchError
from labswitch.plan import Action, Intent
from labswitch.usecases import energy, power
from labswitch.usecases.automation import Automation
from labswitch.usecases.coordinator import Coordinator
from labswitch.usecases.service import Service
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
    """The page, what a button would do, starting a run and following it."""

    @ui.get("/", response_class=HTMLResponse)
    @pool.route
    def index(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=303)
        try:
            view = _view(config, service, automation, coordinator)
        except LabswitchError as exc:  # vCenter or a host unreachable: the page says so, with what it still knows
            view = {"groups": [], "running": None, "runs": [_run_row(r) for r in service.history(8)], "energy": None, "notes": []}
            view["error"] = str(exc)
        return templates.TemplateResponse(request, "index.html", {"csrf": csrf(request), **view})

    @ui.get("/ui/plan")
    @pool.route
    def ui_plan(request: Request, intent: Literal["down", "up"], group: str) -> JSONResponse:
        """What a button would do, for its confirmation: counts and the refusals."""
        if not logged_in(request):
            raise HTTPException(401, "log in first")
        try:
            plan = power.make(config, power.Request(Intent(intent), (group,), restore=False))
        except LabswitchError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        vms = sum(1 for s in plan.steps if s.action in (Action.SHUTDOWN_GUEST, Action.POWER_OFF_VM, Action.POWER_ON_VM))
        return JSONResponse({"servers": len(plan.servers), "vms": vms, "steps": len(plan.steps), "refusals": list(plan.refusals)})

    @ui.post("/ui/runs")
    @pool.route
    def ui_start(
        request: Request, intent: Literal["down", "up"] = Form(...), group: str = Form(...), csrf_token: str = Form(...)
    ) -> Response:
        check_csrf(request, csrf_token)
        try:
            started = service.start(Intent(intent), [group], restore=intent == "up", reason="page")
        except LabswitchError as exc:
            request.session["flash"] = str(exc)
            return RedirectResponse("/", status_code=303)
        return RedirectResponse(f"/?run={started.run_id}" if started.run_id else "/", status_code=303)

    @ui.get("/ui/runs/{run_id}/events")
    async def ui_events(request: Request, run_id: str) -> StreamingResponse:
        if not logged_in(request):
            raise HTTPException(401, "log in first")

        return run_events(service, run_id, pool)


def _view(config: Config, service: Service, automation: Automation, coordinator: Coordinator) -> dict[str, Any]:
    """What the page shows: groups with their servers and state, the run in progress, the last runs, energy.
    From the coordinator's latest round (power and watts), for the groups and the energy panel alike."""
    reading = coordinator.read()
    if reading.report is None:
        raise EndpointError(reading.error or "vCenter not read")
    report = reading.report
    holder = service.running()
    by_server = {h.name: h for h in report.hosts}
    vms_on: dict[str | None, int] = {}
    for vm in report.vms:
        if vm.power_state == "poweredOn" and vm.system is None:
            vms_on[vm.host] = vms_on.get(vm.host, 0) + 1
    readings = reading.power
    countdowns = automation.countdowns()
    upcoming = automation.upcoming()
    groups = []
    for name, group in config.groups.items():
        servers = []
        for s in (x for x in config.servers if x.group == name):
            host = by_server.get(s.name)
            servers.append(
                {
                    "name": s.name,
                    "power": host.bmc_power if host else None,
                    "connection": host.connection_state if host else None,
                    "watts": host.watts if host else None,
                    "vms": vms_on.get(s.name, 0),
                }
            )
        powers = [x["power"] for x in servers]
        if any(p not in ("On", "Off") for p in powers):
            state = "unknown"  # a BMC that does not answer: never "off" (or "on") on a guess
        elif powers and all(p == "On" for p in powers):
            state = "on"
        else:
            state = "off" if powers and all(p == "Off" for p in powers) else "partly on"
        if holder is not None and name in holder.groups:
            state = "going down" if holder.intent == "down" else "coming up"
        countdown = countdowns.get(name)
        nxt = next((u for u in upcoming if name in u.schedule.groups or (not u.schedule.groups and not group.always_on)), None)
        groups.append(
            {
                "name": name,
                "always_on": group.always_on,
                "state": state,
                "servers": servers,
                "down_at": countdown.down_at if countdown else None,
                "next": f"{nxt.schedule.action} {nxt.at:%a %H:%M}" if nxt else None,
            }
        )
    return {
        "groups": groups,
        "running": {"run_id": holder.run_id, "what": holder.describe()} if holder else None,
        "runs": [_run_row(r) for r in service.history(8)],
        "energy": _energy(config, readings),
        "notes": list(report.notes),
    }


WATTS_HOURS = 72  # the page's watts chart: the last three days, hour by hour


CHART_WIDTH = 328  # both energy charts: 14 day bars, or 72 hours of watts, in the same width


def _polylines(hourly: list[float | None]) -> list[str]:
    """SVG polyline points (x from 10 to CHART_WIDTH - 10, y from 90 down to 10) for the hours with samples; a
    gap splits the line."""
    top = max((w for w in hourly if w is not None), default=0.0) or 1.0
    step = (CHART_WIDTH - 20) / max(len(hourly) - 1, 1)
    lines: list[list[str]] = [[]]
    for i, watts in enumerate(hourly):
        if watts is None:
            if lines[-1]:
                lines.append([])
            continue
        lines[-1].append(f"{10 + step * i:.1f},{90 - 80 * watts / top:.1f}")
    return [" ".join(points) for points in lines if len(points) > 1]


def _run_row(r: Any) -> dict[str, str]:
    started = time.strftime("%b %d %H:%M", time.localtime(r.started))
    return {
        "id": r.id,
        "intent": r.intent,
        "groups": ", ".join(r.groups),
        "outcome": r.outcome,
        "reason": r.reason or "",
        "started": started,
    }


def _energy(config: Config, readings: dict[str, tuple[Power, float | None]]) -> dict[str, Any] | None:
    """The panel: watts now, this month's cost (measured and estimated) and saving, a bar per day (kWh) for two weeks."""
    now = dt.datetime.now().astimezone()
    try:
        month = energy.report(config, since=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), until=now, readings=readings)
        fortnight = energy.report(config, since=now - dt.timedelta(days=14), until=now, readings=readings)
    except LabswitchError:
        return None
    days: dict[str, float] = {}
    for server in fortnight.servers:
        for day, kwh in server.kwh_by_day.items():
            days[day] = days.get(day, 0.0) + kwh
    ordered = sorted(days.items())[-14:]
    top = max((v for _, v in ordered), default=0.0) or 1.0
    bars = [{"day": d[5:], "kwh": round(v, 2), "height": round(80 * v / top, 1), "x": 10 + i * 22} for i, (d, v) in enumerate(ordered)]
    c = month.currency
    hourly = energy.recent_watts(config, WATTS_HOURS)
    return {
        "watts_line": _polylines(hourly),
        "watts_top": round(max((w for w in hourly if w is not None), default=0)),
        "watts": round(month.total_watts),
        "saving": f"{month.saving:.2f} {c}",
        "always_on": f"{month.always_on_cost:.2f} {c}",
        "actual": f"{month.cost:.2f} {c}",
        "kwh": f"{month.kwh:.1f}",
        "measured": f"{month.measured_kwh:.1f}",
        "estimated": f"{month.estimated_kwh:.1f}",
        "sampled": month.sampled_since is not None,
        "bars": bars,
        "width": CHART_WIDTH,
    }
