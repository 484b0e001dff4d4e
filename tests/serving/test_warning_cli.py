"""`triage warnings sweep` and `triage webhooks deliver` on a store, as cron would run them."""

from __future__ import annotations

import json
from datetime import timedelta

from typer.testing import CliRunner

from command.cli import app
from models.warning_policy import load_warning_policy
from serving.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify
from store import Store, WarningBook, WarningDraft, upgrade_database
from store.tables import utcnow
from tests.serving.webhook_receiver import Receiver

SECRET = "cli-webhook-secret-0123456789abcdef"


def test_sweep_then_deliver_from_the_command_line(db_url: str) -> None:
    upgrade_database(db_url)
    three_hours_ago = utcnow() - timedelta(hours=3)
    with Store.from_url(db_url) as store:
        book = WarningBook(store.engine, load_warning_policy(), lambda: three_hours_ago)
        for case_id in ("C1", "C2"):
            book.issue(WarningDraft("case", case_id, "red", "城乡建设", "南湖区", [], case_id=case_id))
    runner = CliRunner()
    env = {"TRIAGE_DATABASE_URL": db_url}
    first = runner.invoke(app, ["warnings", "sweep"], env=env)
    assert first.exit_code == 0, first.output
    assert "2 supervision notice(s) raised; 2 open warning(s) overdue" in first.output
    again = runner.invoke(app, ["warnings", "sweep"], env=env)
    assert "0 supervision notice(s) raised" in again.output

    refused = runner.invoke(app, ["webhooks", "deliver"], env=env)
    assert refused.exit_code == 2 and "no webhook subscribers" in refused.output
    receiver = Receiver().start()
    try:
        env |= {"TRIAGE_WEBHOOKS": f"ops={receiver.url}", "TRIAGE_WEBHOOK_SECRET": SECRET}
        delivered = runner.invoke(app, ["webhooks", "deliver"], env=env)
        assert delivered.exit_code == 0, delivered.output
        assert "delivered 4, failed and retrying later 0, dead 0" in delivered.output
        types = sorted(json.loads(r.body)["type"] for r in receiver.received)
        assert types == ["warning.escalated"] * 2 + ["warning.issued"] * 2
        assert all(verify(r.body, r.headers[SIGNATURE_HEADER], SECRET) for r in receiver.received)
        assert "delivered 0," in runner.invoke(app, ["webhooks", "deliver"], env=env).output
        assert len({r.headers[EVENT_ID_HEADER] for r in receiver.received}) == 4 == len(receiver.received)
    finally:
        receiver.stop()
