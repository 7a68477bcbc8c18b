"""Bounded thread pools, one per part of the service: the REST API's routes run in one, the page's in another,
Prometheus scrapes in a third (web/app.py). A part whose calls hang (a vCenter that stopped answering, a flood of
page requests) fills only its own pool; the others keep answering. Starlette would run every sync route in one
shared pool of 40 threads."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from anyio import CapacityLimiter, to_thread

P = ParamSpec("P")
T = TypeVar("T")

API_THREADS = 8
PAGE_THREADS = 8


class Pool:
    """``@pool.route`` on a sync route: FastAPI sees an async route (same signature, same annotations) that runs the
    function in this pool's threads, at most ``size`` at a time; the rest wait their turn here."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.limiter = CapacityLimiter(size)

    def route(self, fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def pooled(*args: P.args, **kwargs: P.kwargs) -> T:
            return await to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self.limiter)

        return pooled

    async def call(self, fn: Callable[[], T]) -> T:
        return await to_thread.run_sync(fn, limiter=self.limiter)
