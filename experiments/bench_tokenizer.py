"""jieba vs rjieba as the word segmenter: same tokens? same router? how much faster? (issue 15).

    .venv/bin/python experiments/bench_tokenizer.py [--data PATH] [--config training/defaults/router.yaml]

On the TipDM labelled messages (or the demo data where they are absent, says so), with the domain user
dictionary loaded in both: the share of texts segmented identically; segmentation throughput of each
(texts/s, median of 3 passes over every normalised case text, cache bypassed); and the router's 5-fold
cross-validation (grouped by duplicate group, the same folds) trained and scored with each segmenter:
macro-F1, accuracy and how many out-of-fold labels differ. rjieba becomes the default only if its
macro-F1 is within 0.002 of jieba's. Writes experiments/results/tokenizer.json.
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
from sklearn.metrics import accuracy_score, f1_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features import tokenizer  # noqa: E402
from features.text import case_text  # noqa: E402
from models.router import build_router  # noqa: E402
from training.config import load_config  # noqa: E402
from training.loading import load_cases  # noqa: E402
from training.splitting import group_folds  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tipdm2020" / "messages_labeled.csv"
DEMO_DATA = ROOT / "training" / "demo_data" / "grievances.csv"
RESULTS = ROOT / "experiments" / "results" / "tokenizer.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=ROOT / "training" / "defaults" / "router.yaml")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    data, note = args.data, None
    if not data.exists():
        data, note = DEMO_DATA, f"{args.data} is absent: measured on the shipped demo data"
        print(note)
    config = load_config(args.config)
    frame = load_cases([data], require_department=True, training=True).frame
    frame = frame[frame["department"].notna()].reset_index(drop=True)
    texts = [case_text(t, b) for t, b in zip(frame["title"], frame["body"], strict=True)]
    y = np.asarray(frame["department"], dtype=object)
    folds = list(group_folds(frame, 5, config.seed).split(frame, y, np.asarray(frame["group_key"], dtype=object)))
    segmented, speed, cv = {}, {}, {}
    for name in tokenizer.NAMES:
        tokenizer.use(name)
        segment = tokenizer.segmenter()
        times = []
        for _ in range(3):
            started = time.perf_counter()
            out = [segment(t) for t in texts]
            times.append(time.perf_counter() - started)
        segmented[name], speed[name] = out, round(len(texts) / statistics.median(times), 1)
        pred = np.empty(len(frame), dtype=object)
        started = time.perf_counter()
        for fit_idx, test_idx in folds:
            router = build_router(config.features, config.classifier, config.seed)
            router.fit(frame.iloc[fit_idx][["title", "body"]], y[fit_idx])
            proba = router.predict_proba(frame.iloc[test_idx][["title", "body"]])
            pred[test_idx] = np.asarray(router.classes_)[proba.argmax(axis=1)]
        cv[name] = {"macro_f1": round(float(f1_score(y, pred, average="macro")), 4),
                    "accuracy": round(float(accuracy_score(y, pred)), 4), "pred": pred,
                    "seconds": round(time.perf_counter() - started, 1)}
        print(name, speed[name], "texts/s", {k: v for k, v in cv[name].items() if k != "pred"}, flush=True)
    tokenizer.use("jieba")
    same = sum(a == b for a, b in zip(segmented["jieba"], segmented["rjieba"], strict=True))
    gap = round(cv["rjieba"]["macro_f1"] - cv["jieba"]["macro_f1"], 4)
    result = {
        "data": {"file": str(data), "cases": len(frame), "note": note},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "identical_segmentation": round(same / len(texts), 5),
        "segmentation_texts_per_second": speed,
        "speedup": round(speed["rjieba"] / speed["jieba"], 2),
        "cv": {k: {m: v for m, v in r.items() if m != "pred"} for k, r in cv.items()},
        "oof_labels_differing": int(np.sum(cv["jieba"]["pred"] != cv["rjieba"]["pred"])),
        "rjieba_minus_jieba_macro_f1": gap,
        "rjieba_within_0.002": abs(gap) <= 0.002,
        "tokenizers": {n: tokenizer.spec(n).as_dict() for n in tokenizer.NAMES},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("identical_segmentation", "speedup", "cv", "oof_labels_differing",
                                               "rjieba_minus_jieba_macro_f1")}, ensure_ascii=False))


if __name__ == "__main__":
    main()
