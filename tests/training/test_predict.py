"""training.predict: batch scoring keeps one row per case in input order, whatever the chunking."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.bundle import TriageBundle
from training import predict
from training.loading import DataError
from training.output_files import check_output_path
from training.predict import score_frame

ROUTE_COLUMNS = [
    "case_id", "department", "department_confidence", "needs_review", "out_of_taxonomy",
    "top1_department", "top1_probability", "top2_department", "top2_probability",
    "top3_department", "top3_probability",
]


@pytest.fixture(scope="module")
def cases(demo_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return demo_split[1][["case_id", "title", "body"]].head(23).reset_index(drop=True)


def test_score_frame_has_one_row_per_case_in_input_order(demo_bundle: TriageBundle, cases: pd.DataFrame) -> None:
    scored = score_frame(demo_bundle, cases)
    assert list(scored.columns) == ROUTE_COLUMNS
    assert scored["case_id"].tolist() == cases["case_id"].tolist()
    assert scored["department"].tolist() == [r.label for r in demo_bundle.route(cases[["title", "body"]])]


def test_chunked_and_parallel_scoring_equal_one_pass(
    demo_bundle: TriageBundle, cases: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = score_frame(demo_bundle, cases)
    monkeypatch.setattr(predict, "CHUNK", 5)
    seen: list[int] = []
    chunked = score_frame(demo_bundle, cases, seen.append)
    assert seen == [5, 5, 5, 5, 3]
    pd.testing.assert_frame_equal(chunked, whole)
    parallel = score_frame(demo_bundle, cases, workers=2)
    pd.testing.assert_frame_equal(parallel, whole)


def test_a_small_file_is_cut_so_that_every_worker_has_chunks() -> None:
    assert predict.chunk_size(1000, 1) == predict.CHUNK
    assert predict.chunk_size(1000, 2) == 125  # four chunks per worker; one chunk of 1,000 left a worker idle
    assert predict.chunk_size(20, 2) == 50 and predict.chunk_size(10**6, 4) == predict.CHUNK


@pytest.mark.parametrize(("n", "size", "workers", "expected"), [
    (15242, 1000, 2, [1000] * 14 + [250] * 4 + [242]),  # the last workers x size cases in quarters
    (15242, 1000, 1, [1000] * 15 + [242]),  # one process: nothing runs beside the replay
    (10, 50, 2, [10]),
    (0, 50, 2, []),
])
def test_chunks_shrink_at_the_end_of_a_parallel_replay(n: int, size: int, workers: int, expected: list[int]) -> None:
    assert list(predict.chunk_sizes(n, size, workers)) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_replaying_while_scoring_equals_replaying_first(
    demo_bundle_with_risk: TriageBundle, demo_cases: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """`hot_issues=`: workers read chunks in time order (each case prepared once, for the detector and the
    models) while this process replays the chunks already read and finishes their levels. Same rows as
    the two-step path (replay the whole file, then score it)."""
    from models.hotspot_settings import load_hotspot_config
    from training.predict import attach_hot_issues

    config = load_hotspot_config()
    frame = demo_cases.sample(frac=1.0, random_state=3).reset_index(drop=True)  # file order is not time order
    bundle = demo_bundle_with_risk
    two_step = score_frame(bundle, attach_hot_issues(frame, config))
    assert {"risk_level", "hot_issue_id"} <= set(two_step.columns)
    monkeypatch.setattr(predict, "CHUNK", 64)
    seen: list[int] = []
    overlapped = score_frame(bundle, frame, seen.append, workers=workers, hot_issues=config)
    assert sum(seen) == len(frame) and max(seen) == 64
    if workers > 1:  # the last chunks are quarters, so the replay left after the workers finish is short
        assert seen[-2] == 16 and seen[-1] <= 16
    assert overlapped["hot_issue_id"].notna().sum() > 10, "the demo data has hot issues"
    pd.testing.assert_frame_equal(overlapped, two_step, check_exact=False, rtol=0, atol=1e-12)


def test_score_frame_of_no_cases_has_the_same_columns(demo_bundle: TriageBundle, cases: pd.DataFrame) -> None:
    empty = score_frame(demo_bundle, cases.iloc[:0])
    assert len(empty) == 0
    assert list(empty.columns) == ROUTE_COLUMNS


@pytest.mark.parametrize("name", ["out.csv", "out.parquet", "OUT.CSV"])
def test_supported_output_suffixes_are_accepted(name: str) -> None:
    check_output_path(Path(name))


@pytest.mark.parametrize("name", ["out.json", "out.xlsx", "out"])
def test_unsupported_output_suffixes_are_refused_naming_the_file(name: str) -> None:
    with pytest.raises(DataError, match="unsupported output type") as info:
        check_output_path(Path(name))
    assert name in str(info.value)
