"""Reviewed cases out of the audit store and back into training: `reviewed_cases`, `triage export-reviews`,
and `load_cases` letting reviewers' labels win. Store queries run on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from command.cli import app
from store import CaseInput, PredictionInput, Store, upgrade_database
from store.reviewed import reviewed_cases
from tests.mlflow_env import point_mlflow_at, reset_mlflow_uris
from tests.serving import conftest as serving_databases
from tests.training.test_malformed_files import flat
from training.config import TrainConfig
from training.loading import REASON_SUPERSEDED, load_cases
from training.reviews_export import EXPORT_COLUMNS, escape_formula, export_reviews, reviews_frame

# The PostgreSQL / SQLite fixtures of the serving tests (a fresh schema or file per test).
postgres_admin = serving_databases.postgres_admin
postgres_url = serving_databases.postgres_url
db_url = serving_databases.db_url

WIDE = {"COLUMNS": "250", "NO_COLOR": "1"}
T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def predict(store: Store, case_id: str, title: str, body: str, *, department: str, level: str | None,
            reporter: str = "U-secret-reporter") -> int:
    record = store.record_case_and_prediction(
        CaseInput(case_id, title, body, created_at=T0, reporter_id=reporter, channel="网站"),
        PredictionInput(model_name="grievance-triage", model_version="3", department=department,
                        department_confidence=0.6, needs_review=True, top=[{"label": department, "probability": 0.6}],
                        risk_level=level),
    )
    return record.id


@pytest.fixture
def store(db_url: str) -> Store:
    upgrade_database(db_url)
    store = Store.from_url(db_url)
    yield store
    store.dispose()


@pytest.fixture
def reviewed_store(store: Store, demo_cases: pd.DataFrame) -> Store:
    """Four demo cases scored; three reviewed (one twice, one confirmed without changes); one not."""
    rows = demo_cases.head(4).to_dict("records")
    ids = [predict(store, r["case_id"], r["title"], r["body"], department="城乡建设", level="green") for r in rows]
    a, b, c, _ = rows
    store.add_review(a["case_id"], ids[0], "reviewer-li", decided_department="劳动和社会保障", decided_level="red")
    store.add_review(a["case_id"], ids[0], "reviewer-wang", decided_department=a["department"], decided_level="yellow")
    store.add_review(b["case_id"], ids[1], "reviewer-li")  # confirmed: the model's outputs become the labels
    store.add_review(c["case_id"], ids[2], "reviewer-li", decided_level="red")
    return store


# -- the store query --------------------------------------------------------------------------------


def test_each_reviewed_case_appears_once_with_its_latest_decision(
    reviewed_store: Store, demo_cases: pd.DataFrame
) -> None:
    a, b, c, _d = demo_cases.head(4).to_dict("records")
    found = {r.case_id: r for r in reviewed_cases(reviewed_store)}
    assert set(found) == {a["case_id"], b["case_id"], c["case_id"]}  # d was never reviewed
    assert (found[a["case_id"]].decided_department, found[a["case_id"]].decided_level) == (a["department"], "yellow")
    assert found[a["case_id"]].reviewer == "reviewer-wang"
    assert (found[b["case_id"]].decided_department, found[b["case_id"]].decided_level) == ("城乡建设", "green")
    assert (found[c["case_id"]].decided_department, found[c["case_id"]].decided_level) == ("城乡建设", "red")
    assert found[c["case_id"]].model_level == "green" and found[c["case_id"]].model_version == "3"
    assert found[a["case_id"]].title == a["title"] and found[a["case_id"]].channel == "网站"
    assert all(r.reviewed_at.tzinfo is not None for r in found.values())
    assert not any(hasattr(r, "reporter_id") for r in found.values())


def test_the_text_exported_is_the_version_the_reviewer_saw(store: Store) -> None:
    first = predict(store, "C-1", "小区路灯不亮", "幸福小区路灯坏了一个月", department="城乡建设", level="green")
    store.add_review("C-1", first, "reviewer-li", decided_department="城乡建设")
    predict(store, "C-1", "小区路灯不亮（补充）", "改过的正文", department="城乡建设", level="green")
    (case,) = reviewed_cases(store)
    assert (case.title, case.body, case.prediction_id) == ("小区路灯不亮", "幸福小区路灯坏了一个月", first)


def test_since_and_until_select_by_review_time(reviewed_store: Store) -> None:
    everything = reviewed_cases(reviewed_store)
    latest = max(r.reviewed_at for r in everything)
    assert reviewed_cases(reviewed_store, since=latest + timedelta(seconds=1)) == []
    assert reviewed_cases(reviewed_store, until=T0) == []
    assert {r.case_id for r in reviewed_cases(reviewed_store, since=latest)} == {
        r.case_id for r in everything if r.reviewed_at >= latest
    }


# -- the file -----------------------------------------------------------------------------------------


def test_export_round_trips_through_the_training_loader(reviewed_store: Store, db_url: str, tmp_path: Path,
                                                        demo_cases: pd.DataFrame) -> None:
    out = tmp_path / "reviews.csv"
    written = export_reviews(db_url, out)
    assert list(written.columns) == list(EXPORT_COLUMNS)
    loaded = load_cases([out], require_department=True, training=True)
    frame = loaded.frame.set_index("case_id")
    a, _b, c, _ = demo_cases.head(4).to_dict("records")
    assert loaded.report.rows_kept == 3 and not loaded.report.rejected
    assert frame.loc[a["case_id"], "department"] == a["department"]
    assert frame.loc[a["case_id"], "risk_level"] == "yellow"
    assert frame.loc[c["case_id"], "risk_level"] == "red"
    assert frame.loc[a["case_id"], "title"] == a["title"]
    assert set(frame["label_source"]) == {"review"}
    assert frame.loc[a["case_id"], "reviewer"] == "reviewer-wang"
    assert frame.loc[a["case_id"], "model_department"] == "城乡建设"
    assert frame.loc[a["case_id"], "model_version"] == "3"
    assert not frame["created_at"].isna().any()
    assert "reporter_id" not in pd.read_csv(out).columns
    assert loaded.frame["reporter_id"].isna().all()
    assert "U-secret-reporter" not in out.read_text("utf-8")


def test_parquet_export_reads_back_the_same_labels(reviewed_store: Store, db_url: str, tmp_path: Path) -> None:
    csv_frame = load_cases([export_and_path(db_url, tmp_path / "r.csv")], require_department=True).frame
    pq_frame = load_cases([export_and_path(db_url, tmp_path / "r.parquet")], require_department=True).frame
    columns = ["case_id", "title", "body", "department", "risk_level", "reviewer"]
    pd.testing.assert_frame_equal(csv_frame[columns], pq_frame[columns])


def export_and_path(url: str, path: Path) -> Path:
    export_reviews(url, path)
    return path


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_escaped_in_csv(text: str) -> None:
    assert escape_formula(text) == "'" + text
    assert escape_formula("物业费" + text) == "物业费" + text
    assert escape_formula(None) is None


def test_only_columns_that_can_hold_text_are_visited_and_the_csv_is_unchanged() -> None:
    from features.csv_safety import csv_text, escaped

    frame = pd.DataFrame({
        "case_id": ["=cmd|' /C calc'!A0", "c-2", None],
        "confidence": [0.5, -0.25, float("nan")],  # a negative number is a number, not a formula
        "needs_review": [True, False, True],
        "mixed": pd.Series(["-1", 3, None], dtype=object),  # an object column: its text is guarded
        "created_at": pd.to_datetime(["2024-01-01", None, "2024-03-01"]),
        "level": pd.Categorical(["@red", "green", "@red"]),
    })
    out = escaped(frame)
    assert out["case_id"].tolist()[:2] == ["'=cmd|' /C calc'!A0", "c-2"]
    assert out["mixed"].tolist()[:2] == ["'-1", 3] and out["level"].tolist()[0] == "'@red"
    assert out["confidence"].equals(frame["confidence"]) and frame["case_id"].iloc[0].startswith("=")  # no copy changed
    assert csv_text(frame) == "\ufeff" + frame.map(escape_formula).to_csv(index=False, lineterminator="\r\n")


def test_csv_export_defuses_formulas_but_parquet_keeps_the_text(store: Store, db_url: str, tmp_path: Path) -> None:
    title, body = "=HYPERLINK(\"http://evil.example\",\"点我\")", "-1+1 路灯不亮，@物业 一直不处理"
    pid = predict(store, "F-1", title, body, department="城乡建设", level="green")
    store.add_review("F-1", pid, "reviewer-li", decided_department="城乡建设")
    export_reviews(db_url, tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(encoding="utf-8", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["title"] == "'" + title and row["body"] == "'" + body
    assert not any(value.startswith(("=", "+", "-", "@")) for value in row.values())
    export_reviews(db_url, tmp_path / "r.parquet")
    assert pd.read_parquet(tmp_path / "r.parquet")["title"].tolist() == [title]


def test_reviews_frame_of_nothing_has_the_export_columns() -> None:
    assert list(reviews_frame([]).columns) == list(EXPORT_COLUMNS)


# -- the command line ---------------------------------------------------------------------------------


def test_cli_writes_the_file_and_says_how_many(reviewed_store: Store, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "reviews.csv"
    result = CliRunner().invoke(app, ["export-reviews", "--out", str(out), "--database-url", db_url], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "wrote 3 reviewed cases" in result.output
    assert "1 with the department changed" in result.output  # c kept the model's department; a was set back
    assert len(pd.read_csv(out)) == 3


def test_cli_defaults_to_the_serving_database(reviewed_store: Store, db_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", db_url)
    out = tmp_path / "reviews.parquet"
    result = CliRunner().invoke(app, ["export-reviews", "--out", str(out), "--since", "2020-01-01"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == 3


def test_cli_with_no_reviews_fails_with_a_message_not_a_traceback(store: Store, db_url: str, tmp_path: Path) -> None:
    predict(store, "N-1", "路灯不亮", "幸福小区路灯坏了", department="城乡建设", level="green")  # scored, not reviewed
    out = tmp_path / "reviews.csv"
    result = CliRunner().invoke(app, ["export-reviews", "--out", str(out), "--database-url", db_url], env=WIDE)
    assert result.exit_code == 2
    assert "holds no reviews" in result.output and "nothing to export" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not out.exists()


def test_cli_on_a_database_without_tables_says_how_to_fix_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(app, ["export-reviews", "--out", str(tmp_path / "r.csv"), "--database-url", url],
                                env=WIDE)
    assert result.exit_code == 2
    assert "no audit tables" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("args", "words"), [
    (["--out", "reviews.xlsx"], "use .csv or .parquet"),
    (["--out", "no-such-folder/reviews.csv"], "does not exist"),
    (["--out", "r.csv", "--since", "last tuesday"], "--since 'last tuesday': not a date"),
])
def test_cli_refuses_bad_arguments_naming_them(args: list[str], words: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["export-reviews", *args, "--database-url", f"sqlite:///{tmp_path}/x.db"],
                                env=WIDE)
    assert result.exit_code == 2
    assert words in " ".join(result.output.split())


# -- reviewers' labels win in training ---------------------------------------------------------------


def test_reviewed_rows_replace_other_files_rows_of_the_same_case(tmp_path: Path, demo_csv: Path,
                                                                 demo_cases: pd.DataFrame) -> None:
    original = demo_cases.iloc[0]
    new_department = next(d for d in sorted(set(demo_cases["department"])) if d != original["department"])
    reviews = tmp_path / "reviews.csv"
    pd.DataFrame([{"case_id": original["case_id"], "title": original["title"] + "（补充）", "body": original["body"],
                   "department": new_department, "risk_level": "red", "label_source": "review"}]).to_csv(reviews,
                                                                                                         index=False)
    loaded = load_cases([demo_csv, reviews], require_department=True, training=True)
    rows = loaded.frame[loaded.frame["case_id"] == original["case_id"]]
    assert len(rows) == 1
    assert (rows.iloc[0]["department"], rows.iloc[0]["risk_level"]) == (new_department, "red")
    (superseded,) = [r for r in loaded.report.rejected if r.reason == REASON_SUPERSEDED]
    assert superseded.file == str(demo_csv)
    assert loaded.report.summary()["superseded_by_review"] == 1
    assert loaded.report.rows_kept == len(demo_cases)


def test_a_reviewed_copy_outvotes_unreviewed_copies_of_the_same_text(tmp_path: Path) -> None:
    """Two unreviewed copies say 城乡建设; one reviewed copy under another id says 交通运输: the reviewer wins."""
    title, body = "18路公交车班次太少", "每天早上等车要四十分钟，希望增加班次。"
    path = tmp_path / "cases.csv"
    pd.DataFrame([
        {"case_id": "A", "title": title, "body": body, "department": "城乡建设", "label_source": ""},
        {"case_id": "B", "title": title, "body": body, "department": "城乡建设", "label_source": ""},
        {"case_id": "R", "title": title, "body": body, "department": "交通运输", "label_source": "review"},
    ]).to_csv(path, index=False)
    loaded = load_cases([path], require_department=True, training=True)
    (row,) = loaded.frame.to_dict("records")
    assert (row["case_id"], row["department"]) == ("R", "交通运输")
    assert loaded.report.duplicates_merged == 2 and not loaded.report.rejected


@pytest.mark.slow
def test_triage_train_takes_the_export_beside_the_original_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_csv: Path, demo_cases: pd.DataFrame, fast_config: TrainConfig
) -> None:
    point_mlflow_at(monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade_database(url)
    with Store.from_url(url) as store:
        case = demo_cases.iloc[5]
        moved_to = next(d for d in sorted(set(demo_cases["department"])) if d != case["department"])
        pid = predict(store, case["case_id"], case["title"], case["body"], department=case["department"],
                      level="green")
        store.add_review(case["case_id"], pid, "reviewer-li", decided_department=moved_to, decided_level="red")
    reviews = tmp_path / "reviews.csv"
    runner = CliRunner()
    exported = runner.invoke(app, ["export-reviews", "--out", str(reviews), "--database-url", url], env=WIDE)
    assert exported.exit_code == 0, exported.output
    raw = fast_config.model_dump(mode="json")
    raw["features"]["char_weight"] = 0.0
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    try:
        trained = runner.invoke(app, ["train", "--data", str(demo_csv), "--data", str(reviews), "--config",
                                      str(config)], env=WIDE)
        assert trained.exit_code == 0, trained.output
        assert "superseded by a reviewer's decision" in trained.output
        run = mlflow.search_runs(experiment_names=[fast_config.registry.experiment_name], output_format="list")[0]
        assert run.data.params["data.superseded_by_review"] == "1"
        assert run.data.params["data.rows_kept"] == str(len(demo_cases))
        assert "reviews.csv" in run.data.params["data.file_names"]
    finally:
        reset_mlflow_uris()


CONTACT_BODY = "我的电话13812345678，身份证110101199003074578，邮箱 zhang.san@example.com，楼道燃气味很重"


def test_the_export_masks_phone_id_card_and_email(store: Store, db_url: str, tmp_path: Path) -> None:
    first = predict(store, "C-PII", "燃气味 联系 li@example.cn", CONTACT_BODY, department="城乡建设", level="red")
    store.add_review("C-PII", first, "reviewer-li", decided_department="城乡建设")
    exported = export_and_path(db_url, tmp_path / "reviews.csv").read_text(encoding="utf-8")
    for secret in ("13812345678", "110101199003074578", "zhang.san@example.com", "li@example.cn"):
        assert secret not in exported
    assert "<电话>" in exported and "<身份证号>" in exported and "<邮箱>" in exported
    assert "楼道燃气味很重" in exported


def test_the_note_is_exported_and_a_guarded_id_reads_back_as_itself(store: Store, db_url: str, tmp_path: Path) -> None:
    """'-EXP-13 written for the spreadsheet's sake must be -EXP-13 again for the loader, so the review still
    overrides that case's label from another file; the reviewer's note travels with the decision."""
    first = predict(store, "-EXP-13", "=路灯不亮", "'-小区路灯坏了一个月", department="城乡建设", level="green")
    store.add_review("-EXP-13", first, "reviewer-li", decided_department="交通运输", decided_level="yellow",
                     note="属于公路照明，电话13812345678")
    path = export_and_path(db_url, tmp_path / "reviews.csv")
    raw = path.read_text(encoding="utf-8")
    assert "'-EXP-13" in raw and "'=路灯不亮" in raw  # guarded for spreadsheets
    frame = load_cases([path]).frame
    (row,) = frame.to_dict("records")
    assert (row["case_id"], row["department"], row["risk_level"]) == ("-EXP-13", "交通运输", "yellow")
    assert row["title"] == "=路灯不亮" and row["body"] == "'-小区路灯坏了一个月"
    assert row["review_note"] == "属于公路照明，电话<电话>"


@pytest.mark.parametrize("text", ["=1+1", "'=x", "''", "'", "-", "plain", "'plain", "@a", "\tx"])
def test_unescaping_gives_back_exactly_what_was_escaped(text: str) -> None:
    from features.csv_safety import escape_formula, unescape_formula

    assert unescape_formula(escape_formula(text)) == text


def test_by_default_the_export_goes_to_a_git_ignored_private_file(reviewed_store: Store, db_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["export-reviews", "--database-url", db_url], env=WIDE)
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "var" / "exports").glob("reviews-*.csv")
    assert flat(f"to {Path('var') / 'exports' / written.name}") in flat(result.output)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "var" / "exports").stat().st_mode) == 0o700
    assert len(pd.read_csv(written)) == 3


def test_a_path_git_would_commit_is_refused_and_an_ignored_one_is_taken(reviewed_store: Store, db_url: str,
                                                                        tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "checkout"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("/exports/\n", encoding="utf-8")
    (repo / "exports").mkdir()
    refused = CliRunner().invoke(app, ["export-reviews", "--out", str(repo / "reviews.csv"), "--database-url", db_url],
                                 env=WIDE)
    assert refused.exit_code == 2 and flat("git work tree and not ignored") in flat(refused.output)
    assert not (repo / "reviews.csv").exists()
    taken = CliRunner().invoke(app, ["export-reviews", "--out", str(repo / "exports" / "r.csv"), "--database-url",
                                     db_url], env=WIDE)
    assert taken.exit_code == 0, taken.output
