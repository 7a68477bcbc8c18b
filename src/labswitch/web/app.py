"""The REST API (JSON; FastAPI's OpenAPI page at /docs) and Prometheus /metrics.

Every /api route needs the bearer token of ``[serve] token``. A run is started with POST /api/runs and
answers with its run id at once (202); its steps are read from the journal (GET /api/runs/{id}), or
followed as Server-Sent Events (GET /api/runs/{id}/events) until it ends. One run at a time: a second
gets 409 with the run id that holds the lock. Errors are one line in {"detail": ...}, never a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel, SecretStr
from starlette.middleware.sessions import SessionMiddleware

from labswitch.cancel import Cancel
from labswitch.config import Config
from labswitch.errors import ConfigError, EndpointError, Interrupted, LabswitchError, RunInProgress, SafetyRefusal
from labswitch.journal import state_base
from labswitch.plan import Intent
from labswitch.render import serialise
from labswitch.usecases import energy, power
from labswitch.usecases.automation import Automation
from labswitch.usecases.coordinator import Coordinator
from labswitch.usecases.service import Service
from labswitch.usecases.status import as_json
from labswitch.web import page
from labswitch.web.events import run_events
from labswitch.web.metrics import LabCollector


class RunRequest(BaseModel):
    intent: Literal["down", "up"]
    groups: list[str] = []
    restore: bool = False


def create_app(config: Config, service: Service) -> FastAPI:
    coordinator = Coordinator(config, service)  # the one reader of the lab: the page, metrics, MQTT and samples read it
    service.on_change(coordinator.changed)
    automation = Automation(config, service, coordinator)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        coordinator.start()
        bridge = None
        if config.mqtt is not None:  # Home Assistant over MQTT, started and stopped with the service
            from labswitch.web.mqtt import Bridge

            bridge = Bridge(config, service, automation, coordinator)
            bridge.start()
        watch = _ups_watch(config) if config.ups is not None else None  # the UPS watched inside the service too
        automation.start()  # energy samples, idle auto-down, [[serve.schedules]]
        yield
        await asyncio.to_thread(automation.stop)
        if watch is not None:
            watch.set("the service stopped")
        if bridge is not None:
            await asyncio.to_thread(bridge.stop)
        # SIGTERM: uvicorn stops serving, then this: a run in progress stops at its next wait, journaled
        # as interrupted (the same command, or POST /api/runs, finishes it); the lock is released.
        await asyncio.to_thread(service.stop)
        await asyncio.to_thread(coordinator.stop)

    app = FastAPI(title="labswitch", summary="Switch a vSphere lab on and off", version="1", lifespan=lifespan)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key(config),
        session_cookie="labswitch_session",
        same_site="strict",
        https_only=bool(config.serve.tls_cert),
        max_age=7 * 24 * 3600,
    )
    page.mount(app, config, service, automation, coordinator)
    token = config.serve.token.get_secret_value() if isinstance(config.serve.token, SecretStr) else None

    def authorized(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if token is None or not given.startswith("Bearer ") or not secrets.compare_digest(given[7:].encode(), token.encode()):
            raise HTTPException(401, "a valid bearer token is required (Authorization: Bearer <serve.token>)")

    api = APIRouter(prefix="/api", dependencies=[Depends(authorized)])
    registry = CollectorRegistry()
    registry.register(LabCollector(config, service, automation, coordinator))

    @app.exception_handler(LabswitchError)
    async def _error(request: Request, exc: LabswitchError) -> JSONResponse:
        """Every error the use cases raise: its status from its type (errors.py), its one line as the detail."""
        body: dict[str, object] = {"detail": f"refused: {exc}" if isinstance(exc, SafetyRefusal) else str(exc)}
        if isinstance(exc, RunInProgress):
            holder = service.running()
            body["run_id"] = holder.run_id if holder else None
        return JSONResponse(body, status_code=exc.http_status)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/status")
    def api_status() -> dict[str, Any]:
        """Hosts, VMs and the cluster settings a down changed: the coordinator's latest round (at most
        serve.poll_interval old; a fresh one after a run), with each server's watts."""
        reading = coordinator.read()
        if reading.report is None:
            raise EndpointError(reading.error or "vCenter not read")
        return as_json(reading.report)

    @api.get("/plan/{intent}")
    def api_plan(intent: Literal["down", "up"], group: list[str] | None = None, restore: bool = False) -> dict[str, Any]:
        """The exact steps a down or up would take now; changes nothing."""
        return serialise.plan(power.make(config, power.Request(Intent(intent), tuple(group or ()), restore=restore)))

    @api.post("/runs", status_code=202)
    def api_start(body: RunRequest) -> dict[str, Any]:
        """Start a down or up of the groups (default: every group that is not always_on); its run id at once."""
        started = service.start(Intent(body.intent), body.groups, body.restore)
        return {"run_id": started.run_id, "nothing_to_do": started.nothing_to_do}

    @api.get("/runs")
    def api_history(limit: int = 50) -> list[dict[str, Any]]:
        return [serialise.run_summary(record, steps) for record, steps in service.summaries(limit)]

    @api.get("/runs/{run_id}")
    def api_run(run_id: str) -> dict[str, Any]:
        progress = service.progress(run_id)
        if progress is None:
            raise HTTPException(404, f"no run {run_id} in the journal")
        return serialise.run(progress.run, progress.steps)

    @api.get("/runs/{run_id}/events")
    async def api_events(run_id: str) -> StreamingResponse:
        """The run's steps as Server-Sent Events (event: step), then event: end with its outcome."""
        if service.progress(run_id) is None:
            raise HTTPException(404, f"no run {run_id} in the journal")

        return run_events(service, run_id)

    @api.get("/energy")
    def api_energy(days: int | None = None, since: str | None = None) -> dict[str, Any]:
        """kWh and cost over the last ``days`` (default 30) or ``since`` a date: measured (the service's samples)
        and estimated apart, as `energy --json`."""
        return energy.as_json(energy.report(config, since=energy.period(since, days)))

    @api.get("/automation")
    def api_automation() -> dict[str, Any]:
        """What the service does by itself: idle auto-down's countdown per group, the schedules' next runs."""
        return {
            "idle_down_after": config.policy.idle_down_after,
            "idle": [{"group": c.group, "idle_since": c.idle_since, "down_at": c.down_at} for c in automation.countdowns().values()],
            "schedules": [
                {"action": u.schedule.action, "at": u.schedule.at, "groups": u.schedule.groups, "next": u.at.isoformat(timespec="seconds")}
                for u in automation.upcoming()
            ],
            "last_sample": automation.last_sample,
        }

    @api.get("/lock")
    def api_lock() -> dict[str, Any]:
        holder = service.running()
        return {"running": holder is not None, "run_id": holder.run_id if holder else None, "what": holder.describe() if holder else None}

    app.include_router(api)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        """Prometheus text format; read-only and secret-free, so open like /healthz (the API is not)."""
        return PlainTextResponse(generate_latest(registry).decode(), media_type=CONTENT_TYPE_LATEST)

    return app


def _ups_watch(config: Config) -> Cancel:
    """`ups watch` in a thread of the service: its notes to the log, its runs under the same run lock."""
    import logging
    import threading

    from labswitch.usecases import ups

    log = logging.getLogger("labswitch.ups")
    cancel = Cancel()

    def quiet() -> tuple[Any, Any]:
        return (lambda kind, data: None), (lambda: None)

    def run() -> None:
        try:
            ups.watch(config, quiet, log.warning, cancel)
        except Interrupted:
            pass
        except LabswitchError as exc:
            log.error("ups watch stopped: %s", exc)

    threading.Thread(target=run, name="ups-watch", daemon=True).start()
    return cancel


def session_key(config: Config) -> str:
    """The key that signs the page's session cookies: made once, kept (0600) in the state directory."""
    path = state_base(config.state_dir) / "serve-session.key"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot keep the session key ({exc.strerror}); check state_dir") from exc
