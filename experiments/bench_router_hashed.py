"""What the hashed, streamed router (`classifier.kind: hashed_sgd`) costs against the default router.

    .venv/bin/python experiments/bench_router_hashed.py [--data PATH ...] [--folds 5]

For each data set (the TipDM labeled messages when present, and the shipped demo data), both routers are
measured in the same run on the same folds as experiments/bench_router.py: stratified K-fold grouped by
duplicate group, seed from the config. Reported per router: out-of-fold macro-F1 and accuracy, coverage of
automatic routing at 0.98 precision (thresholds crossfitted as bench_router.py does), median fold fit
time, and, in a fresh process per router, the time to fit on the whole set and the peak RSS (VmHWM) of
that process, with its RSS after loading the data (so the fit's own share is their difference).

Inside one run jieba's token cache is enlarged so that folds after the first do not tokenise again; fold
fit times are therefore "warm" for both routers alike. The fresh-process fits are cold and include
tokenisation. Writes experiments/results/router_hashed.json. A data file that is absent is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import accuracy_score, f1_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import features.text  # noqa: E402
from features.text import init_tokenizer  # noqa: E402
from models.router import build_router  # noqa: E402
from training.config import TrainConfig, load_config  # noqa: E402
from training.evaluate import crossfit_coverage  # noqa: E402
from training.loading import load_cases  # noqa: E402
from training.splitting import group_folds  # noqa: E402

REAL_DATA = ROOT.parent / "shared" / "data" / "tipdm2020" / "messages_labeled.csv"
DEMO_DATA = ROOT / "training" / "demo_data" / "grievances.csv"
CONFIGS = {
    "default": ROOT / "training" / "defaults" / "router.yaml",
    "hashed_sgd": ROOT / "experiments" / "router-hashed.yaml",
}
RESULTS = ROOT / "experiments" / "results" / "router_hashed.json"
console = Console()

FIT_PROBE = """
import sys, time
sys.path.insert(0, {root!r})
import numpy as np
from features.text import init_tokenizer
from models.router import build_router
from training.config import load_config
from training.loading import load_cases

def status(key):
    return int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith(key))) / 1024

init_tokenizer()
config = load_config({config!r})
frame = load_cases([{data!r}], require_department=True, training=True).frame
after_load = status("VmRSS:")
start = time.perf_counter()
build_router(config.features, config.classifier, config.seed).fit(
    frame[["title", "body"]], np.asarray(frame["department"], dtype=object))
print(time.perf_counter() - start, after_load, status("VmHWM:"))
"""


def fresh_fit(config: Path, data: Path) -> dict[str, float]:
    """Fit on the whole set in a new process: (cold) fit seconds, RSS after loading, peak RSS (MB)."""
    code = FIT_PROBE.format(root=str(ROOT), config=str(config), data=str(data))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, after_load, peak = (float(v) for v in out.stdout.strip().splitlines()[-1].split())
    return {"full_fit_s_cold": seconds, "rss_after_load_mb": after_load, "peak_rss_mb": peak,
            "fit_rss_increase_mb": peak - after_load}


def bench(data: Path, configs: dict[str, TrainConfig], n_folds: int) -> dict[str, object]:
    frame = load_cases([data], require_department=True, training=True).frame
    y = np.asarray(frame["department"], dtype=object)
    groups = np.asarray(frame["group_key"], dtype=object)
    X = frame[["title", "body"]]
    classes = sorted(set(y))
    seed = configs["default"].seed
    folds = list(group_folds(frame, n_folds, seed).split(np.zeros(len(frame)), y, groups))
    console.print(f"{data.name}: {len(frame)} cases, {len(folds)}-fold grouped stratified CV", highlight=False)
    out: dict[str, object] = {"cases": len(frame), "protocol": f"{len(folds)}-fold StratifiedGroupKFold by "
                              f"duplicate group, seed {seed}", "results": {}}
    for name, config in configs.items():
        proba = np.zeros((len(frame), len(classes)))
        times = []
        for k, (tr, te) in enumerate(folds):
            start = time.perf_counter()
            model = build_router(config.features, config.classifier, config.seed).fit(X.iloc[tr], y[tr])
            times.append(time.perf_counter() - start)
            cols = [classes.index(c) for c in model.classes_]
            proba[np.ix_(te, cols)] = model.predict_proba(X.iloc[te])
            console.print(f"  {name} fold {k + 1}/{len(folds)}: fit {times[-1]:.1f}s", highlight=False)
        pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        coverage, precision = crossfit_coverage(y, proba, classes, 0.98, seed, min_threshold=0.0)
        r: dict[str, float] = {
            "cv_macro_f1": float(f1_score(y, pred, average="macro")),
            "cv_accuracy": float(accuracy_score(y, pred)),
            "coverage_at_0.98": coverage,
            "precision_of_routed_at_0.98": precision,
            "cv_fold_fit_s_median_warm": float(np.median(times)),
        }
        r |= fresh_fit(CONFIGS[name], data)
        out["results"][name] = r  # type: ignore[index]
    res = out["results"]
    out["hashed_minus_default"] = {  # type: ignore[assignment]
        k: res["hashed_sgd"][k] - res["default"][k] for k in res["default"]  # type: ignore[index]
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", help="labeled file(s); default: TipDM and demo")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    files = args.data or [REAL_DATA, DEMO_DATA]
    present = [f for f in files if f.exists()]
    for f in files:
        if not f.exists():
            console.print(f"[yellow]skipped:[/] {f} is absent (the shared data is not on this machine)")
    if not present:
        return 0
    configs = {name: load_config(path) for name, path in CONFIGS.items()}
    init_tokenizer()
    # A cache for every text of the run (both routers, all folds); see the module docstring.
    features.text._tokenise_cached = lru_cache(maxsize=None)(features.text._tokenise_cached.__wrapped__)
    report: dict[str, object] = {
        "configs": {name: str(path.relative_to(ROOT)) for name, path in CONFIGS.items()},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_at_start": os.getloadavg()},
        "data": {},
    }
    for data in present:
        report["data"][data.name] = bench(data, configs, args.folds)  # type: ignore[index]
    report["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")

    for name, block in report["data"].items():  # type: ignore[union-attr]
        table = Table(title=f"default vs hashed_sgd router on {name} ({block['cases']} cases)")
        for col in ("figure", "default", "hashed_sgd", "hashed - default"):
            table.add_column(col, justify="left" if col == "figure" else "right")
        for key, value in block["results"]["default"].items():
            table.add_row(key, f"{value:.4g}", f"{block['results']['hashed_sgd'][key]:.4g}",
                          f"{block['hashed_minus_default'][key]:+.4g}")
        console.print(table)
    console.print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
