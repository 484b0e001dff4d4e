"""Webhook push: the outbox's events posted, signed, to every subscriber, with retries and a dead letter.

Subscribers come from `TRIAGE_WEBHOOKS` (`name=url,name2=url2`); every body is signed with
`TRIAGE_WEBHOOK_SECRET`. A request is `POST url` with the event as JSON (the exact bytes that were signed) and

    X-Triage-Event: warning.issued
    X-Triage-Event-Id: 1b0c...            (also `event_id` in the body: receivers deduplicate by it)
    X-Triage-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>

`Deliverer.deliver_due()` is one round: claim the due events (`store.outbox.Outbox.claim`), post each to
the subscribers that have not taken it yet, then record delivered, or a failed attempt with exponential
back-off, or dead after `max_attempts`. A 2xx answer is taken; anything else (another status, a timeout, a
refused connection) is a failure. The service runs rounds in its lifespan (`serving.background`); `triage
webhooks deliver` runs them from the command line. Logs name the subscriber and event id, never the URL
(it may carry a token) nor the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from store import Outbox, OutboxRecord

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Triage-Signature"
EVENT_HEADER = "X-Triage-Event"
EVENT_ID_HEADER = "X-Triage-Event-Id"
_NAME = re.compile(r"^[\w.-]{1,64}$")


class WebhookConfigError(ValueError):
    """A `TRIAGE_WEBHOOKS` entry that cannot be used; the message names the entry (never its URL)."""


@dataclass(frozen=True)
class Subscriber:
    name: str
    url: str = field(repr=False)


def parse_webhooks(spec: str | None) -> list[Subscriber]:
    """`name=url,name2=url2` -> subscribers; an entry that is not one names its position and name."""
    subscribers: list[Subscriber] = []
    for position, raw in enumerate((spec or "").split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, url = (part.strip() for part in entry.partition("="))
        where = f"TRIAGE_WEBHOOKS entry {position}"
        if not sep or not _NAME.match(name):
            raise WebhookConfigError(f"{where}: expected name=url with a name of 1-64 letters, digits, '.', '_', '-'")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise WebhookConfigError(f"{where} ({name!r}): the url must be http:// or https:// with a host")
        if any(s.name == name for s in subscribers):
            raise WebhookConfigError(f"{where} ({name!r}): the name is used by an earlier entry")
        subscribers.append(Subscriber(name, url))
    return subscribers


def body_of(record: OutboxRecord) -> bytes:
    """The bytes posted and signed: the event as compact UTF-8 JSON, keys sorted."""
    return json.dumps(record.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """What a receiver does (and the tests do): compare the header with the body's signature in constant time."""
    return header is not None and hmac.compare_digest(header, signature(body, secret))


@dataclass
class DeliveryRound:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0

    @property
    def claimed(self) -> int:
        return self.delivered + self.retrying + self.dead


class Deliverer:
    """Posts due outbox events to the subscribers. Safe to run in several processes at once (claims)."""

    def __init__(
        self, outbox: Outbox, subscribers: Sequence[Subscriber], secret: str, *, timeout: float = 5.0,
        max_attempts: int = 8, backoff: float = 5.0, backoff_max: float = 3600.0, batch: int = 20,
        client: httpx.Client | None = None,
    ) -> None:
        if not secret:
            raise WebhookConfigError("TRIAGE_WEBHOOK_SECRET is required with TRIAGE_WEBHOOKS: receivers check "
                                     "each body's signature with it")
        self.outbox = outbox
        self.subscribers = list(subscribers)
        self._secret = secret
        self.max_attempts = max_attempts
        self.backoff, self.backoff_max = backoff, backoff_max
        self.batch = batch
        self.timeout = timeout
        # The lease outlasts one event's posts to every subscriber, so no other worker takes it meanwhile.
        self.lease = timeout * max(1, len(self.subscribers)) + 30.0
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def deliver_due(self) -> DeliveryRound:
        """One round over the due events (at most `batch`)."""
        outcome = DeliveryRound()
        if not self.subscribers:
            return outcome  # events wait, pending, until a subscriber is configured
        for record in self.outbox.claim(limit=self.batch, lease=self.lease):
            self._deliver(record, outcome)
        return outcome

    def _deliver(self, record: OutboxRecord, outcome: DeliveryRound) -> None:
        body = body_of(record)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            EVENT_HEADER: record.event_type,
            EVENT_ID_HEADER: record.event_id,
            SIGNATURE_HEADER: signature(body, self._secret),
            "User-Agent": "grievance-triage-webhooks",
        }
        taken = list(record.delivered_to)
        errors = []
        for subscriber in self.subscribers:
            if subscriber.name in taken:
                continue
            error = self._post(subscriber, body, headers)
            if error is None:
                taken.append(subscriber.name)
            else:
                errors.append(f"{subscriber.name}: {error}")
        if not errors:
            self.outbox.delivered(record, taken)
            outcome.delivered += 1
            logger.info("webhook event %s (%s) delivered to %s", record.event_id, record.event_type, ", ".join(taken))
            return
        state = self.outbox.failed(record, "; ".join(errors), taken, max_attempts=self.max_attempts,
                                   base=self.backoff, cap=self.backoff_max)
        if state == "dead":
            outcome.dead += 1
            logger.error("webhook event %s (%s) is dead after %d attempts: %s", record.event_id, record.event_type,
                         record.attempts + 1, "; ".join(errors))
        else:
            outcome.retrying += 1
            logger.warning("webhook event %s (%s) attempt %d failed: %s", record.event_id, record.event_type,
                           record.attempts + 1, "; ".join(errors))

    def _post(self, subscriber: Subscriber, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the subscriber took the event, else why not (no URL, no body in the message)."""
        try:
            response = self._client.post(subscriber.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


def deliverer_from_settings(outbox: Outbox, settings: Any, client: httpx.Client | None = None) -> Deliverer | None:
    """The deliverer the settings configure, or None without subscribers. WebhookConfigError names what is wrong."""
    subscribers = parse_webhooks(settings.webhooks.get_secret_value() if settings.webhooks else None)
    if not subscribers:
        return None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    return Deliverer(
        outbox, subscribers, secret, timeout=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts, backoff=settings.webhook_backoff_seconds,
        backoff_max=settings.webhook_backoff_max_seconds, client=client,
    )
