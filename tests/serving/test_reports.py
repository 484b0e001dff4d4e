"""Situation reports (issue 16, items 4 and 5): the figures on SQLite and PostgreSQL, the JSON endpoint, the
`triage report` command (HTML, PDF and its errors) and, on the demo store, a PDF that prints the API's counts."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from typer.testing import CliRunner

from command.cli import app as cli
from features.districts import load_gazetteer
from models.warning_policy import load_warning_policy
from serving.app import create_app
from serving.reports.build import build_report
from serving.reports.period import PeriodError, parse_day, report_window
from serving.reports.render import change, render_document
from serving.settings import Settings
from serving.warning_desk import WarningDesk
from store import CaseInput, PredictionInput, Store, WarningDraft, upgrade_database
from tests.keys import ADMIN, REVIEWER
from tests.serving.test_review_api import risk_bundle_dir  # noqa: F401  # the fixture

ZONE = load_warning_policy().zone
#: The report's last day, and "now" in the store tests: 2026-12-06 12:00 in Beijing.
DAY = date(2026, 12, 6)
NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


def local(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZONE)


def add_case(store: Store, case_id: str, filed: datetime, level: str | None, department: str, text: str,
             criterion: str | None = None) -> int:
    reasons = {"risk": [{"kind": "criterion", "criterion": criterion, "text": "x"}] if criterion else []}
    record = store.record_case_and_prediction(
        CaseInput(case_id, text, "详情见标题。", created_at=filed, received_at=filed + timedelta(minutes=5)),
        PredictionInput("router", "1", department, 0.9, False, [{"label": department, "probability": 0.9}],
                        risk_level=level, reasons=reasons),
        made_at=filed + timedelta(minutes=5),
    )
    return record.id


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade_database(db_url)
    with Store.from_url(db_url) as opened:
        yield opened


@pytest.fixture
def desk(store: Store) -> WarningDesk:
    return WarningDesk(store, load_warning_policy(), load_gazetteer(), clock=lambda: NOW)


def fill(store: Store, desk: WarningDesk) -> None:
    """This week (11-30 .. 12-06): 3 red, 2 yellow, 1 green; the week before: 1 red, 1 green; older: 1 red."""
    this_week = [
        ("A1", local(DAY), "red", "城乡建设", "南湖区燃气泄漏", "red-1"),
        ("A2", local(DAY - timedelta(days=1)), "red", "城乡建设", "南湖区某小区楼体开裂", "red-1"),
        ("A3", local(DAY - timedelta(days=6), 0), "red", "环境保护", "东港区化工厂排污", "red-2"),
        ("A4", local(DAY - timedelta(days=2)), "yellow", "环境保护", "临江县噪音扰民", "yellow-1"),
        ("A5", local(DAY - timedelta(days=3)), "yellow", "城乡建设", "路灯不亮", "yellow-2"),
        ("A6", local(DAY - timedelta(days=4)), "green", "交通运输", "公交线路咨询", None),
    ]
    last_week = [
        ("B1", local(DAY - timedelta(days=7), 23), "red", "城乡建设", "南湖区燃气管道破损", "red-1"),
        ("B2", local(DAY - timedelta(days=13)), "green", "交通运输", "东港区道路积水", None),
    ]
    for case_id, filed, level, department, text, criterion in [*this_week, *last_week]:
        add_case(store, case_id, filed, level, department, text, criterion)
    add_case(store, "OLD", local(DAY - timedelta(days=20)), "red", "城乡建设", "南湖区", "red-1")
    # A reviewer decided A5 is green and belongs to 交通运输: the report counts the decision.
    a5 = store.latest_prediction("A5")
    assert a5 is not None
    store.add_review("A5", a5.id, "reviewer-li", decided_department="交通运输", decided_level="green", note="误判")
    # 30 days back: the month before the month ending on DAY.
    add_case(store, "LATE", local(DAY - timedelta(days=30)), "green", "交通运输", "咨询")
    store.add_alert("al-1", "b-1", "red", local(DAY - timedelta(days=1)), {"place": "南湖区", "keywords": ["燃气"],
                                                                          "cases": 4})
    store.add_alert("al-0", "b-0", "yellow", local(DAY - timedelta(days=9)), {"place": "东港区", "cases": 3})
    book = desk.book
    # Two warnings issued this week (one of them three days ago, so past its deadlines), one the week before.
    book.clock = lambda: NOW - timedelta(days=3)
    book.issue(WarningDraft("case", "A3", "red", "环境保护", "东港区", [], case_id="A3"))
    book.clock = lambda: NOW - timedelta(hours=1)
    book.issue(WarningDraft("case", "A1", "red", "城乡建设", "南湖区", [], case_id="A1"))
    book.clock = lambda: NOW - timedelta(days=8)
    earlier, _ = book.issue(WarningDraft("case", "B1", "red", "城乡建设", "南湖区", [], case_id="B1"))
    book.clock = lambda: NOW
    book.acknowledge(earlier.id, "building", at=NOW - timedelta(days=8) + timedelta(hours=1))


def test_a_week_counts_cases_by_level_department_and_district_against_the_week_before(
    store: Store, desk: WarningDesk
) -> None:
    fill(store, desk)
    report = build_report(desk, "week", DAY, now=NOW)
    f = report.figures
    assert report.window.days[0] == date(2026, 11, 30) and report.window.previous_days[0] == date(2026, 11, 23)
    assert f.cases.total == 6 and f.previous.total == 2
    assert f.cases.by_level == {"red": 3, "yellow": 1, "green": 2, "none": 0}
    assert f.previous.by_level == {"red": 1, "yellow": 0, "green": 1, "none": 0}
    assert f.cases.by_department == {"交通运输": 2, "城乡建设": 2, "环境保护": 2}
    assert f.cases.by_district == {"unknown": 2, "南湖区": 2, "东港区": 1, "临江县": 1}
    assert f.cases.district_level[("南湖区", "red")] == 2 and f.previous.by_district == {"东港区": 1, "南湖区": 1}
    assert f.cases.risk_by_department == {"城乡建设": 2, "环境保护": 2}
    assert f.cases.risk_by_district == {"南湖区": 2, "东港区": 1, "临江县": 1}
    assert f.cases.risk_by_criterion == {"red-1": 2, "red-2": 1, "yellow-1": 1}  # A5's yellow-2 was reviewed away
    assert f.cases.by_day[DAY]["red"] == 1 and f.cases.by_day[date(2026, 11, 30)]["red"] == 1  # local midnight
    assert sum(sum(levels.values()) for levels in f.cases.by_day.values()) == 6
    assert [a.alert_id for a in f.alerts] == ["al-1"]
    assert f.warnings.total == 2 and f.warnings.by_level == {"red": 2}
    assert f.warnings.open == 2 and f.warnings.overdue == 1  # A3's, issued three days ago
    assert f.backlog.open == 3 and f.backlog.overdue == 2  # B1: acknowledged, but not resolved in 24 h
    assert f.backlog.overdue_by_department == {"城乡建设": 1, "环境保护": 1}
    assert {w.case_id for w in f.overdue_warnings} == {"A3", "B1"}


def test_a_day_and_a_month_have_windows_of_their_own_length(store: Store, desk: WarningDesk) -> None:
    fill(store, desk)
    day = build_report(desk, "day", DAY, now=NOW).figures
    assert day.cases.total == 1 and day.previous.total == 1  # A1 today, A2 yesterday
    month = build_report(desk, "month", DAY, now=NOW).figures
    assert month.cases.total == 9 and month.previous.total == 1  # OLD is 20 days back; LATE 30 days back
    assert len(month.cases.by_day) == 30 and len(month.previous.by_day) == 30


def test_the_html_names_the_period_and_prints_the_counts_and_changes(store: Store, desk: WarningDesk) -> None:
    fill(store, desk)
    html = render_document(build_report(desk, "week", DAY, now=NOW))
    assert "<title>形势周报（2026年11月30日—12月6日）</title>" in html
    assert "本期共受理案件 6 件，前一周 2 件，变化 +4（+200.0%）" in html
    assert "本期发出预警单 2 件，其中未办结 2 件、超期 1 件" in html
    assert "全部预警单中当前未办结 3 件、超期 2 件" in html
    assert html.count('src="data:image/svg+xml;base64,') == 4  # self-contained: no file or URL to fetch
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "@page { size: A4" in html


def test_change_words() -> None:
    assert change(3, 3) == "持平" and change(2, 0) == "+2（新增）" and change(1, 4) == "-3（-75.0%）"


def test_periods_and_dates_are_checked() -> None:
    with pytest.raises(PeriodError, match="use one of day, week, month"):
        report_window("year", DAY, ZONE)
    with pytest.raises(PeriodError, match="not a date; use YYYY-MM-DD"):
        parse_day("2026-13-01", ZONE)
    with pytest.raises(PeriodError, match="from 2000-01-01 to 2100-12-31"):
        parse_day("0001-01-01", ZONE)
    # The default day is today in Beijing: 2026-12-06 20:00 UTC is already the 7th there.
    assert parse_day(None, ZONE, datetime(2026, 12, 6, 20, 0, tzinfo=UTC)) == date(2026, 12, 7)


# -- the endpoint and the command ------------------------------------------------------------------
@pytest.fixture
def filled_url(db_url: str, store: Store, desk: WarningDesk) -> str:
    fill(store, desk)
    return db_url


def test_the_summary_endpoint_is_for_admins_and_checks_its_parameters(filled_url: str, demo_bundle_dir: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=filled_url)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/reports/summary", headers=REVIEWER).status_code == 403
        assert client.get("/v1/reports/summary").status_code == 401
        answer = client.get("/v1/reports/summary", params={"period": "week", "date": "2026-12-06"}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["title"] == "形势周报" and body["start"] == "2026-11-30T00:00:00+08:00"
        assert body["cases"]["total"] == 6 and body["previous_cases"]["total"] == 2
        assert body["cases"]["by_level"]["red"] == 3 and body["cases"]["risk_by_district"]["南湖区"] == 2
        assert {"key": "南湖区", "level": "red", "count": 2} in body["cases"]["district_level"]
        assert body["alerts"][0]["alert_id"] == "al-1" and body["alerts"][0]["place"] == "南湖区"
        for params in ({"period": "year"}, {"date": "2026-02-30"}, {"date": "1999-12-31"}):
            refused = client.get("/v1/reports/summary", params=params, headers=ADMIN)
            assert refused.status_code == 422, (params, refused.text)


def run_report(url: str, *args: str, **env: str) -> Any:
    return CliRunner().invoke(cli, ["report", *args], env={"TRIAGE_DATABASE_URL": url, **env})


def test_the_command_writes_html_and_refuses_bad_options_clearly(filled_url: str, tmp_path: Path) -> None:
    out = tmp_path / "week.html"
    done = run_report(filled_url, "--period", "week", "--date", "2026-12-06", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert "形势周报（2026年11月30日—12月6日）written to" in done.output and "6 case(s)" in done.output
    assert "本期共受理案件 6 件" in out.read_text(encoding="utf-8")
    # As the weekly job runs it: the day before today (policy's zone), named in the file.
    yesterday = (datetime.now(ZONE) - timedelta(days=1)).date().isoformat()
    named = run_report(filled_url, "--date", "yesterday", "--out", str(tmp_path / "weekly-{date}.html"))
    assert named.exit_code == 0 and (tmp_path / f"weekly-{yesterday}.html").exists(), named.output
    for args, message in [
        (["--out", str(tmp_path / "r.docx")], "the file name must end in .html or .pdf"),
        (["--out", str(tmp_path / "missing" / "r.pdf")], "does not exist"),
        (["--period", "year", "--out", str(out)], "--period 'year': use one of day, week, month"),
        (["--date", "2026-12-32", "--out", str(out)], "--date '2026-12-32': not a date; use YYYY-MM-DD"),
    ]:
        refused = run_report(filled_url, *args)
        assert refused.exit_code == 2 and message in refused.output, refused.output
        assert "Traceback" not in refused.output


def test_without_chromium_or_when_it_hangs_the_pdf_fails_clearly(filled_url: str, tmp_path: Path) -> None:
    out = tmp_path / "r.pdf"
    missing = run_report(filled_url, "--out", str(out), TRIAGE_CHROMIUM=str(tmp_path / "no-chromium"))
    assert missing.exit_code == 2 and "Chromium not found at" in missing.output and "TRIAGE_CHROMIUM" in missing.output
    hanging = tmp_path / "hanging-chromium"
    hanging.write_text("#!/bin/sh\nsleep 30\n")
    hanging.chmod(hanging.stat().st_mode | stat.S_IXUSR)
    slow = run_report(filled_url, "--out", str(out), "--timeout", "1", TRIAGE_CHROMIUM=str(hanging))
    assert slow.exit_code == 2 and "did not finish printing within 1 s" in slow.output, slow.output
    assert not out.exists() and "Traceback" not in slow.output


# -- the demo store: the PDF prints what the API reports ---------------------------------------------
def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def pdf_text(path: Path) -> tuple[str, list[Any]]:
    reader = PdfReader(path)
    return squeeze("".join(page.extract_text() for page in reader.pages)), list(reader.pages)


def expected_phrases(summary: dict[str, Any]) -> list[str]:
    cases, previous, warnings, backlog = (summary["cases"], summary["previous_cases"], summary["warnings"],
                                          summary["backlog"])
    levels = cases["by_level"]
    phrases = [
        f"本期共受理案件{cases['total']}件",
        f"前一周{previous['total']}件",
        f"其中红色{levels['red']}件、黄色{levels['yellow']}件、绿色{levels['green']}件",
        f"本期发出预警单{warnings['issued']}件，其中未办结{warnings['open']}件、超期{warnings['overdue']}件",
        f"全部预警单中当前未办结{backlog['open']}件、超期{backlog['overdue']}件",
        f"本期热点问题{len(summary['alerts'])}个",
    ]
    # The overdue ranking: rank, department, count, in the API's order.
    phrases += [f"{rank}{dept}{n}" for rank, (dept, n) in enumerate(backlog["overdue_by_department"].items(), 1)]
    return phrases


@pytest.fixture(scope="module")
def demo_store(
    risk_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
) -> Settings:
    from command.demo_seed import demo_requests, seed

    folder = tmp_path_factory.mktemp("demo-report")
    settings = Settings(model_uri=str(risk_bundle_dir), database_url=f"sqlite:///{folder / 'demo.db'}")
    assert seed(settings, demo_requests(limit=200)) == 200
    return settings


@pytest.fixture(scope="module")
def last_case_day() -> str:
    from command.demo_seed import demo_requests

    newest = max(r.created_at for r in demo_requests(limit=200) if r.created_at is not None)
    return newest.astimezone(ZONE).date().isoformat()


@pytest.mark.parametrize("which", ["the week of the newest cases", "this week (the seeded warnings)"])
def test_the_weekly_pdf_of_the_demo_store_prints_the_counts_the_api_reports(
    demo_store: Settings, last_case_day: str, which: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.pdf"
    args = ["--period", "week", "--out", str(out)]
    if which.startswith("the week of"):
        args += ["--date", last_case_day]
    done = run_report(demo_store.database_url, *args)
    assert done.exit_code == 0, done.output
    with TestClient(create_app(demo_store)) as client:
        params = {"period": "week"} | ({"date": last_case_day} if "--date" in args else {})
        answer = client.get("/v1/reports/summary", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    if "--date" in args:
        assert summary["cases"]["total"] > 0 and summary["backlog"]["overdue"] > 0
    else:
        assert summary["warnings"]["issued"] > 0
    text, pages = pdf_text(out)
    for phrase in expected_phrases(summary):
        assert phrase in text, phrase
    assert "形势周报" in text
    width, height = float(pages[0].mediabox.width), float(pages[0].mediabox.height)
    assert abs(width - 595.3) < 2 and abs(height - 841.9) < 2  # A4 in points
    fonts = [font.get_object() for page in pages for font in (page["/Resources"].get("/Font") or {}).values()]
    assert fonts and all(embedded(font) for font in fonts)  # nothing left for the reader's machine to supply


def embedded(font: Any) -> bool:
    """A Type 3 font carries its glyphs; any other must carry a font file (Chromium embeds CJK as Type 0)."""
    if font["/Subtype"] == "/Type3":
        return "/CharProcs" in font
    descriptor = (font["/DescendantFonts"][0].get_object() if font["/Subtype"] == "/Type0" else font)["/FontDescriptor"]
    return any(key in descriptor.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3"))


def test_the_reports_page_and_its_downloads(filled_url: str, demo_bundle_dir: Path, tmp_path: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=filled_url,
                        chromium=str(tmp_path / "no-chromium"))
    with TestClient(create_app(settings)) as client:
        page = client.get("/reports", params={"period": "week", "date": "2026-12-06"}, headers=ADMIN)
        assert page.status_code == 200 and "本期共受理案件 6 件" in page.text
        assert "/reports/download?period=week&amp;date=2026-12-06&amp;format=pdf" in page.text
        assert client.get("/reports", headers=REVIEWER).status_code == 403
        assert client.get("/reports", params={"period": "year"}, headers=ADMIN).status_code == 422
        assert "日期格式应为" in client.get("/reports", params={"date": "2026-02-30"}, headers=ADMIN).text
        for hostile in ({"date": "2026-12\x00-06"}, {"period": "we\x00ek"}):  # PostgreSQL would refuse NUL
            assert client.get("/reports", params=hostile, headers=ADMIN).status_code == 422
        html = client.get("/reports/download", params={"date": "2026-12-06", "format": "html"}, headers=ADMIN)
        assert html.status_code == 200 and "<title>形势周报（2026年11月30日—12月6日）</title>" in html.text
        assert html.headers["content-disposition"] == 'attachment; filename="report-week-2026-12-06.html"'
        pdf = client.get("/reports/download", params={"date": "2026-12-06"}, headers=ADMIN)
        assert pdf.status_code == 503 and "请下载 HTML 版本" in pdf.text  # no Chromium at that path
        assert client.get("/reports/download", params={"format": "doc"}, headers=ADMIN).status_code == 422
