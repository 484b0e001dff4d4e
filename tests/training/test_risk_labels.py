"""`training.risk_labels`: risk labels kept as ids, joined with the case files they name at training time,
and cases with a risk level but no department training the risk model (never the router).

Every case text here is made up; the "shared data" directory is built in a temporary folder."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.mlflow_env import isolated_mlflow
from training.config import TrainConfig
from training.loading import DataError, load_cases
from training.risk_labels import SharedDataMissing, join_risk_labels, merge_risk_labels, read_label_file
from training.train import TrainResult, train

SOURCE = "hotline/export.csv"
HEADER = ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情"]
# Made-up hotline messages without a department, each with the level an annotator would give it.
CASES = [
    ("H01", "小区地下车库燃气管道破裂",
     "今天早上车库里燃气味很重，物业说管道破裂了但一直没人来修，楼上住着几百户人。", "red", "red-1"),
    ("H02", "桥面开裂车辆照常通行",
     "村口那座老桥桥面裂了一条大缝，桥墩也松动了，每天还有学生走这座桥上学。", "red", "red-1"),
    ("H03", "自来水发黑发臭全村不敢喝",
     "这一周自来水又黑又臭，全村两百多人只能买桶装水，老人孩子喝了拉肚子。", "red", "red-2"),
    ("H04", "培训机构老板跑路",
     "孩子报的培训班突然关门，老板联系不上，八十多个家庭交的学费一分没退。", "red", "red-3"),
    ("H05", "工地拖欠六十名工人工资",
     "我们六十多名工人干了半年没拿到工钱，包工头说开发商没给钱，大家准备一起去讨说法。", "red", "red-3"),
    ("H06", "村民堵路阻止垃圾车",
     "垃圾场臭了三年没人管，今天上百村民把进场的路堵了，双方快要打起来了。", "red", "red-4"),
    ("H07", "楼下烧烤店油烟扰民",
     "楼下烧烤店每晚营业到凌晨，油烟和噪音让整栋楼都没法休息，投诉多次没有结果。", "yellow", "yellow-3"),
    ("H08", "小区停水三天",
     "我们小区已经停水三天了，物业只说在修，家里有老人和小孩，生活很不方便。", "yellow", "yellow-1"),
    ("H09", "养老保险转移迟迟办不下来",
     "我父亲的养老保险转移申请提交三个月了还没有办结，每次去都说再等等。", "yellow", "yellow-1"),
    ("H10", "学校周边网吧接纳未成年人",
     "学校旁边的网吧经常有中学生通宵上网，家长们很担心孩子的身体和学习。", "yellow", "yellow-4"),
    ("H11", "整个小区电梯年久失修",
     "小区十几部电梯经常停运，几百户居民上下楼很困难，业主们希望尽快更换。", "yellow", "yellow-2"),
    ("H12", "道路施工灰尘大",
     "门口道路施工两个月了，灰尘很大，附近居民窗户都不敢开。", "yellow", "yellow-1"),
    ("H13", "请问公积金怎么提取",
     "想咨询一下租房提取公积金需要什么材料，能不能在网上办理。", "green", "green"),
    ("H14", "建议增加公交班次",
     "建议早高峰增加12路公交车的班次，现在每趟都很挤。", "green", "green"),
    ("H15", "感谢社区工作人员",
     "感谢社区网格员帮我家老人办好了高龄补贴，服务很热情。", "green", "green"),
    ("H16", "新生儿医保怎么办理",
     "孩子刚出生，请问新生儿医保在哪里办，需要带户口本吗？", "green", "green"),
    ("H17", "图书馆开放时间咨询",
     "请问市图书馆周一开不开门，节假日的开放时间是几点到几点？", "green", "green"),
    ("H18", "建议公园增设座椅",
     "公园步道旁边座椅太少，老人散步走累了没地方休息，建议多装几张。", "green", "green"),
]


def write_source(data_dir: Path, rows: list[tuple[str, ...]] = CASES) -> Path:
    path = data_dir / SOURCE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(HEADER)
        for i, (case_id, title, body, *_) in enumerate(rows):
            out.writerow([case_id, f"U{i}", title, f"2025-03-{i + 1:02d} 09:00:00", body])
    return path


def write_labels(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["source", "case_id", "risk_level", "criterion", "reason"])
        out.writerows(rows)
    return path


def label_rows(cases: list[tuple[str, ...]] = CASES) -> list[list[str]]:
    return [[SOURCE, case_id, level, criterion, "编造的案例"] for case_id, _, _, level, criterion in cases]


@pytest.fixture()
def shared(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    write_source(data_dir)
    return data_dir


def test_labels_join_their_cases_by_source_and_id(shared: Path, tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.csv", label_rows())
    joined = join_risk_labels([labels], shared)
    assert list(joined["case_id"]) == [c[0] for c in CASES]
    assert list(joined["title"]) == [c[1] for c in CASES]
    assert list(joined["risk_level"]) == [c[3] for c in CASES]
    assert list(joined["criterion"]) == [c[4] for c in CASES]
    assert joined["department"].isna().all()  # the hotline export has no department column
    assert joined["created_at"].notna().all()


def test_an_absent_data_directory_is_its_own_error(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.csv", label_rows())
    with pytest.raises(SharedDataMissing, match="absent"):
        join_risk_labels([labels], tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ([SOURCE, "H01", "orange", "red-1", "x"], "risk_level", "unknown risk level 'orange'"),
        ([SOURCE, "H01", "yellow", "red-1", "x"], "criterion", "does not belong to level yellow"),
        ([SOURCE, "H01", "green", "", "x"], "criterion", "does not belong to level green"),
        (["", "H01", "red", "red-1", "x"], "source", "empty source"),
    ],
)
def test_a_bad_label_names_its_file_row_and_column(tmp_path: Path, row: list[str], column: str, words: str) -> None:
    labels = write_labels(tmp_path / "labels.csv", [label_rows()[1], row])
    with pytest.raises(DataError) as caught:
        read_label_file(labels)
    assert caught.value.row == 3 and caught.value.column == column
    assert words in str(caught.value) and str(labels) in str(caught.value)


def test_a_label_whose_case_is_absent_is_an_error_not_a_silent_drop(shared: Path, tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.csv", [*label_rows()[:3], [SOURCE, "H99", "red", "red-1", "x"]])
    with pytest.raises(DataError, match=r"1 label\(s\) name cases absent .*case_id H99") as caught:
        join_risk_labels([labels], shared)
    assert caught.value.row == 5


def test_a_source_outside_the_data_directory_is_refused(shared: Path, tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.csv", [["../../etc/passwd", "H01", "red", "red-1", "x"]])
    with pytest.raises(DataError, match="must be a path inside the data directory"):
        join_risk_labels([labels], shared)


def test_a_case_labelled_twice_is_an_error(shared: Path, tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.csv", [label_rows()[0], label_rows()[0]])
    with pytest.raises(DataError, match="labelled twice"):
        join_risk_labels([labels], shared)


def test_merge_sets_the_level_of_a_training_copy_and_adds_the_rest(
    shared: Path, tmp_path: Path, demo_csv: Path
) -> None:
    frame = load_cases([demo_csv], require_department=True, training=True).frame
    copy = frame.iloc[0]
    # The export holds a copy of a training case under another id, and a case whose id a training case has.
    taken_id = str(frame["case_id"].iloc[1])
    rows = [("X1", copy["title"], copy["body"], "red", "red-1"), (taken_id, *CASES[12][1:])]
    write_source(shared, [*CASES, *rows])
    labels = write_labels(tmp_path / "labels.csv", label_rows([CASES[0], *rows]))
    merged, report = merge_risk_labels(frame, join_risk_labels([labels], shared))
    assert report.labels == 3 and report.matched == 1 and report.added == 2
    assert merged.loc[0, "risk_level"] == "red" and merged.loc[0, "criterion"] == "red-1"
    assert merged.loc[0, "department"] == copy["department"]  # the router's label stays
    added = merged.iloc[len(frame):]
    assert list(added["case_id"]) == ["H01", f"export:{taken_id}"]  # a taken id is named by its file
    assert added["department"].isna().all()
    assert len(merged) == len(frame) + 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, demo_csv: Path, fast_config: TrainConfig) -> Iterator[
        tuple[TrainResult, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("risk_only")
    # Three copies of each made-up case under new ids and with a changed word, so the risk-only rows can be
    # split into training and held-out parts with every level on both sides.
    rows = [(f"{c[0]}-{k}", f"{c[1]}（{k}）", f"{c[2]}第{k}次反映。", c[3], c[4]) for k in range(3) for c in CASES]
    write_source(root / "data", rows)
    joined = join_risk_labels([write_labels(root / "labels.csv", label_rows(rows))], root / "data")
    (root / "mlflow").mkdir()
    with isolated_mlflow(root / "mlflow"):
        yield train([demo_csv], fast_config, risk_labels=joined), joined


def test_cases_without_a_department_train_the_risk_model_and_never_the_router(
    trained: tuple[TrainResult, pd.DataFrame], demo_csv: Path
) -> None:
    result, joined = trained
    run = mlflow.get_run(result.run_id)
    n_train, n_test = int(run.data.params["data.n_risk_only_train"]), int(run.data.params["data.n_risk_only_test"])
    assert n_train + n_test == len(joined) and n_test > 0
    assert run.data.params["data.risk_labels_added"] == str(len(joined))
    risk = result.bundle.risk
    demo_train = int(run.data.params["data.n_train"])
    assert risk.training_summary_["n_rows"] == demo_train + n_train
    assert set(result.bundle.classes) == set(load_cases([demo_csv], require_department=True).frame["department"])
    assert result.evaluation.metrics["risk_n_eval"] >= n_test  # held-out risk-only cases are evaluated too
