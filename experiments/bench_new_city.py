"""A new city's taxonomy with rare departments: the router against a plain character TF-IDF + LinearSVC
trained on the same rows (issue 14, item 1).

    .venv/bin/python experiments/bench_new_city.py [--data PATH] [--draws 5] [--config training/defaults/router.yaml]

Each draw is a "new city" export of about 1,000 cases cut from the real TipDM labelled messages: four
departments with about 230 cases each and three rare ones with 8, 11 and 14 cases (different cases and a
different choice of rare departments per draw). On each draw both models are scored by the same 5-fold
cross-validation, stratified and grouped by duplicate group (copies of one message never straddle
folds): macro-F1 and accuracy over all departments, and the recall of the rare ones. The router is the
project's (`models.router.build_router`, the config's features and calibrated classifier, fewer
calibration folds where a department is small); the baseline is sklearn's `TfidfVectorizer(analyzer=
"char", ngram_range=(1, 3), sublinear_tf=True)` + `LinearSVC()` on the same normalised text. Medians over
draws and the per-draw figures go to experiments/results/new_city.json. Where the shared data is absent
the run says so and stops (the demo file is too small to cut a 1,000-case city from).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.text import case_text, init_tokenizer  # noqa: E402
from features.vectorizer import as_pairs  # noqa: E402
from models.router import build_router  # noqa: E402
from training.config import load_config  # noqa: E402
from training.loading import load_cases  # noqa: E402
from training.splitting import group_folds  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tipdm2020" / "messages_labeled.csv"
RESULTS = ROOT / "experiments" / "results" / "new_city.json"
RARE_SIZES = (8, 11, 14)
COMMON_SIZE = 230


def baseline() -> object:
    return make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True), LinearSVC())


def texts(frame) -> list[str]:
    return [case_text(t, b) for t, b in as_pairs(frame[["title", "body"]])]


def city(frame, rng: np.random.Generator):
    """One new city: three departments made rare, four kept at about `COMMON_SIZE` cases."""
    departments = sorted(frame["department"].unique())
    rare = list(rng.choice(departments, size=len(RARE_SIZES), replace=False))
    parts = []
    for department in departments:
        rows = frame[frame["department"] == department]
        n = RARE_SIZES[rare.index(department)] if department in rare else COMMON_SIZE
        parts.append(rows.sample(n=min(n, len(rows)), random_state=int(rng.integers(1 << 31))))
    return pd.concat(parts).reset_index(drop=True), rare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=ROOT / "training" / "defaults" / "router.yaml")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.exists():
        print(f"{args.data} is absent: this benchmark needs the shared TipDM data; nothing measured")
        return
    init_tokenizer()
    config = load_config(args.config)
    frame = load_cases([args.data], require_department=True, training=True).frame
    frame = frame[frame["department"].notna()].reset_index(drop=True)
    rng = np.random.default_rng(config.seed)
    started = time.perf_counter()
    draws = []
    for draw in range(args.draws):
        cases, rare = city(frame, rng)
        y = np.asarray(cases["department"], dtype=object)
        scores: dict[str, dict[str, list]] = {"router": {"pred": [], "true": []}, "baseline": {"pred": [], "true": []}}
        groups = np.asarray(cases["group_key"], dtype=object)
        for train_idx, test_idx in group_folds(cases, 5, config.seed + draw).split(cases, y, groups):
            train, test = cases.iloc[train_idx], cases.iloc[test_idx]
            router = build_router(config.features, config.classifier, config.seed)
            router.fit(train[["title", "body"]], y[train_idx])
            scores["router"]["pred"] += list(np.asarray(router.classes_)[router.predict_proba(test[["title", "body"]])
                                                                          .argmax(axis=1)])
            plain = baseline().fit(texts(train), y[train_idx])
            scores["baseline"]["pred"] += list(plain.predict(texts(test)))
            for model in scores:
                scores[model]["true"] += list(y[test_idx])
        row = {"draw": draw, "cases": len(cases), "rare_departments": {d: RARE_SIZES[i] for i, d in enumerate(rare)}}
        for model, s in scores.items():
            row[model] = {
                "macro_f1": round(float(f1_score(s["true"], s["pred"], average="macro", zero_division=0)), 4),
                "accuracy": round(float(accuracy_score(s["true"], s["pred"])), 4),
                "rare_recall": round(float(recall_score(s["true"], s["pred"], labels=rare, average="macro",
                                                        zero_division=0)), 4),
            }
        draws.append(row)
        print(json.dumps(row, ensure_ascii=False))
    medians = {model: {k: round(statistics.median(d[model][k] for d in draws), 4)
                       for k in ("macro_f1", "accuracy", "rare_recall")} for model in ("router", "baseline")}
    result = {
        "data": {"file": str(args.data), "draws": args.draws, "common_size": COMMON_SIZE, "rare_sizes": RARE_SIZES},
        "protocol": "5-fold CV per draw, stratified and grouped by duplicate group; the same folds for both models",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "seconds": round(time.perf_counter() - started, 1),
        "median": medians,
        "router_minus_baseline_macro_f1": [round(d["router"]["macro_f1"] - d["baseline"]["macro_f1"], 4)
                                           for d in draws],
        "draws": draws,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"median": medians, "seconds": result["seconds"]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
