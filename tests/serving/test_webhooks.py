"""Webhook push: a real receiver on 127.0.0.1 gets a red case's `warning.issued`, signed, within 5 s; while it
is down events stay pending and back off, and once it is back each is delivered once per event id. The
minute of outage is the injected clock moving, not a sleep."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from models.warning_policy import load_warning_policy
from serving.app import create_app
from serving.dependencies import services_of
from serving.settings import Settings
from serving.webhooks import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Deliverer,
    Subscriber,
    WebhookConfigError,
    parse_webhooks,
    verify,
)
from store import Outbox, Store, WarningBook, WarningDraft, upgrade_database
from tests.keys import INTAKE
from tests.serving.test_review_api import risk_bundle_dir  # noqa: F401  # the fixture
from tests.serving.test_warning_api import RED_CASE
from tests.serving.webhook_receiver import Receiver, free_port

SECRET = "webhook-secret-for-tests-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def test_a_red_case_reaches_a_running_receiver_signed_within_5_s(
    risk_bundle_dir: Path, db_url: str, receiver: Receiver,  # noqa: F811
) -> None:
    settings = Settings(model_uri=str(risk_bundle_dir), database_url=db_url, warning_sweep_seconds=3600,
                        webhooks=SecretStr(f"ops={receiver.url}"), webhook_secret=SecretStr(SECRET),
                        webhook_poll_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        posted = time.monotonic()
        answer = client.post("/v1/triage", json=RED_CASE, headers=INTAKE).json()
        assert answer["risk"]["level"] == "red"
        receiver.wait_for(1, timeout=5.0 - (time.monotonic() - posted))
        (got,) = receiver.received
        event = json.loads(got.body)
        assert verify(got.body, got.headers[SIGNATURE_HEADER], SECRET)
        assert not verify(got.body, got.headers[SIGNATURE_HEADER], "another secret")
        assert got.headers[EVENT_HEADER] == "warning.issued" == event["type"]
        assert got.headers[EVENT_ID_HEADER] == event["event_id"]
        warning = event["warning"]
        assert (warning["case_id"], warning["level"], warning["district"]) == ("RED-1", "red", "南湖区")
        assert warning["department"] == answer["department"]["label"] and warning["number"].startswith("预警〔")
        assert warning["acknowledge_due"] and warning["resolve_due"] and warning["reasons"]
        # Neither the case's text nor personal data leave the service: the rubric's cue phrases do (the reasons).
        sent = got.body.decode("utf-8")
        for text in (RED_CASE["title"], RED_CASE["body"], "住户还在里面", "13912345678", "P-red"):
            assert text not in sent
        assert {r["kind"] for r in warning["reasons"]} <= {"criterion", "cue", "model", "rule", "hot_issue"}
        outbox = services_of(client.app).warnings.outbox
        deadline = time.monotonic() + 5  # the receiver records the request before the worker hears its answer
        while outbox.get(event["event_id"]).state != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.get(event["event_id"]).state == "delivered"
        assert len(receiver.received) == 1


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade_database(db_url)
    with Store.from_url(db_url) as opened:
        yield opened


def issue_red(store: Store, clock: Clock, case_id: str) -> None:
    draft = WarningDraft("case", case_id, "red", "城乡建设", "南湖区", [{"kind": "criterion", "text": "倒塌"}],
                         case_id=case_id)
    WarningBook(store.engine, load_warning_policy(), clock).issue(draft)


def test_with_the_receiver_down_events_wait_then_arrive_once_each(store: Store, clock: Clock) -> None:
    outbox = Outbox(store.engine, clock)
    port = free_port()
    subscriber = Subscriber("ops", f"http://127.0.0.1:{port}/hooks/triage")
    deliverer = Deliverer(outbox, [subscriber], SECRET, timeout=2.0, max_attempts=20, backoff=5.0, backoff_max=60.0)
    try:
        issue_red(store, clock, "C1")
        issue_red(store, clock, "C2")
        # Down for a minute: every round that finds an event due fails it and backs off (5, 10, 20, 40 s...).
        failed = 0
        for _ in range(12):
            done = deliverer.deliver_due()
            assert done.delivered == 0 and done.dead == 0
            failed += done.retrying
            clock.now += timedelta(seconds=5)
        assert failed >= 6 and outbox.counts() == {"pending": 2, "delivered": 0, "dead": 0}
        (pending, _) = outbox.events(state="pending")
        assert all(e.last_error and "ops:" in e.last_error for e in pending)
        assert str(port) not in (pending[0].last_error or "")  # the URL is never written down

        receiver = Receiver(port=port).start()
        try:
            clock.now += timedelta(minutes=2)  # past any back-off so far
            assert deliverer.deliver_due().delivered == 2
            for _ in range(3):  # later rounds find nothing to send
                clock.now += timedelta(minutes=5)
                assert deliverer.deliver_due().claimed == 0
            ids = [r.headers[EVENT_ID_HEADER] for r in receiver.received]
            assert len(ids) == 2 == len(set(ids))
            assert all(verify(r.body, r.headers[SIGNATURE_HEADER], SECRET) for r in receiver.received)
            assert outbox.counts() == {"pending": 0, "delivered": 2, "dead": 0}
        finally:
            receiver.stop()
    finally:
        deliverer.close()


def test_a_refusing_receiver_makes_a_dead_letter_that_requeue_sends_again(store: Store, clock: Clock) -> None:
    outbox = Outbox(store.engine, clock)
    failing, ok = Receiver(status=500).start(), Receiver().start()
    deliverer = Deliverer(outbox, [Subscriber("ops", failing.url), Subscriber("archive", ok.url)], SECRET,
                          max_attempts=3, backoff=1.0, backoff_max=10.0)
    try:
        issue_red(store, clock, "C1")
        states = []
        for _ in range(3):
            done = deliverer.deliver_due()
            states.append((done.retrying, done.dead))
            clock.now += timedelta(seconds=10)
        assert states == [(1, 0), (1, 0), (0, 1)]
        (dead,) = outbox.events(state="dead")[0]
        assert dead.attempts == 3 and dead.last_error == "ops: HTTP 500"
        assert dead.delivered_to == ["archive"] and len(ok.received) == 1  # the one that took it is not re-sent
        failing.status = 204
        outbox.requeue(dead.event_id)
        assert deliverer.deliver_due().delivered == 1
        assert len(failing.received) == 4 and len(ok.received) == 1
        assert outbox.get(dead.event_id).delivered_to == ["archive", "ops"]
    finally:
        deliverer.close()
        failing.stop()
        ok.stop()


def test_a_slow_receiver_times_out_and_is_retried(store: Store, clock: Clock) -> None:
    outbox = Outbox(store.engine, clock)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    deliverer = Deliverer(outbox, [Subscriber("ops", "http://127.0.0.1:9/")], SECRET, timeout=0.5,
                          client=httpx.Client(transport=httpx.MockTransport(slow)))
    issue_red(store, clock, "C1")
    assert deliverer.deliver_due().retrying == 1
    (pending,) = outbox.events(state="pending")[0]
    assert pending.last_error == "ops: no answer within 0.5 s" and pending.attempts == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ops", "expected name=url"),
        ("ops=ftp://example.org/x", "http:// or https://"),
        ("ops=http://a.example/x,ops=http://b.example/y", "used by an earlier entry"),
        ("bad name=http://a.example/x", "expected name=url"),
    ],
)
def test_bad_webhook_entries_are_refused_by_position_and_name(spec: str, message: str) -> None:
    with pytest.raises(WebhookConfigError, match=message):
        parse_webhooks(spec)


def test_subscribers_parse_and_a_secret_is_required(store: Store) -> None:
    subscribers = parse_webhooks(" ops=https://hooks.example.org/t?token=abc , archive=http://10.0.0.5:8080/in ")
    assert [s.name for s in subscribers] == ["ops", "archive"]
    assert "token" not in repr(subscribers)
    with pytest.raises(WebhookConfigError, match="TRIAGE_WEBHOOK_SECRET is required"):
        Deliverer(Outbox(store.engine), subscribers, "")


def test_subscribers_without_a_secret_stop_the_service_at_start(demo_bundle_dir: Path, db_url: str) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=db_url,
                        webhooks=SecretStr("ops=https://hooks.example.org/in"))
    with pytest.raises(WebhookConfigError, match="TRIAGE_WEBHOOK_SECRET is required"), TestClient(create_app(settings)):
        pass
