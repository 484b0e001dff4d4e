"""`triage predict --engine dask` gives the single-process output row for row, on a 2-worker LocalCluster.

The cluster starts once for the module (worker processes cost seconds each).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from command.cli import app
from features.text import init_tokenizer
from models.hotspot_settings import load_hotspot_config
from models.mlflow_model import load_model
from training.dask_predict import predict_dask
from training.loading import DataError, load_cases
from training.predict import attach_hot_issues, score_frame

PARTS = 4


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def parts_dir(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data cut into CSV partitions of unequal size, in file order."""
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    directory = tmp_path_factory.mktemp("parts")
    bounds = [0, 100, 350, 600, len(frame)]
    for i in range(PARTS):
        frame.iloc[bounds[i] : bounds[i + 1]].to_csv(directory / f"part-{i}.csv", index=False)
    return directory


def _single_process(bundle_dir: Path, files: list[Path], hot: bool) -> pd.DataFrame:
    init_tokenizer()
    bundle = load_model(str(bundle_dir)).bundle
    cases = load_cases(files, training=False).frame
    if hot:
        cases = attach_hot_issues(cases, load_hotspot_config(None))
    return score_frame(bundle, cases)


def _read_parts(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _by_case(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("case_id", kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("hot", [False, True], ids=["plain", "hot-issues"])
def test_dask_output_equals_single_process(
    client: Client, demo_bundle_dir: Path, parts_dir: Path, tmp_path: Path, hot: bool
) -> None:
    files = sorted(parts_dir.glob("*.csv"))
    result = predict_dask(client, str(demo_bundle_dir), str(parts_dir / "*.csv"), tmp_path / "out",
                          hot_issues=load_hotspot_config(None) if hot else None)
    got, want = _read_parts(tmp_path / "out"), _single_process(demo_bundle_dir, files, hot)

    assert result.rows == len(want) == 780 and result.partitions == PARTS
    assert list(got.columns) == list(want.columns)
    assert ("hot_issue_id" in got.columns) is hot
    if hot:
        assert got["hot_issue_id"].notna().sum() > 10  # the replay found bursts, across partitions
    pd.testing.assert_frame_equal(_by_case(got), _by_case(want), check_exact=True)
    # the model was loaded once on each worker, and each worker scored more than one partition
    assert sorted(result.model_loads.values()) == [1, 1]
    assert sum(result.scored_by.values()) == PARTS


def test_hot_issue_replay_follows_time_not_file_order(
    client: Client, demo_bundle_dir: Path, demo_csv: Path, tmp_path: Path
) -> None:
    """Partitions in reverse time order still replay oldest first: same bursts as one sorted file."""
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    frame = frame.iloc[np.argsort(pd.to_datetime(frame["created_at"]).to_numpy(), kind="stable")]
    halves = [frame.iloc[390:], frame.iloc[:390]]  # later cases in the first file
    for i, half in enumerate(halves):
        half.to_csv(tmp_path / f"p{i}.csv", index=False)
    config = load_hotspot_config(None)
    predict_dask(client, str(demo_bundle_dir), str(tmp_path / "p*.csv"), tmp_path / "out", hot_issues=config)
    got = _read_parts(tmp_path / "out")
    frame.to_csv(tmp_path / "sorted.csv", index=False)
    want = _single_process(demo_bundle_dir, [tmp_path / "sorted.csv"], hot=True)
    pd.testing.assert_frame_equal(_by_case(got), _by_case(want), check_exact=True)


def test_input_error_names_the_file(client: Client, demo_bundle_dir: Path, parts_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "a.csv").write_text((parts_dir / "part-0.csv").read_text(encoding="utf-8"), encoding="utf-8")
    (bad / "b.csv").write_text("编号,备注\n1,x\n", encoding="utf-8")
    for i in range(4):  # good partitions still queued when the bad one fails
        (bad / f"c{i}.csv").write_text((parts_dir / "part-0.csv").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(DataError, match=r"b\.csv: no text column"):
        predict_dask(client, str(demo_bundle_dir), str(bad / "*.csv"), tmp_path / "out",
                     hot_issues=load_hotspot_config(None))
    # nothing of the failed run is left queued or held on the cluster (a partition already running when the
    # scan failed cannot be stopped: it ends on its own)
    deadline = time.monotonic() + 30
    while client.run_on_scheduler(_task_count) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.run_on_scheduler(_task_count) == 0


def _task_count(dask_scheduler: Any = None) -> int:
    return len(dask_scheduler.tasks)


def test_no_matching_file_is_an_error(client: Client, demo_bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file matches"):
        predict_dask(client, str(demo_bundle_dir), str(tmp_path / "none-*.csv"), tmp_path / "out")


def test_cli_bad_scheduler_exits_with_one_line_error(demo_bundle_dir: Path, parts_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "predict", "--model", str(demo_bundle_dir), "--input", str(parts_dir / "*.csv"),
        "--output", str(tmp_path / "out"), "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1",
    ])
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the Dask scheduler 'tcp://127.0.0.1:1'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_scores_on_the_scheduler_given(
    client: Client, demo_bundle_dir: Path, parts_dir: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, [
        "predict", "--model", str(demo_bundle_dir), "--input", str(parts_dir / "*.csv"),
        "--output", str(tmp_path / "out"), "--engine", "dask", "--scheduler", client.scheduler.address,
        "--no-hot-issues",
    ])
    assert result.exit_code == 0, result.output
    assert "wrote 780 predictions in 4 Parquet part(s)" in result.stdout
    assert len(_read_parts(tmp_path / "out")) == 780


def test_model_the_workers_cannot_load_is_one_error(client: Client, parts_dir: Path, tmp_path: Path) -> None:
    from training.dask_predict import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"could not load model .* on worker: FileNotFoundError"):
        predict_dask(client, str(tmp_path / "no-bundle"), str(parts_dir / "*.csv"), tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.parquet"))


def test_fsspec_url_partition_reads_like_a_local_file(parts_dir: Path) -> None:
    """A non-local file is read by the same loader; its rows and its errors name the URL."""
    import fsspec

    from training.dask_predict import expand_inputs, load_partition

    local = parts_dir / "part-1.csv"
    with fsspec.open("memory://triage-test/in/part-1.csv", "wb") as fh:
        fh.write(local.read_bytes())
    with fsspec.open("memory://triage-test/in/bad.csv", "wb") as fh:
        fh.write("编号,备注\n1,x\n".encode())
    bad_url, url = expand_inputs("memory://triage-test/in/*.csv")  # sorted, protocol kept
    assert bad_url.startswith("memory://") and bad_url.endswith("/in/bad.csv") and url.endswith("/in/part-1.csv")
    got = load_partition(url, 1)
    want = load_partition(str(local), 1)
    assert (got["source_file"] == url).all()
    pd.testing.assert_frame_equal(got.drop(columns="source_file"), want.drop(columns="source_file"))
    with pytest.raises(DataError, match=rf"^{re.escape(bad_url)}: no text column"):
        load_partition(bad_url, 0)


def test_rows_without_text_are_reported_not_dropped_silently(
    client: Client, demo_bundle_dir: Path, parts_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    frame = pd.read_csv(parts_dir / "part-0.csv", dtype=str, keep_default_na=False).head(10)
    frame.loc[3, ["title", "body"]] = ["", "   "]
    frame.to_csv(source / "a.csv", index=False)
    result = predict_dask(client, str(demo_bundle_dir), str(source / "*.csv"), tmp_path / "out")
    assert result.rows == 9
    assert len(result.skipped) == 1
    file, row, reason = result.skipped[0]
    assert file.endswith("a.csv") and row == 5 and reason == "no title and no body"  # row 5 as a spreadsheet has it
    cli = CliRunner().invoke(app, [
        "predict", "--model", str(demo_bundle_dir), "--input", str(source / "*.csv"),
        "--output", str(tmp_path / "out2"), "--engine", "dask", "--scheduler", client.scheduler.address,
        "--no-hot-issues",
    ])
    assert cli.exit_code == 0, cli.output
    stderr = " ".join(cli.stderr.split())  # the console wraps long temporary paths
    assert "skipped" in stderr and "a.csv, row 5" in stderr
    assert "1 rows skipped" in cli.stdout


def test_undated_rows_take_the_time_of_the_file_before(
    client: Client, demo_bundle_dir: Path, demo_csv: Path, tmp_path: Path
) -> None:
    """Undated rows at the start of a file take the last time of the files before it (as one process
    reading the files in order does), wherever that time falls; the replay's scratch files are removed."""
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    frame = frame.iloc[np.argsort(pd.to_datetime(frame["created_at"]).to_numpy(), kind="stable")]
    files = [frame.iloc[500:], frame.iloc[:250].copy(), frame.iloc[250:500].copy()]  # latest cases first
    files[1].iloc[:30, files[1].columns.get_loc("created_at")] = ""  # lead: takes file 0's last time
    files[1].iloc[100:110, files[1].columns.get_loc("created_at")] = ""  # inside: the row before
    files[2].iloc[-5:, files[2].columns.get_loc("created_at")] = ""  # trail
    paths = []
    for i, part in enumerate(files):
        paths.append(tmp_path / f"p{i}.csv")
        part.to_csv(paths[-1], index=False)
    out = tmp_path / "out"
    predict_dask(client, str(demo_bundle_dir), str(tmp_path / "p*.csv"), out, hot_issues=load_hotspot_config(None))
    got, want = _read_parts(out), _single_process(demo_bundle_dir, paths, hot=True)
    pd.testing.assert_frame_equal(_by_case(got), _by_case(want), check_exact=True)
    assert sorted(p.name for p in out.iterdir()) == [f"part-{i:05d}.parquet" for i in range(3)]
