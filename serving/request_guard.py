"""What a request may do before its body is read: how many bytes to accept, and whether its client may try
a key at all.

FastAPI reads and parses a body before any dependency checks the key, so the key is looked at here, first:

* a request with a valid `X-API-Key` may send up to the configured limit (a full batch);
* any other request (no key, a wrong key, the reviewer pages' forms, the login form) gets
  `UNAUTHENTICATED_BODY_BYTES`: one 200 MB body with no key had added 600 MB of memory;
* a client (its address as uvicorn sees it: behind the local nginx, the real client, through
  `--proxy-headers`) that presented `FAILED_AUTH_LIMIT` wrong keys (API header or login form) within a
  minute is answered 429 with `Retry-After` for every key it tries until the window moves on. The count
  is per worker process (`limits`' in-memory moving window), so N workers allow N times as many tries.

Over a limit: 413, before a byte is pulled when Content-Length says so, or just past the limit when a
body is streamed without one (or with a length that lies).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from fastapi import HTTPException, status
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.auth import KeyRing

#: Largest body accepted without a valid API key: the reviewer pages' forms are a few kilobytes.
UNAUTHENTICATED_BODY_BYTES = 64 * 1024
#: Wrong keys one client may present before it is refused for the rest of the window.
FAILED_AUTH_LIMIT = "20/minute"
LOGIN_PATH = "/review/login"
#: Where the guard leaves (key, principal) in the request's state for `serving.auth.current_principal`.
KEY_PRINCIPAL_STATE = "key_principal"


class AuthFailures:
    """Wrong keys per client in a moving window (`limits`, in this process's memory)."""

    def __init__(self, limit: str = FAILED_AUTH_LIMIT) -> None:
        item = parse(limit)
        self.item: RateLimitItem = item
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try a key again, or None when it may now."""
        if self._limiter.test(self.item, client):
            return None
        reset = self._limiter.get_window_stats(self.item, client).reset_time
        return max(1, math.ceil(reset - time.time()))

    def record(self, client: str) -> None:
        self._limiter.hit(self.item, client)


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestGuardMiddleware:
    """Refuses a client over its failed-key limit (429) and bodies over the limit its key allows (413)."""

    def __init__(
        self, app: ASGIApp, keyring: Callable[[], KeyRing], failures: AuthFailures, max_bytes: int,
        unauthenticated_bytes: int = UNAUTHENTICATED_BODY_BYTES,
    ) -> None:
        self.app = app
        self.keyring = keyring
        self.failures = failures
        self.max_bytes = max_bytes
        self.unauthenticated_bytes = min(unauthenticated_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
        tries_key = bool(key) or (scope.get("path") == LOGIN_PATH and scope.get("method") == "POST")
        client = client_of(scope)
        if tries_key:
            wait = self.failures.retry_after(client)
            if wait is not None:
                response = JSONResponse(
                    {"detail": f"too many wrong keys from this client; try again in {wait} s"},
                    status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": str(wait)},
                )
                await response(scope, receive, send)
                return
        principal = self.keyring().authenticate(key) if key else None
        if principal is not None:  # the routes' key check reuses it: one comparison per key and request
            scope.setdefault("state", {})[KEY_PRINCIPAL_STATE] = (key, principal)
        authenticated = principal is not None
        if key and not authenticated:
            self.failures.record(client)
        limit = self.max_bytes if authenticated else self.unauthenticated_bytes
        detail = f"request body over {limit} bytes" + ("" if authenticated else " without a valid API key")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await JSONResponse({"detail": detail}, status.HTTP_413_CONTENT_TOO_LARGE)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPExceptions met while reading the body; its handler answers.
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=detail)
            return message

        await self.app(scope, counting_receive, send)
