"""The reviewer web pages (`/review`, `/dashboard`): server-rendered, no front-end build.

`install(app, settings)` adds everything the pages need to an app: the signed session cookie, the
security headers, the login redirect, the static files and the routes. It leaves the API's own
behaviour alone: API requests keep their 401/403 JSON answers, and a session cookie never
authenticates an API route (so the API needs no CSRF protection).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.dependencies import context_of
from serving.settings import Settings
from serving.web.pages import LOGIN_PATH, PAGE_PREFIXES, LoginRequired, public_router, router
from serving.web.session import SESSION_COOKIE, SESSION_MAX_AGE_S, session_secret

STATIC_PATH = "/review/static"
#: Self only; no inline script or style (the pages load one script and one stylesheet); no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class PageHeadersMiddleware:
    """Security headers on every page response (static files too, but they may be cached)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PAGE_PREFIXES):
            await self.app(scope, receive, send)
            return
        static = path.startswith(STATIC_PATH)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in PAGE_HEADERS.items():
                    if not (static and name == "Cache-Control"):
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"{LOGIN_PATH}?{urlencode({'next': exc.next_url})}", status.HTTP_303_SEE_OTHER)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the pages to `app` (made by `serving.app.create_app`: its context holds the key ring), and put the
    session secret in its context."""
    context = context_of(app)
    configured = settings.session_secret.get_secret_value() if settings.session_secret else None
    secret = session_secret(configured, context.keyring)
    context.session_secret = secret
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="strict",
        https_only=False,  # the demo runs on http://127.0.0.1; put TLS in front in production
    )
    app.add_middleware(PageHeadersMiddleware)
    app.add_exception_handler(LoginRequired, login_redirect)
    app.mount(STATIC_PATH, StaticFiles(directory=Path(__file__).parent / "static"), name="review-static")
    app.include_router(public_router)
    app.include_router(router)
