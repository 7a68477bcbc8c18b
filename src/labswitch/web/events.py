"""A run's steps as Server-Sent Events, read from the journal (the run's record, whoever started it):
``event: run`` first, with the run's id, intent and groups, its journaled start (unix seconds: a page opened late
counts from it) and whether it had finished already (a past run looked at),
``event: step`` per step as it is journaled, ``event: hosts`` with every host's row of the live view whenever one
changed (a run this service started; its clocks tick each second), ``event: wide`` with what holds the whole run
when that changes (vCenter starting; null when nothing does), then ``event: end`` with the outcome and the run's
seconds from start to finish."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from labswitch.render import serialise
from labswitch.usecases.service import Service
from labswitch.web.pools import Pool

POLL = 0.5  # a new step shows within half a second


def run_events(service: Service, run_id: str, pool: Pool) -> StreamingResponse:
    """The journal is read in ``pool``'s threads: the API's for /api, the page's for /ui."""

    async def stream() -> AsyncIterator[str]:
        sent, rows, wide, told = 0, "", "null", False
        while True:
            progress = await pool.call(functools.partial(service.progress, run_id))
            if progress is None:  # no such run (any more)
                yield "event: end\ndata: {}\n\n"
                return
            if not told:
                told = True
                run = progress.run
                told_run = {
                    "run_id": run_id,
                    "intent": run.intent,
                    "groups": list(run.groups),
                    "started": run.started,
                    "finished": progress.finished,
                }
                yield f"event: run\ndata: {json.dumps(told_run)}\n\n"
            for step in progress.steps[sent:]:
                yield f"event: step\ndata: {json.dumps(serialise.step(step))}\n\n"
            sent = len(progress.steps)
            hosts = service.hosts(run_id)
            if hosts is not None and (now := json.dumps([serialise.host_row(r) for r in hosts])) != rows:
                rows = now
                yield f"event: hosts\ndata: {rows}\n\n"
            if (now := json.dumps(service.lab_wide(run_id))) != wide:
                wide = now
                yield f"event: wide\ndata: {wide}\n\n"
            if progress.finished:
                run = progress.run
                seconds = round((run.finished or run.started) - run.started, 1)
                yield f"event: end\ndata: {json.dumps({'outcome': run.outcome, 'seconds': seconds})}\n\n"
                return
            await asyncio.sleep(POLL)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
