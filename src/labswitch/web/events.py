"""A run's steps as Server-Sent Events, read from the journal (the run's record, whoever started it):
``event: step`` per step as it is journaled, then ``event: end`` with the outcome and the run's
seconds from start to finish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from labswitch.usecases.service import Service

POLL = 0.5  # a new step shows within half a second


def run_events(service: Service, run_id: str) -> StreamingResponse:
    async def stream() -> AsyncIterator[str]:
        sent = 0
        while True:
            progress = await asyncio.to_thread(service.progress, run_id)
            if progress is None:  # no such run (any more)
                yield "event: end\ndata: {}\n\n"
                return
            for step in progress.steps[sent:]:
                yield f"event: step\ndata: {json.dumps(step)}\n\n"
            sent = len(progress.steps)
            if progress.finished:
                run = progress.run
                seconds = round((run.finished or run.started) - run.started, 1)
                yield f"event: end\ndata: {json.dumps({'outcome': run.outcome, 'seconds': seconds})}\n\n"
                return
            await asyncio.sleep(POLL)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
