"""Assemble the annotators' label sheets into the label files kept in the repository, with the agreement
figures of the second reading.

    .venv/bin/python experiments/risk_labels/assemble.py --annotations /tmp/risklabel/out \\
        [--adjudication /tmp/risklabel/out/adjudication.csv] [--disagreements /tmp/risklabel/disagreements.jsonl]
    .venv/bin/python experiments/risk_labels/assemble.py --annotations /tmp/risklabel/out --append train4 train5

Input (outside the repository; the annotators' output, ids + labels only): ``blind-NN.csv``,
``train-NN.csv``, ``train2-NN.csv`` ... (first readings of each draw, one annotator per slice),
``second-NN.csv`` (independent second readings of a random part of them), and optionally
``adjudication.csv``: the level and criterion decided for each case the two readings put at different
levels, by re-reading the rubric with both readings side by side. Writes beside this file:

- ``train.csv``, ``blind.csv``: source (path under ``../shared/data``), case_id, risk_level, criterion,
  reason, annotator, adjudicated: the labels training and the benchmark join with the shared data;
- ``second_reading.csv``: the second readings as given;
- ``agreement.json``: Cohen's kappa (levels, unweighted and linear-weighted), raw agreement, the confusion
  of first against second reading, per split and pooled.

``--append PREFIX ...`` adds the first readings of later draws (``train4-NN.csv`` ...) to ``train.csv`` as
they are, without re-reading the earlier annotators' sheets (which need not still exist): the agreement
figures of the second reading stand, the label counts are recomputed.

``--disagreements FILE`` (outside the repository) writes the adjudicator's sheet: each disagreement with
its text and both readings, in random order and without saying which reading was first.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, confusion_matrix

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from sample_cases import BODY_CHARS, POOL_FILES  # noqa: E402

LEVELS = ["red", "yellow", "green"]
KEY = ["source", "case_id"]


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["source"] = frame["source"].map(lambda s: POOL_FILES.get(s, s))
    frame["case_id"] = frame["case_id"].str.strip()
    frame["reason"] = frame["reason"].str.replace(r"\s+", " ", regex=True).str.strip()
    return frame


def _readings(directory: Path, prefix: str) -> pd.DataFrame:
    parts = []
    for path in sorted(directory.glob(f"{prefix}-*.csv")):
        frame = _read(path)
        frame["annotator"] = path.stem
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*KEY, "risk_level"])


def drop_cases_without_text(labels: pd.DataFrame, data_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Labels of cases whose source row has neither title nor body are dropped (no model or service can
    score such a case; the loader rejects it); their ids are returned to be reported."""
    keep = np.ones(len(labels), dtype=bool)
    for source, part in labels.groupby("source"):
        raw = pd.read_csv(data_dir / source, dtype=str, keep_default_na=False)
        text = (raw["留言主题"].str.strip() + raw["留言详情"].str.strip()).groupby(raw["留言编号"].str.strip()).first()
        empty = np.array([not text.get(c, "x") for c in part["case_id"]], dtype=bool)
        keep[np.flatnonzero(labels["source"] == source)[empty]] = False
    dropped = [f"{s}:{c}" for s, c in zip(labels.loc[~keep, "source"], labels.loc[~keep, "case_id"], strict=True)]
    return labels[keep].reset_index(drop=True), dropped


def agreement(first: pd.Series, second: pd.Series) -> dict[str, object]:
    a, b = first.to_numpy(), second.to_numpy()
    ordinal = {"green": 0, "yellow": 1, "red": 2}
    return {
        "n": len(a),
        "raw_agreement": round(float((a == b).mean()), 4),
        "cohen_kappa": round(float(cohen_kappa_score(a, b, labels=LEVELS)), 4),
        "cohen_kappa_linear_weighted": round(float(cohen_kappa_score(
            [ordinal[x] for x in a], [ordinal[x] for x in b], weights="linear")), 4),
        "red_vs_not_kappa": round(float(cohen_kappa_score(a == "red", b == "red")), 4),
        "confusion_first_rows_second_columns": {
            "labels": LEVELS, "matrix": confusion_matrix(a, b, labels=LEVELS).tolist()},
    }


COLUMNS = [*KEY, "risk_level", "criterion", "reason", "annotator", "adjudicated"]


def _label_counts(labels: pd.DataFrame) -> dict[str, object]:
    return {
        "levels": labels["risk_level"].value_counts().reindex(LEVELS, fill_value=0).astype(int).to_dict(),
        "criteria": labels["criterion"].value_counts().sort_index().astype(int).to_dict(),
        "sources": labels["source"].value_counts().astype(int).to_dict(),
    }


def append_draws(directory: Path, prefixes: list[str], data_dir: Path) -> int:
    """Add later training draws to train.csv; every case must be in assignment.csv's train split, once."""
    assignment = pd.read_csv(HERE / "assignment.csv", dtype=str, keep_default_na=False)
    assignment["source"] = assignment["source"].map(lambda s: POOL_FILES.get(s, s))
    train = pd.read_csv(HERE / "train.csv", dtype=str, keep_default_na=False)
    new = pd.concat([_readings(directory, p) for p in prefixes], ignore_index=True)
    new = new.merge(assignment[[*KEY, "split", "slice"]], on=KEY, how="left", validate="one_to_one")
    wrong = new[(new["split"] != "train") | (new["slice"] != new["annotator"])]
    if len(wrong):
        print(f"{len(wrong)} labelled cases are not their slice's training cases in assignment.csv")
        return 2
    expected = assignment[assignment["slice"].str.startswith(tuple(f"{p}-" for p in prefixes))]
    if len(expected) != len(new):
        print(f"{len(expected) - len(new)} drawn cases of {prefixes} have no label")
        return 2
    already = new.merge(train[KEY], on=KEY)
    if len(already):
        print(f"{len(already)} cases are labelled already; nothing appended")
        return 2
    new, empty = drop_cases_without_text(new, data_dir)
    new["adjudicated"] = False
    merged = pd.concat([train, new[COLUMNS].astype(str)], ignore_index=True).sort_values(KEY)
    merged[COLUMNS].to_csv(HERE / "train.csv", index=False)
    figures = json.loads((HERE / "agreement.json").read_text("utf-8"))
    figures["label_counts"]["train"] = _label_counts(merged)
    figures["dropped_no_title_and_no_body"] = [*figures.get("dropped_no_title_and_no_body", []), *empty]
    figures.setdefault("later_draws_without_second_reading", []).extend(sorted(prefixes))
    (HERE / "agreement.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(f"appended {len(new)} labels ({len(empty)} without text dropped): {_label_counts(new)['levels']}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, required=True)
    parser.add_argument("--adjudication", type=Path)
    parser.add_argument("--disagreements", type=Path)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--append", nargs="+", metavar="PREFIX", help="add these later draws to train.csv")
    args = parser.parse_args()
    if args.append:
        return append_draws(args.annotations, args.append, args.data_dir)

    assignment = pd.read_csv(HERE / "assignment.csv", dtype=str, keep_default_na=False)
    assignment["source"] = assignment["source"].map(lambda s: POOL_FILES.get(s, s))
    prefixes = sorted({p.stem.split("-")[0] for p in args.annotations.glob("*-*.csv")})
    first = pd.concat([_readings(args.annotations, p) for p in prefixes if re.fullmatch(r"train\d*|blind", p)],
                      ignore_index=True)
    first = first.merge(assignment[[*KEY, "split"]], on=KEY, how="left", validate="one_to_one")
    if first["split"].isna().any():
        print(f"{int(first['split'].isna().sum())} labelled cases are not in assignment.csv")
        return 2
    first, empty = drop_cases_without_text(first, args.data_dir)
    second = _readings(args.annotations, "second")
    paired = first.merge(second[[*KEY, "risk_level", "criterion", "reason"]], on=KEY, suffixes=("", "_second"),
                         validate="one_to_one")

    figures: dict[str, object] = {"levels": LEVELS}
    for name, part in [("pooled", paired), *paired.groupby("split")]:
        figures[str(name)] = agreement(part["risk_level"], part["risk_level_second"])
        figures[str(name)]["criterion_agreement"] = round(float((part["criterion"] == part["criterion_second"]).mean()),
                                                          4)
    differ = paired[paired["risk_level"] != paired["risk_level_second"]]
    figures["disagreements"] = len(differ)
    figures["dropped_no_title_and_no_body"] = empty

    first["adjudicated"] = False
    if args.adjudication and args.adjudication.is_file():
        decided = _read(args.adjudication).set_index(KEY)
        index = first.set_index(KEY).index
        hit = index.isin(decided.index)
        for column in ("risk_level", "criterion", "reason"):
            first.loc[hit, column] = decided.loc[index[hit], column].to_numpy()
        first.loc[hit, "adjudicated"] = True
        missing = set(map(tuple, differ[KEY].to_numpy())) - set(decided.index)
        figures["adjudicated"] = int(hit.sum())
        figures["adjudication_missing"] = len(missing)
        after = first.set_index(KEY).loc[pd.MultiIndex.from_frame(paired[KEY]), "risk_level"].to_numpy()
        figures["adjudicated_kept_first"] = int(((after == paired["risk_level"].to_numpy())
                                                 & (paired["risk_level"] != paired["risk_level_second"]).to_numpy())
                                                .sum())
    figures["label_counts"] = {split: _label_counts(part) for split, part in first.groupby("split")}

    for split, part in first.groupby("split"):
        part.sort_values(KEY)[COLUMNS].to_csv(HERE / f"{split}.csv", index=False)
    second_out = second.merge(assignment[[*KEY, "split"]], on=KEY, how="left")
    second_out.sort_values(KEY)[[*KEY, "split", "risk_level", "criterion", "reason"]].to_csv(
        HERE / "second_reading.csv", index=False)
    (HERE / "agreement.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(json.dumps({k: figures[k] for k in ("pooled", "disagreements")}, ensure_ascii=False, indent=1))

    if args.disagreements:
        if args.disagreements.resolve().is_relative_to(ROOT):
            print("--disagreements must be outside the repository (the sheet holds case text)")
            return 2
        rng = np.random.default_rng(7)
        texts = {}
        for source in differ["source"].unique():
            raw = pd.read_csv(args.data_dir / source, dtype=str, keep_default_na=False)
            texts[source] = raw.drop_duplicates("留言编号").set_index("留言编号")
        with open(args.disagreements, "w", encoding="utf-8") as out:
            for row in differ.itertuples():
                case = texts[row.source].loc[row.case_id]
                readings = [
                    {"risk_level": row.risk_level, "criterion": row.criterion, "reason": row.reason},
                    {"risk_level": row.risk_level_second, "criterion": row.criterion_second,
                     "reason": row.reason_second},
                ]
                if rng.random() < 0.5:
                    readings.reverse()
                out.write(json.dumps({
                    "source": row.source, "case_id": row.case_id, "title": case["留言主题"].strip(),
                    "body": " ".join(case["留言详情"].split())[:BODY_CHARS], "reading_A": readings[0],
                    "reading_B": readings[1]}, ensure_ascii=False) + "\n")
        print(f"wrote {len(differ)} disagreements to {args.disagreements}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
