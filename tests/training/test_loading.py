"""Tests for training.loading: every fixture is written to tmp_path (never the shared real data)."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import pickle
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from training.loading import (
    CANONICAL_COLUMNS,
    DataError,
    LoadedCases,
    Rejected,
    load_cases,
    read_table,
)

TIPDM_HEADER = ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情", "一级标签"]
ENGLISH_HEADER = ["case_id", "reporter_id", "title", "created_at", "body", "department"]

LONG_BODY = "青林区兰亭苑小区东门外的路灯已经连续坏了三个多星期，晚上老人和孩子出行很不方便，希望尽快修复。"

ROWS = [
    ["101", "U001", "兰亭苑小区路灯坏了", "2025/7/11 10:00:00", "\n\t\t" + LONG_BODY + "\n\t\t", "城乡建设"],
    ["102", "", "长宁路工地夜间施工噪音扰民", "2025-07-12 00:00:00", "每晚十一点后还在打桩。", "环境保护"],
    ["103", "U003", "18路公交车班次太少", "2025-07-13", "", "交通运输"],
    ["104", "U004", "学府路幼儿园乱收费", "", "幼儿园 额外 收取 兴趣班 费用", "教育文体"],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def load_one(path: Path, **kwargs) -> LoadedCases:
    loaded = load_cases([path], **kwargs)
    assert_conserved(loaded)
    return loaded


def assert_conserved(loaded: LoadedCases) -> None:
    r = loaded.report
    assert r.rows_read == r.rows_kept + len(r.rejected) + r.duplicates_merged
    assert r.rows_kept == len(loaded.frame)


def without_source(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["source_file"])


# ------------------------------------------------------------------------------------------------
# Headers and columns
# ------------------------------------------------------------------------------------------------


def test_tipdm_and_english_headers_give_identical_frames(tmp_path):
    zh = load_one(write_csv(tmp_path / "zh.csv", TIPDM_HEADER, ROWS))
    en = load_one(write_csv(tmp_path / "en.csv", ENGLISH_HEADER, ROWS))
    pd.testing.assert_frame_equal(without_source(zh.frame), without_source(en.frame))
    assert list(zh.frame.columns[: len(CANONICAL_COLUMNS)]) == list(CANONICAL_COLUMNS)
    assert zh.frame["case_id"].tolist() == ["101", "102", "103", "104"]
    assert zh.frame["department"].tolist() == ["城乡建设", "环境保护", "交通运输", "教育文体"]


def test_english_aliases_are_case_insensitive_and_stripped(tmp_path):
    header = [" ID ", "User_ID", "Subject", "Time", "Content", "LABEL"]
    other = load_one(write_csv(tmp_path / "alias.csv", header, ROWS))
    en = load_one(write_csv(tmp_path / "en.csv", ENGLISH_HEADER, ROWS))
    pd.testing.assert_frame_equal(without_source(other.frame), without_source(en.frame))


def test_yiji_fenlei_is_accepted_as_the_label_header(tmp_path):
    header = ["留言主题", "留言详情", "一级分类"]
    path = write_csv(tmp_path / "cat.csv", header, [["路灯坏了", "请修复", "城乡建设"]])
    loaded = load_one(path, require_department=True)
    assert loaded.frame["department"].tolist() == ["城乡建设"]


def test_risk_level_header_and_values(tmp_path):
    header = ["title", "风险等级"]
    rows = [["a", "红色"], ["b", " RED "], ["c", "绿"], ["d", "Yellow"], ["e", ""], ["f", "黄色"]]
    loaded = load_one(write_csv(tmp_path / "risk.csv", header, rows))
    assert loaded.frame["risk_level"].tolist() == ["red", "red", "green", "yellow", None, "yellow"]


def test_csv_with_bom_keeps_the_first_header(tmp_path):
    path = write_csv(tmp_path / "bom.csv", TIPDM_HEADER, ROWS, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    loaded = load_one(path)
    assert loaded.frame["case_id"].tolist() == ["101", "102", "103", "104"]
    assert "\ufeff留言编号" not in loaded.frame.columns


def test_tsv_by_extension(tmp_path):
    path = tmp_path / "cases.tsv"
    path.write_text("title\tbody\n路灯坏了\t请修复,谢谢\n", encoding="utf-8")
    loaded = load_one(path)
    assert loaded.frame["body"].tolist() == ["请修复,谢谢"]


def test_unknown_columns_are_carried_after_canonical_and_key_columns(tmp_path):
    header = [*TIPDM_HEADER, "点赞数", "答复意见"]
    rows = [[*r, str(i), "已转交"] for i, r in enumerate(ROWS)]
    frame = load_one(write_csv(tmp_path / "votes.csv", header, rows)).frame
    assert list(frame.columns) == [
        *CANONICAL_COLUMNS,
        "source_file",
        "source_row",
        "dedup_key",
        "group_key",
        "点赞数",
        "答复意见",
    ]
    assert frame["点赞数"].tolist() == ["0", "1", "2", "3"]


def test_stale_key_columns_from_an_earlier_export_are_recomputed(tmp_path):
    path = write_csv(
        tmp_path / "export.csv", ["title", "body", "dedup_key"], [["路灯坏了", "请修复", "STALE"]]
    )
    frame = load_one(path).frame
    assert frame["dedup_key"].tolist() == ["路灯坏了请修复"]
    assert list(frame.columns).count("dedup_key") == 1


def test_two_columns_for_one_canonical_name_is_an_error(tmp_path):
    header = ["title", "一级标签", "department"]
    path = write_csv(tmp_path / "both.csv", header, [["a", "城乡建设", "城乡建设"]])
    with pytest.raises(DataError) as info:
        load_cases([path])
    assert "一级标签" in str(info.value) and "'department'" in str(info.value)
    assert info.value.column == "department"


def test_source_file_and_row_across_several_files(tmp_path):
    a = write_csv(tmp_path / "a.csv", ["title"], [["甲"], ["乙"]])
    b = write_csv(tmp_path / "b.csv", ["title"], [["丙"]])
    loaded = load_cases([a, b])
    assert_conserved(loaded)
    frame = loaded.frame
    assert frame["title"].tolist() == ["甲", "乙", "丙"]
    assert frame["source_file"].tolist() == [str(a), str(a), str(b)]
    assert frame["source_row"].tolist() == [2, 3, 2]
    assert frame["source_row"].dtype == "int64"
    assert loaded.report.files == [str(a), str(b)]


def test_missing_case_id_is_generated_and_empty_reporter_is_none(tmp_path):
    rows = [["", "", "a"], [" 9 ", "U1", "b"]]
    path = write_csv(tmp_path / "batch_07.csv", ["case_id", "reporter_id", "title"], rows)
    frame = load_one(path).frame
    assert frame["case_id"].tolist() == ["batch_07-2", "9"]
    assert frame["reporter_id"].tolist() == [None, "U1"]
    assert frame["department"].tolist() == [None, None]


def test_the_text_na_stays_text(tmp_path):
    path = write_csv(tmp_path / "na.csv", ["title", "body", "department"], [["NA", "N/A", "NA"]])
    frame = load_one(path).frame
    assert (frame["title"].iloc[0], frame["body"].iloc[0], frame["department"].iloc[0]) == ("NA", "N/A", "NA")


# ------------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------------


def test_mixed_date_formats_empty_and_garbage(tmp_path):
    dates = [
        "2019/7/11 10:00:00",
        "2019-07-11 00:00:00",
        "2019-07-11",
        "2019-07-11T10:30:00",
        "",
        "not a date",
        "2019年7月11日",
        "2019-07-11T10:30:00+08:00",
    ]
    rows = [[f"t{i}", d] for i, d in enumerate(dates)]
    path = write_csv(tmp_path / "dates.csv", ["title", "created_at"], rows)
    loaded = load_one(path)
    got = loaded.frame["created_at"]
    assert pd.api.types.is_datetime64_dtype(got) and got.dt.tz is None
    expected = [
        pd.Timestamp("2019-07-11 10:00:00"),
        pd.Timestamp("2019-07-11"),
        pd.Timestamp("2019-07-11"),
        pd.Timestamp("2019-07-11 10:30:00"),
        pd.NaT,
        pd.NaT,
        pd.Timestamp("2019-07-11"),
        pd.Timestamp("2019-07-11 10:30:00"),
    ]
    for value, want in zip(got.tolist(), expected, strict=True):
        assert (pd.isna(value) and pd.isna(want)) or value == want
    assert len(loaded.frame) == len(dates)  # the garbage row is kept
    [bad] = loaded.report.unparsed_dates
    assert (bad.file, bad.row) == (str(path), 7)
    assert "created_at" in bad.reason
    assert loaded.report.summary()["unparsed_dates"] == 1


def test_body_whitespace_runs_and_full_width_are_normalised(tmp_path):
    rows = [["ＡＢＣ小区　路灯", "\n\t\t第一段\n\t\t第二段  １２３\n"]]
    frame = load_one(write_csv(tmp_path / "ws.csv", ["title", "body"], rows)).frame
    assert frame["title"].iloc[0] == "ABC小区 路灯"
    assert frame["body"].iloc[0] == "第一段 第二段 123"


def test_empty_body_keeps_the_row_and_title_carries_it(tmp_path):
    frame = load_one(write_csv(tmp_path / "e.csv", ["title", "body"], [["18路公交车班次太少", ""]])).frame
    assert frame["body"].tolist() == [""]
    assert frame["dedup_key"].tolist() == ["18路公交车班次太少"]


def test_no_title_and_no_body_is_rejected_with_its_row(tmp_path):
    path = tmp_path / "gaps.csv"
    # row 3 has no text; line 4 is blank (still a row as a spreadsheet counts it); row 5 is fine;
    # trailing blank lines are layout, not rows
    text = "title,body,department\na,b,城乡建设\n ,\t,城乡建设\n\nc,d,环境保护\n\n\n"
    path.write_text(text, encoding="utf-8")
    loaded = load_one(path)
    assert loaded.report.rows_read == 4
    assert loaded.report.rejected == [
        Rejected(str(path), 3, "no title and no body"),
        Rejected(str(path), 4, "no title and no body"),
    ]
    assert loaded.frame["source_row"].tolist() == [2, 5]
    assert loaded.report.summary()["rejected_no_text"] == 2


def test_require_department_rejects_rows_without_label(tmp_path):
    path = write_csv(tmp_path / "l.csv", ["title", "department"], [["a", "城乡建设"], ["b", "  "]])
    loaded = load_one(path, require_department=True)
    assert loaded.report.rejected == [Rejected(str(path), 3, "no department label")]
    assert load_one(path).report.rejected == []  # not required: kept, department None


# ------------------------------------------------------------------------------------------------
# Duplicates and keys
# ------------------------------------------------------------------------------------------------


def test_duplicates_with_different_ids_are_merged_only_for_training(tmp_path):
    rows = [
        ["1", "路灯坏了", "兰亭苑路灯坏了。", "城乡建设"],
        ["2", "其他问题", "别的内容", "环境保护"],
        ["3", "路灯坏了", "兰亭苑 路灯 坏了", "城乡建设"],
        ["R7", "路灯坏了！", "兰亭苑路灯坏了", "城乡建设"],
    ]
    path = write_csv(tmp_path / "d.csv", ["case_id", "title", "body", "department"], rows)
    trained = load_one(path, training=True)
    assert trained.frame["case_id"].tolist() == ["1", "2"]  # the first copy is kept
    assert trained.report.duplicates_merged == 2
    assert trained.report.conflicting_labels == 0
    batch = load_one(path)
    assert batch.frame["case_id"].tolist() == ["1", "2", "3", "R7"]
    assert batch.report.duplicates_merged == 0
    assert batch.frame["dedup_key"].nunique() == 2


def test_conflicting_labels_majority_wins(tmp_path):
    rows = [["a", "x", "环境保护"], ["a", "x", "城乡建设"], ["a", "x", "城乡建设"], ["b", "y", "交通运输"]]
    path = write_csv(tmp_path / "m.csv", ["title", "body", "department"], rows)
    loaded = load_one(path, training=True, require_department=True)
    assert loaded.frame["department"].tolist() == ["城乡建设", "交通运输"]
    assert loaded.frame["source_row"].tolist() == [2, 5]
    assert loaded.report.conflicting_labels == 1
    assert loaded.report.duplicates_merged == 2
    assert loaded.report.rejected == []


def test_conflicting_labels_tie_rejects_every_copy(tmp_path):
    rows = [["a", "x", "环境保护"], ["b", "y", "交通运输"], ["a", "x", "城乡建设"]]
    path = write_csv(tmp_path / "t.csv", ["title", "body", "department"], rows)
    loaded = load_one(path, training=True)
    assert loaded.frame["title"].tolist() == ["b"]
    assert loaded.report.conflicting_labels == 1
    assert loaded.report.duplicates_merged == 0
    reason = "duplicate copies carry conflicting labels: 环境保护 vs 城乡建设"
    assert loaded.report.rejected == [Rejected(str(path), 2, reason), Rejected(str(path), 4, reason)]
    assert loaded.report.summary()["rejected_label_conflict"] == 2


def test_conflicting_risk_levels_majority_and_tie(tmp_path):
    rows = [
        ["a", "x", "red"],
        ["a", "x", "红"],
        ["a", "x", "green"],
        ["b", "y", "yellow"],
        ["b", "y", "green"],
    ]
    path = write_csv(tmp_path / "r.csv", ["title", "body", "risk_level"], rows)
    loaded = load_one(path, training=True)
    assert loaded.frame["risk_level"].tolist() == ["red", None]
    assert loaded.report.conflicting_risk_levels == 2
    assert loaded.report.conflicting_labels == 0
    assert loaded.report.rejected == []


def test_whitespace_stripped_copy_shares_the_dedup_key(tmp_path):
    spaced = "我们小区 的 路灯 坏了，\n\t\t晚上 出行 很 不便。"
    stripped = "我们小区的路灯坏了,晚上出行很不便"
    different = "我们小区的路灯修好了,晚上出行很方便"
    rows = [["路灯", spaced], ["路灯", stripped], ["路灯", different]]
    keys = load_one(write_csv(tmp_path / "k.csv", ["title", "body"], rows)).frame["dedup_key"].tolist()
    assert keys[0] == keys[1]
    assert keys[2] != keys[0]


def test_group_key_is_shared_by_a_long_body_under_two_titles(tmp_path):
    rows = [
        ["兰亭苑路灯坏了", LONG_BODY],
        ["关于路灯的投诉", LONG_BODY.replace("，", " ")],
        ["路灯", "路灯坏了"],
        ["小区路灯", "路灯坏了"],
    ]
    frame = load_one(write_csv(tmp_path / "g.csv", ["title", "body"], rows)).frame
    assert frame["dedup_key"].iloc[0] != frame["dedup_key"].iloc[1]
    assert frame["group_key"].iloc[0] == frame["group_key"].iloc[1]
    # a short body is not distinctive: the title decides the group
    assert frame["group_key"].iloc[2] != frame["group_key"].iloc[3]
    assert frame["group_key"].iloc[2] == frame["dedup_key"].iloc[2]


def test_conservation_invariant_on_a_messy_mix(tmp_path):
    a = write_csv(
        tmp_path / "a.csv",
        ["title", "body", "department", "risk_level"],
        [
            ["a", "x", "城乡建设", "red"],
            ["a", "x", "城乡建设", "green"],
            ["", "", "城乡建设", ""],
            ["b", "y", "", ""],
            ["c", "z", "环境保护", ""],
            ["c", "z", "交通运输", ""],
            ["d", "w", "教育文体", "yellow"],
        ],
    )
    b = write_csv(
        tmp_path / "b.csv", ["title", "body", "department"], [["a", "x。", "城乡建设"], ["e", "", "卫生计生"]]
    )
    for kwargs in ({}, {"training": True}, {"training": True, "require_department": True}):
        loaded = load_cases([a, b], **kwargs)
        assert_conserved(loaded)
        s = loaded.report.summary()
        assert s["rows_read"] == 9
        assert s["rows_read"] == s["rows_kept"] + s["rows_rejected"] + s["duplicates_merged"]
    r = loaded.report  # the strictest run
    assert (r.rows_kept, len(r.rejected), r.duplicates_merged) == (3, 4, 2)
    assert loaded.frame["title"].tolist() == ["a", "d", "e"]


# ------------------------------------------------------------------------------------------------
# Bad files
# ------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="not found") as info:
        load_cases([path])
    assert info.value.file == str(path)
    assert str(path) in str(info.value)


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message and ".json" in message
    for suffix in (".csv", ".tsv", ".xlsx", ".parquet"):
        assert suffix in message


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="has no rows") as info:
        load_cases([path])
    assert str(path) in str(info.value)


def test_header_only_csv(tmp_path):
    path = write_csv(tmp_path / "header.csv", TIPDM_HEADER, [])
    with pytest.raises(DataError, match="has no rows"):
        load_cases([path])


def test_invalid_utf8_names_the_line_and_suggests_gb18030(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("title,body\n路灯坏了,请尽快修复\n".encode("gbk"))
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message
    # "路" happens to be valid UTF-8 in GBK bytes (c2 b7); "灯" (b5 c6) is the first invalid byte
    assert "line 2" in message and "offset 13" in message
    assert "gb18030" in message
    frame = load_one(path, encoding="gb18030").frame
    assert frame[["title", "body"]].values.tolist() == [["路灯坏了", "请尽快修复"]]


def test_truncated_xlsx(tmp_path):
    good = tmp_path / "good.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["title", "body"])
    for i in range(50):
        book.active.append([f"标题{i}", f"正文{i}"])
    book.save(good)
    data = good.read_bytes()
    bad = tmp_path / "cut.xlsx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        load_cases([bad])
    message = str(info.value)
    assert str(bad) in message and "Excel" in message
    assert "\n" not in message and "Traceback" not in message


def test_parquet_that_is_really_text(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("title,body\na,b\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_cases([path])
    message = str(info.value)
    assert str(path) in message and "Parquet" in message and "\n" not in message


def test_malformed_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("title,body\na,b\nc,d,e,f\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_cases([path])
    assert str(path) in str(info.value) and "line 3" in str(info.value)


def test_no_text_column_lists_found_and_accepted_headers(tmp_path):
    path = write_csv(tmp_path / "notext.csv", ["编号", "department"], [["1", "城乡建设"]])
    with pytest.raises(DataError) as info:
        load_cases([path])
    message = str(info.value)
    assert str(path) in message
    assert "编号" in message  # found
    for accepted in ("留言主题", "title", "留言详情", "body"):
        assert accepted in message


def test_no_label_column_when_department_is_required(tmp_path):
    path = write_csv(tmp_path / "nolabel.csv", ["title", "body"], [["a", "b"]])
    with pytest.raises(DataError) as info:
        load_cases([path], require_department=True)
    message = str(info.value)
    assert str(path) in message
    for accepted in ("一级标签", "一级分类", "department"):
        assert accepted in message
    assert load_one(path).frame["department"].tolist() == [None]


def test_unknown_risk_level_names_file_row_and_column(tmp_path):
    path = write_csv(tmp_path / "risk.csv", ["title", "risk_level"], [["a", "red"], ["b", "orange"]])
    with pytest.raises(DataError) as info:
        load_cases([path])
    err = info.value
    assert (err.file, err.row, err.column) == (str(path), 3, "risk_level")
    assert str(err) == (
        f"{path}, row 3, column 'risk_level': unknown risk level 'orange' (expected red, yellow or green)"
    )
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.row, again.column) == (str(err), 3, "risk_level")


# ------------------------------------------------------------------------------------------------
# Formats round trip
# ------------------------------------------------------------------------------------------------


def test_xlsx_and_parquet_round_trips_give_the_same_cases(tmp_path):
    source = pd.DataFrame(
        {
            "case_id": [101, 102, 103],
            "reporter_id": ["U1", None, "U3"],
            "title": ["兰亭苑路灯坏了", "工地夜间施工", "公交班次少"],
            "body": ["\n\t\t" + LONG_BODY, "每天 晚上 打桩", None],
            "created_at": [dt.datetime(2025, 7, 11, 10, 0), dt.datetime(2025, 7, 12, 23, 5), None],
            "department": ["城乡建设", "环境保护", "交通运输"],
            "risk_level": ["green", "yellow", None],
            "点赞数": [3, 0, 12],
        }
    )
    source["created_at"] = pd.to_datetime(source["created_at"])
    xlsx = tmp_path / "cases.xlsx"
    parquet = tmp_path / "cases.parquet"
    csv_path = tmp_path / "cases.csv"
    source.to_excel(xlsx, index=False)
    source.to_parquet(parquet, index=False)
    as_text = source["created_at"].dt.strftime("%Y/%m/%d %H:%M:%S")
    source.assign(created_at=as_text).to_csv(csv_path, index=False)

    frames = [load_one(p).frame for p in (xlsx, parquet, csv_path)]
    compare = [*CANONICAL_COLUMNS, "source_row", "dedup_key", "group_key"]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame[compare], frames[0][compare])
    first = frames[0]
    assert first["case_id"].tolist() == ["101", "102", "103"]
    assert first["reporter_id"].tolist() == ["U1", None, "U3"]
    assert first["created_at"].iloc[0] == pd.Timestamp("2025-07-11 10:00")
    assert pd.isna(first["created_at"].iloc[2])
    for frame in frames:
        assert [str(v) for v in frame["点赞数"]] == ["3", "0", "12"]


def test_read_table_reads_cells_as_strings(tmp_path):
    path = write_csv(tmp_path / "s.csv", ["case_id", "title"], [["007", "NA"], ["8", ""]])
    frame = read_table(path)
    assert frame["case_id"].tolist() == ["007", "8"]
    assert frame["title"].tolist() == ["NA", ""]


# ------------------------------------------------------------------------------------------------
# Logging
# ------------------------------------------------------------------------------------------------


def test_logs_counts_but_never_case_text(tmp_path, caplog):
    rows = [
        ["张三投诉路灯", "我是张三，电话13912345678，路灯坏了", "城乡建设"],
        ["", "", ""],
        ["李四反映路灯", "路灯坏了", "城乡建设"],
    ]
    path = write_csv(tmp_path / "p.csv", ["title", "body", "department"], rows)
    with caplog.at_level(logging.DEBUG, logger="training.loading"):
        load_cases([path], training=True, require_department=True)
    assert "3 rows read" in caplog.text and "1 rejected" in caplog.text
    for secret in ("张三", "李四", "13912345678", "路灯"):
        assert secret not in caplog.text
