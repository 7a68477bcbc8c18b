"""`labswitch serve`'s app: what starts and stops with it (the lab coordinator, MQTT, the UPS watch, energy samples
and schedules), the session middleware, the one error handler (status by the error's type), /healthz and
Prometheus /metrics. The REST API's routes are in ``web.api`` (FastAPI's OpenAPI page at /docs), the page's in
``web.page``.

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
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from pydantic import SecretStr
from starlette.middleware.sessions import SessionMiddleware

from labswitch.cancel import Cancel
from labswitch.config import Config
from labswitch.errors import ConfigError, Interrupted, LabswitchError, RunInProgress, SafetyRefusal
from labswitch.journal import state_base
from labswitch.usecases.automation import Automation
from labswitch.usecases.coordinator import Coordinator
from labswitch.usecases.service import Service
from labswitch.web import api, page
from labswitch.web.guard import Guard, bearer_ok
from labswitch.web.metrics import LabCollector
from labswitch.web.pools import Pool
from labswitch.web.sessions import Passwords, Sessions


def create_app(config: Config, service: Service, config_path: Path | None = None) -> FastAPI:
    """The service's app. ``config_path``: the file the config came from, re-read for a new page password."""
    coordinator = Coordinator(config, service)  # the one reader of the lab: the page, metrics, MQTT and samples read it
    service.on_change(coordinator.changed)
    automation = Automation(config, service, coordinator)

    lifespan = _lifespan(config, service, coordinator, automation)
    docs = {} if config.serve.api_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="labswitch", summary="Switch a vSphere lab on and off", version="1", lifespan=lifespan, **docs)  # type: ignore[arg-type]
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key(config),
        session_cookie="labswitch_session",
        same_site="strict",
        https_only=False,  # Secure is set per request, when it came over TLS (web/guard.py)
        max_age=7 * 24 * 3600,
    )
    app.add_middleware(Guard, max_body=config.serve.max_body, token=_token(config.serve.token))  # outermost: before all else
    page.mount(app, config, service, automation, coordinator, Sessions(Passwords(config.serve.password_hash, config_path)))
    registry = CollectorRegistry()
    registry.register(LabCollector(config, service, automation, coordinator))
    metrics_token = _token(config.serve.metrics_token)
    scrapes = Pool("metrics", 1)  # scrapes queue here, never in the API's or the page's threads

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

    app.include_router(api.router(config, service, coordinator, automation))

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> PlainTextResponse:
        """Prometheus text format, from the coordinator's last round (a scrape reads nothing of the lab). Secret-free;
        open unless [serve] metrics_token is set, then its bearer token is required."""
        if metrics_token is not None and not bearer_ok(request.headers.get("authorization", "").encode(), metrics_token):
            return PlainTextResponse("a valid bearer token is required ([serve] metrics_token)\n", status_code=401)
        text = await scrapes.call(lambda: generate_latest(registry))
        return PlainTextResponse(text.decode(), media_type=CONTENT_TYPE_LATEST)

    return app


def _token(secret: object) -> str | None:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else None


def _lifespan(config: Config, service: Service, coordinator: Coordinator, automation: Automation) -> Any:
    """What runs beside the requests: the coordinator, MQTT, the UPS watch and the automation, started and stopped
    with the service."""

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

    return lifespan


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
