"""`labswitch serve`'s REST API (/api, every route behind the bearer token): the lab's status, plans, runs and
their events, energy, what the service does by itself, the run lock. Thin: each route calls one use case and
one serialiser; errors become statuses by their type (errors.py, the app's one handler)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, SecretStr

from labswitch.config import Config
from labswitch.errors import EndpointError
from labswitch.plan import Intent
from labswitch.render import serialise
from labswitch.usecases import energy, power
from labswitch.usecases.automation import Automation
from labswitch.usecases.coordinator import Coordinator
from labswitch.usecases.service import Service
from labswitch.usecases.status import as_json
from labswitch.web.events import run_events
from labswitch.web.guard import bearer_ok
from labswitch.web.pools import API_THREADS, Pool


class RunRequest(BaseModel):
    intent: Literal["down", "up"]
    groups: list[str] = []
    restore: bool = False


def router(config: Config, service: Service, coordinator: Coordinator, automation: Automation) -> APIRouter:
    token = config.serve.token.get_secret_value() if isinstance(config.serve.token, SecretStr) else None

    async def authorized(request: Request) -> None:
        """Checked before the body too (web/guard.py); here for every route the router serves, whatever mounts it."""
        if token is None or not bearer_ok(request.headers.get("authorization", "").encode(), token):
            raise HTTPException(401, "a valid bearer token is required (Authorization: Bearer <serve.token>)")

    api = APIRouter(prefix="/api", dependencies=[Depends(authorized)])
    pool = Pool("api", API_THREADS)  # the API's own threads: a hung page or scrape cannot hold them
    _lab_routes(api, pool, config, coordinator, automation)
    _run_routes(api, pool, config, service)
    return api


def _lab_routes(api: APIRouter, pool: Pool, config: Config, coordinator: Coordinator, automation: Automation) -> None:
    """What the lab is and costs, and what the service does by itself."""

    @api.get("/status")
    @pool.route
    def api_status() -> dict[str, Any]:
        """Hosts, VMs and the cluster settings a down changed: the coordinator's latest round (at most
        serve.poll_interval old; a fresh one after a run), with each server's watts."""
        reading = coordinator.read()
        if reading.report is None:
            raise EndpointError(reading.error or "vCenter not read")
        return as_json(reading.report)

    @api.get("/energy")
    @pool.route
    def api_energy(
        days: Annotated[int | None, Query(ge=1, le=energy.MAX_DAYS)] = None, since: Annotated[str | None, Query(max_length=40)] = None
    ) -> dict[str, Any]:
        """kWh and cost over the last ``days`` (default 30) or ``since`` a date: measured (the service's samples)
        and estimated apart, as `energy --json`."""
        readings = coordinator.read().power  # the draw now, from the latest round: no BMC read of its own
        return energy.as_json(energy.report(config, since=energy.period(since, days), readings=readings))

    @api.get("/automation")
    @pool.route
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


def _run_routes(api: APIRouter, pool: Pool, config: Config, service: Service) -> None:
    """Plans, runs (started, listed, followed) and the run lock."""

    @api.get("/plan/{intent}")
    @pool.route
    def api_plan(
        intent: Literal["down", "up"], group: Annotated[list[str] | None, Query()] = None, restore: bool = False
    ) -> dict[str, Any]:
        """The exact steps a down or up of the groups (``?group=a&group=b``; default: every group that is not
        always_on) would take now; changes nothing."""
        return serialise.plan(power.make(config, power.Request(Intent(intent), tuple(group or ()), restore=restore)))

    @api.post("/runs", status_code=202)
    @pool.route
    def api_start(body: RunRequest) -> dict[str, Any]:
        """Start a down or up of the groups (default: every group that is not always_on); its run id at once."""
        started = service.start(Intent(body.intent), body.groups, body.restore)
        return {"run_id": started.run_id, "nothing_to_do": started.nothing_to_do}

    @api.get("/runs")
    @pool.route
    def api_history(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
        return [serialise.run_summary(record, steps) for record, steps in service.summaries(limit)]

    @api.get("/runs/{run_id}")
    @pool.route
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

        return run_events(service, run_id, pool)

    @api.get("/lock")
    @pool.route
    def api_lock() -> dict[str, Any]:
        holder = service.running()
        return {"running": holder is not None, "run_id": holder.run_id if holder else None, "what": holder.describe() if holder else None}
