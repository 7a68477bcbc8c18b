"""What every request meets before any route: a body limit enforced while the body arrives, the API's bearer token
checked before its body is read, security headers on every answer, and the session cookie ``Secure`` whenever the
request came over TLS (directly, or through a proxy in ``[serve] trusted_proxies``, whose X-Forwarded-Proto uvicorn
applies). A pure ASGI middleware: nothing is buffered, nothing waits on the thread pool."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
COOKIE = b"labswitch_session="


class Guard:
    def __init__(self, app: ASGIApp, max_body: int, token: str | None) -> None:
        self.app = app
        self.max_body = max_body
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["path"].startswith("/api/") and not self._bearer_ok(headers.get(b"authorization", b"")):
            await _answer(send, 401, "a valid bearer token is required (Authorization: Bearer <serve.token>)")
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _answer(send, 413, f"the request body is over {self.max_body} bytes ([serve] max_body)")
            return
        seen = 0
        too_large = False
        replaced = False
        secure = scope.get("scheme") == "https"

        async def limited() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:  # read no further: the app sees the client gone, the client gets a 413
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if too_large:
                    replaced = True
                    await _answer(send, 413, f"the request body is over {self.max_body} bytes ([serve] max_body)")
                    return
                message["headers"] = _headers(list(message.get("headers") or []), secure)
            await send(message)

        await self.app(scope, limited, guarded)

    def _bearer_ok(self, given: bytes) -> bool:
        return self.token is not None and bearer_ok(given, self.token)


def bearer_ok(given: bytes, token: str) -> bool:
    """An Authorization header carrying ``token`` (compared in constant time)."""
    return given.startswith(b"Bearer ") and secrets.compare_digest(given[7:], token.encode())


def _headers(headers: list[tuple[bytes, bytes]], secure: bool) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    out = [
        (n, v + b"; Secure" if secure and n.lower() == b"set-cookie" and v.startswith(COOKIE) and b"secure" not in v.lower() else v)
        for n, v in headers
    ]
    return out + [(n, v) for n, v in HEADERS if n not in present]


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": _headers(start, False)})
    await send({"type": "http.response.body", "body": body})
