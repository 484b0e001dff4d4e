"""API keys and roles: who may call which route.

Keys come from `TRIAGE_API_KEYS` as comma-separated `name:role:key` entries (`name:department:key:城乡建设`
for a department's key: the department it acts for follows the key). Only a SHA-256 digest of
each key is kept in memory (an entry may give the digest itself as `sha256:<64 hex>`, so a deployment's
configuration need not hold the key at all). A presented key is hashed and compared with every stored
digest by `hmac.compare_digest`, without stopping at the first match, so the time taken does not tell
which key or how much of one was right.

Roles, as the ticket system and the review team use them:

* `intake`: the ticket system; may triage cases;
* `reviewer`: may read cases, alerts and the queue, and record reviews; its key's name is the reviewer;
* `admin`: everything above, plus reloading the model and reading reports;
* `department`: a responsible department (城乡建设, 环境保护, ...): reads, acknowledges and resolves its own
  department's warnings, and nothing else (another department's warning answers 404).

Routes declare what they need with `Depends(require_role(Role.reviewer))` (`serving.dependencies`);
`admin` passes every check. The key travels in the `X-API-Key` header (the reviewer web page exchanges it
for a signed session cookie, see `serving.web`). 401 when no valid key is presented, 403 when the key's
role is not allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from zxcvbn import zxcvbn

API_KEY_HEADER = "X-API-Key"
_DIGEST_PREFIX = "sha256:"
_NAME = re.compile(r"^[\w.@-]{1,64}$")
_DEPARTMENT = re.compile(r"^[^,:\s][^,:]{0,127}$")
#: Shortest key accepted in configuration: a guessable key is refused at start-up, not in production.
MIN_KEY_CHARS = 16
#: Fewest guesses (log10) zxcvbn must estimate for a key: 10^12 is about 2^40. Random keys of 16 URL-safe
#: characters score about 16; "aaaaaaaaaaaaaaaa" 2.3 and "password12345678" 4.2 are refused.
MIN_KEY_GUESSES_LOG10 = 12.0


class Role(StrEnum):
    intake = "intake"
    reviewer = "reviewer"
    admin = "admin"
    department = "department"


class ApiKeyError(ValueError):
    """A `TRIAGE_API_KEYS` entry that cannot be used; the message names the entry (never the key)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (a reviewer's identity) and its role."""

    name: str
    role: Role
    #: The department a `department` key acts for (None for every other role).
    department: str | None = None

    def may(self, *roles: Role) -> bool:
        return self.role is Role.admin or self.role in roles


@dataclass(frozen=True)
class StoredKey:
    name: str
    role: Role
    digest: bytes
    department: str | None = None
    #: Given as `sha256:<hex>`: the configuration holds no secret from which to derive a session secret.
    from_digest: bool = False


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_key() -> str:
    """A fresh random key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def parse_api_keys(spec: str | None) -> list[StoredKey]:
    """Parse `name:role:key,...`; ApiKeyError names the entry by position and name when one is wrong."""
    keys: list[StoredKey] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for position, raw in enumerate((spec or "").split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split(":", 2)
        where = f"TRIAGE_API_KEYS entry {position}"
        if len(parts) != 3:
            raise ApiKeyError(f"{where}: expected name:role:key, got {len(parts)} field(s)")
        name, role_text, secret = (p.strip() for p in parts)
        where = f"{where} ({name!r})"
        if not _NAME.match(name):
            raise ApiKeyError(f"{where}: the name must be 1-64 letters, digits, '.', '_', '@' or '-'")
        try:
            role = Role(role_text)
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise ApiKeyError(f"{where}: unknown role {role_text!r}; use one of {allowed}") from None
        department = None
        if role is Role.department:
            secret, _, department = secret.rpartition(":")
            department = department.strip()
            if not secret or not _DEPARTMENT.match(department):
                raise ApiKeyError(
                    f"{where}: a department key is name:department:key:DEPARTMENT, the department 1-128 characters "
                    "without ',' or ':'"
                )
        if secret.startswith(_DIGEST_PREFIX):
            hex_digest = secret.removeprefix(_DIGEST_PREFIX)
            if not re.fullmatch(r"[0-9a-fA-F]{64}", hex_digest):
                raise ApiKeyError(f"{where}: a {_DIGEST_PREFIX} key must be followed by 64 hex digits")
            digest = bytes.fromhex(hex_digest)
        else:
            if len(secret) < MIN_KEY_CHARS:
                raise ApiKeyError(f"{where}: the key is shorter than {MIN_KEY_CHARS} characters")
            if guessable(secret):
                raise ApiKeyError(
                    f"{where}: the key is easy to guess (repeats, sequences or common words); "
                    "use a random one, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            digest = key_digest(secret)
        if name in names:
            raise ApiKeyError(f"{where}: the name is used by an earlier entry")
        if digest in digests:
            raise ApiKeyError(f"{where}: the same key is given to an earlier entry")
        names.add(name)
        digests.add(digest)
        keys.append(StoredKey(name=name, role=role, digest=digest, department=department,
                              from_digest=secret.startswith(_DIGEST_PREFIX)))
    return keys


def guessable(key: str) -> bool:
    """Whether zxcvbn estimates fewer than 10^`MIN_KEY_GUESSES_LOG10` guesses for the key (its first 72
    characters: zxcvbn's matching grows faster than linearly, and a longer key is not weaker)."""
    return float(zxcvbn(key[:72])["guesses_log10"]) < MIN_KEY_GUESSES_LOG10


class KeyRing:
    """The configured keys; `authenticate` answers who holds a presented key."""

    def __init__(self, keys: Iterable[StoredKey]) -> None:
        self._keys = tuple(keys)

    @classmethod
    def from_spec(cls, spec: str | None) -> KeyRing:
        return cls(parse_api_keys(spec))

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, key: str | None) -> Principal | None:
        if not key:
            return None
        presented = key_digest(key)
        found: StoredKey | None = None
        for stored in self._keys:  # no early exit: every digest is compared
            if hmac.compare_digest(presented, stored.digest):
                found = stored
        return None if found is None else Principal(found.name, found.role, found.department)

    def stored(self, name: str) -> StoredKey | None:
        """The configured key named `name` (its digest, never the key): lets a web session check that
        the key it was opened with is still configured with the same role."""
        return next((k for k in self._keys if k.name == name), None)

    @property
    def has_digest_keys(self) -> bool:
        return any(k.from_digest for k in self._keys)

    def digests(self) -> tuple[bytes, ...]:
        """Every configured digest, in configuration order (the web session secret is derived from them)."""
        return tuple(k.digest for k in self._keys)
