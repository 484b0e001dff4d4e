"""Router benchmark on the real TipDM labeled messages, against a plain TF-IDF + LinearSVC baseline.

    .venv/bin/python experiments/bench_router.py [--data PATH] [--config training/defaults/router.yaml]

Both models are measured in the same run on the same folds: 5-fold stratified cross-validation grouped
by duplicate group (copies of one message never straddle folds), coverage of automatic routing at 0.98
and 0.99 precision (thresholds chosen on one half of the out-of-fold predictions, measured on the other),
training time on the whole set, single-case latency, batch throughput and peak RSS of a fresh process
that loads the model and scores. Writes experiments/results/router.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.text import case_text, init_tokenizer, tokenise  # noqa: E402
from features.vectorizer import as_pairs, split_tokens  # noqa: E402
from models.bundle import TriageBundle  # noqa: E402
from models.router import build_router  # noqa: E402
from models.thresholds import choose_thresholds  # noqa: E402
from training.config import load_config  # noqa: E402
from training.evaluate import crossfit_coverage  # noqa: E402
from training.loading import load_cases  # noqa: E402
from training.predict import default_workers, score_frame  # noqa: E402
from training.splitting import group_folds  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tipdm2020" / "messages_labeled.csv"
RESULTS = ROOT / "experiments" / "results" / "router.json"
console = Console()


def baseline_tokens(cases) -> list[str]:
    """The baseline reads the same normalised, tokenised text: only the model differs."""
    return [" ".join(tokenise(case_text(t, b))) for t, b in as_pairs(cases)]


class Baseline:
    """Plain TF-IDF over jieba words + LinearSVC (no calibration), the reference point."""

    def __init__(self, seed: int) -> None:
        self.pipe = Pipeline([
            ("tfidf", TfidfVectorizer(tokenizer=split_tokens, token_pattern=None, lowercase=False)),
            ("svc", LinearSVC(random_state=seed)),
        ])

    def fit(self, cases, y):
        self.pipe.fit(baseline_tokens(cases), y)
        self.classes_ = list(self.pipe.classes_)
        return self

    def scores(self, cases) -> np.ndarray:
        return self.pipe.decision_function(baseline_tokens(cases))

    def route_one(self, title: str, body: str) -> str:
        return self.pipe.predict(baseline_tokens([(title, body)]))[0]


def measure_speed(route_one, route_batch, pairs: list[tuple[str, str]]) -> dict[str, float]:
    for t, b in pairs[:20]:
        route_one(t, b)
    lat = []
    for t, b in pairs[:1000]:
        start = time.perf_counter()
        route_one(t, b)
        lat.append(time.perf_counter() - start)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        route_batch(pairs)
        runs.append(len(pairs) / (time.perf_counter() - start))
    return {
        "latency_p50_ms": float(np.median(lat) * 1000),
        "latency_p99_ms": float(np.percentile(lat, 99) * 1000),
        "batch_cases_per_s": float(np.median(runs)),
    }


RSS_PROBE = """
import sys, joblib
sys.path.insert(0, {root!r})
from features.text import init_tokenizer
init_tokenizer()
model = joblib.load({path!r})
pairs = joblib.load({pairs_path!r})
{score}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def peak_rss_mb(obj: object, pairs: list[tuple[str, str]], score: str) -> float:
    """Peak RSS of a fresh process that loads the model and scores the cases (what a server holds)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, pairs_path = Path(tmp) / "model.joblib", Path(tmp) / "pairs.joblib"
        joblib.dump(obj, path)
        joblib.dump(pairs, pairs_path)
        code = RSS_PROBE.format(root=str(ROOT), path=str(path), pairs_path=str(pairs_path), score=score)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=ROOT / "training" / "defaults" / "router.yaml")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.exists():
        console.print(f"[yellow]skipped:[/] {args.data} is absent (the shared data is not on this machine)")
        return 0

    config = load_config(args.config)
    init_tokenizer()
    loaded = load_cases([args.data], require_department=True, training=True)
    frame = loaded.frame
    y = np.asarray(frame["department"], dtype=object)
    groups = np.asarray(frame["group_key"], dtype=object)
    X = frame[["title", "body"]]
    classes = sorted(set(y))
    cv = group_folds(frame, args.folds, config.seed)
    folds = list(cv.split(np.zeros(len(frame)), y, groups))
    console.print(f"{args.data.name}: {loaded.report.summary()['rows_read']} rows, {len(frame)} after merging "
                  f"duplicates; {len(folds)}-fold grouped stratified CV", highlight=False)

    results: dict[str, dict[str, float]] = {}
    models = {
        "router": lambda: build_router(config.features, config.classifier, config.seed),
        "baseline_tfidf_linearsvc": lambda: Baseline(config.seed),
    }
    fold0_models: dict[str, object] = {}
    for name, make in models.items():
        scores = np.zeros((len(frame), len(classes)))
        fold_times = []
        for k, (tr, te) in enumerate(folds):
            start = time.perf_counter()
            model = make().fit(X.iloc[tr], y[tr])
            fold_times.append(time.perf_counter() - start)
            s = model.predict_proba(X.iloc[te]) if name == "router" else model.scores(X.iloc[te])
            cols = [classes.index(c) for c in model.classes_]
            scores[np.ix_(te, cols)] = s
            if k == 0:
                fold0_models[name] = model
            console.print(f"  {name} fold {k + 1}/{len(folds)}: fit {fold_times[-1]:.1f}s", highlight=False)
        pred = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
        r: dict[str, float] = {
            "cv_macro_f1": float(f1_score(y, pred, average="macro")),
            "cv_accuracy": float(accuracy_score(y, pred)),
            "cv_fold_fit_s_median": float(np.median(fold_times)),
        }
        for target in (0.98, 0.99):
            cov, prec = crossfit_coverage(y, scores, classes, target, config.seed,
                                          min_threshold=0.0 if name == "router" else -np.inf)
            r[f"coverage_at_{target}"] = cov
            r[f"precision_of_routed_at_{target}"] = prec
        start = time.perf_counter()
        make().fit(X, y)
        r["train_full_s"] = time.perf_counter() - start
        results[name] = r

    # Speed and memory on the fold-0 models, scoring fold-0's held-out cases.
    held_out = X.iloc[folds[0][1]]
    pairs = as_pairs(held_out)
    router = fold0_models["router"]
    oof = router.predict_proba(held_out)
    bundle = TriageBundle(router, choose_thresholds(y[folds[0][1]], oof, list(router.classes_), 0.98), 0.98)
    base = fold0_models["baseline_tfidf_linearsvc"]
    results["router"] |= measure_speed(bundle.route_one, bundle.route, pairs)
    # Batch scoring as `triage predict` does it: all cases in chunks over worker processes (the model sent
    # once to each), pool start-up included; the same call with one process in the same run as reference.
    everything = frame[["case_id", "title", "body"]]
    workers = default_workers()
    for n_workers in (1, workers):
        runs = []
        for _ in range(2):
            start = time.perf_counter()
            score_frame(bundle, everything, workers=n_workers)
            runs.append(len(everything) / (time.perf_counter() - start))
        results["router"][f"file_scoring_cases_per_s_{n_workers}_workers"] = float(np.median(runs))
    results["baseline_tfidf_linearsvc"] |= measure_speed(base.route_one, lambda p: base.scores(p), pairs)
    results["router"]["peak_rss_mb"] = peak_rss_mb(
        bundle, pairs, "model.route(pairs)\nfor t, b in pairs[:200]:\n    model.route_one(t, b)"
    )
    results["baseline_tfidf_linearsvc"]["peak_rss_mb"] = peak_rss_mb(
        base.pipe, pairs,
        "from features.text import case_text, tokenise\n"
        "model.decision_function([' '.join(tokenise(case_text(t, b))) for t, b in pairs])",
    )

    ratios = {k: results["router"][k] / results["baseline_tfidf_linearsvc"][k]
              for k in results["router"] if k in results["baseline_tfidf_linearsvc"]
              and results["baseline_tfidf_linearsvc"][k]}
    report = {
        "data": str(args.data.name),
        "rows_read": loaded.report.summary()["rows_read"],
        "cases_after_dedup": len(frame),
        "protocol": f"{len(folds)}-fold StratifiedGroupKFold by duplicate group, seed {config.seed}",
        "config": config.model_dump(mode="json"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count()},
        "bench_process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "results": results,
        "router_over_baseline": ratios,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")

    table = Table(title=f"router vs baseline on {args.data.name} ({len(frame)} cases)")
    table.add_column("figure")
    table.add_column("router", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    for key in results["router"]:
        b = results["baseline_tfidf_linearsvc"].get(key)
        table.add_row(key, f"{results['router'][key]:.4g}", "" if b is None else f"{b:.4g}",
                      f"{ratios[key]:.3g}" if key in ratios else "")
    console.print(table)
    console.print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
