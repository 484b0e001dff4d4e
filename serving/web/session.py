"""The reviewer pages' login session: a signed cookie holding who logged in, never the key.

Starlette's `SessionMiddleware` signs the cookie (itsdangerous, with an expiry) and marks it HttpOnly and
SameSite=Strict. The session holds the principal's name and role, a fingerprint of the key it was opened
with (an HMAC of the key's digest, so the cookie reveals nothing about the key), a random session id, the
login time and a CSRF token. Each page request checks the fingerprint against the key ring (removing or
replacing a key ends its sessions even when `TRIAGE_SESSION_SECRET` is fixed), the login time against
`SESSION_MAX_AGE_S` (an absolute limit: re-signing the cookie on every review does not extend it), and the
session id against the store's revocations: logging out ends the session on every replica, so a copied
cookie stops working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from serving.auth import KeyRing, Principal, Role, StoredKey

SESSION_COOKIE = "triage_session"
#: A working day: a reviewer logs in again the next morning.
SESSION_MAX_AGE_S = 8 * 3600
#: A session opened by a replica whose clock runs this far ahead is still accepted.
CLOCK_SKEW_S = 60
CSRF_FIELD = "csrf_token"
_SECRET_CONTEXT = b"grievance-triage web session v1"


#: Shortest `TRIAGE_SESSION_SECRET` accepted, in bytes (a 1-character secret was accepted).
MIN_SECRET_BYTES = 32
#: Marks of a value copied from an example rather than made for this deployment.
_PLACEHOLDER_MARKS = ("REPLACE", "CHANGE_ME", "CHANGEME", "EXAMPLE", "YOUR_", "SECRET_HERE")


class SessionSecretError(ValueError):
    """`TRIAGE_SESSION_SECRET` is missing where it is needed, or unusable; the message never quotes it."""


def session_secret(configured: str | None, ring: KeyRing) -> str:
    """The configured secret, or one derived from plain keys (same keys, same secret, every worker).

    Refused (SessionSecretError, so the service does not start): a secret shorter than
    `MIN_SECRET_BYTES` or copied from an example, and no secret while any key is given as a sha256 digest
    (a digest is not secret: a cookie secret derived from digests was forged from the configuration).
    With no keys there is nothing to log in with; a random secret keeps the middleware working.
    """
    if configured:  # an empty value counts as unset
        if len(configured.encode("utf-8")) < MIN_SECRET_BYTES:
            raise SessionSecretError(f"TRIAGE_SESSION_SECRET is shorter than {MIN_SECRET_BYTES} bytes")
        if any(mark in configured.upper() for mark in _PLACEHOLDER_MARKS):
            raise SessionSecretError("TRIAGE_SESSION_SECRET is still the example's placeholder")
        return configured
    if ring.has_digest_keys:
        raise SessionSecretError(
            "TRIAGE_SESSION_SECRET must be set when keys are given as sha256 digests (a digest is not secret); "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    digests = ring.digests()
    if not digests:
        return secrets.token_urlsafe(32)
    return hmac.new(_SECRET_CONTEXT, b"".join(digests), hashlib.sha256).hexdigest()


def _fingerprint(secret: str, stored: StoredKey) -> str:
    return hmac.new(secret.encode("utf-8"), b"key:" + stored.digest, hashlib.sha256).hexdigest()[:32]


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use; anonymous sessions get one for the login form)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 16:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, presented: str | None) -> bool:
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not presented:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def open_session(request: Request, principal: Principal, ring: KeyRing, secret: str) -> None:
    """Start a fresh session (new CSRF token: nothing from before login carries over)."""
    stored = ring.stored(principal.name)
    assert stored is not None
    request.session.clear()
    request.session.update(
        {
            "name": principal.name,
            "role": principal.role.value,
            "kid": _fingerprint(secret, stored),
            "sid": secrets.token_urlsafe(24),
            "iat": int(time.time()),
            "csrf": secrets.token_urlsafe(24),
        }
    )


def session_id(request: Request) -> str | None:
    sid = request.session.get("sid")
    return sid if isinstance(sid, str) and 16 <= len(sid) <= 64 else None


def session_principal(
    request: Request, ring: KeyRing, secret: str, revoked: Callable[[str], bool] | None = None,
    now: float | None = None,
) -> Principal | None:
    """Who the session belongs to, if its key is still configured with the same role, it was opened less
    than `SESSION_MAX_AGE_S` ago (from login, however often the cookie was re-signed since) and it was not
    logged out (`revoked(session id)`); else None."""
    data: dict[str, Any] = request.session
    name, role, kid, iat = data.get("name"), data.get("role"), data.get("kid"), data.get("iat")
    if not (isinstance(name, str) and isinstance(role, str) and isinstance(kid, str) and isinstance(iat, int)):
        return None
    age = (time.time() if now is None else now) - iat
    sid = session_id(request)
    if age < -CLOCK_SKEW_S or age >= SESSION_MAX_AGE_S or sid is None:
        return None
    if revoked is not None and revoked(sid):
        return None
    stored = ring.stored(name)
    if stored is None or stored.role.value != role:
        return None
    if not hmac.compare_digest(kid.encode("utf-8"), _fingerprint(secret, stored).encode("utf-8")):
        return None
    return Principal(stored.name, Role(stored.role), stored.department)


def set_flash(request: Request, message: str) -> None:
    """A one-time message for the next page (post/redirect/get); short, never case text."""
    request.session["flash"] = message


def pop_flash(request: Request) -> str | None:
    message = request.session.pop("flash", None)
    return message if isinstance(message, str) else None
