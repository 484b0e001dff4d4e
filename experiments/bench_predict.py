"""Whole-process batch throughput: `triage predict` (routing, risk, hot issues) against a plain routing script.

    .venv/bin/python experiments/bench_predict.py [--model DIR] [--old-root PATH] [--repeats 3]

Why: issue 15 asks `triage predict` with risk and hot issues, as a whole process on the ~15k real TipDM
messages, to reach 1,000 cases/s on idle cores and 2.5x the throughput of a plain jieba TF-IDF + LinearSVC
routing-only script scoring the same file as a whole process in the same run. Whole processes, because a
user waits for the command: imports, model loading and worker start-up count.

In one run, on one input file (every message of the four TipDM files, de-duplicated by id, written as a
canonical CSV in a temporary folder; the shipped demo cases when the shared data is absent, said so):

- ``baseline``: a script (written to the temporary folder) that imports pandas, jieba and scikit-learn,
  loads a pickled ``TfidfVectorizer(jieba words) + LinearSVC`` trained here on the labelled messages,
  scores the file and writes department per case: what a data scientist would write first;
- ``triage``: ``triage predict --model DIR --input FILE --output OUT.csv`` (risk and hot issues on, the
  default workers) with the model in ``--model`` (a bundle folder); without it, one is trained here into a
  throw-away MLflow store with the README's production recipe: the labelled messages, the dev risk file and
  the annotated risk labels (``experiments/risk_labels/train.csv``), so the risk model is the one a city would
  serve, with its criterion head and real bands (about ten minutes; the demo data where the shared data is
  absent). A model trained on the messages alone has a risk model of lexicon guesses whose trees are
  nearly empty, and under-states what scoring costs;
- ``triage_old`` with ``--old-root``: the same command run from another checkout (e.g. a worktree of the
  commit before a change), same model and input.

Each variant runs ``--repeats`` times, interleaved; the median wall time is reported with cases/s and the
ratio to the baseline of the same run. Writes experiments/results/predict.json with the machine (2 shared
cores; load average before and after) and the command. No case text is written outside the temp folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data" / "tipdm2020"
SOURCES = ("messages_labeled.csv", "messages_unlabeled.csv", "messages_with_replies.csv",
           "messages_with_votes_until_2019-06.csv")
DEMO = ROOT / "training" / "demo_data" / "grievances.csv"
#: The production recipe's other inputs (README, "Risk labels kept as ids").
DEV_RISK = ROOT.parent / "shared" / "data" / "risk" / "risk_labels_dev.csv"
RISK_LABELS = ROOT / "experiments" / "risk_labels" / "train.csv"
RESULTS = ROOT / "experiments" / "results" / "predict.json"

BASELINE_SCRIPT = textwrap.dedent('''
    """Plain routing: jieba words, TF-IDF, LinearSVC; read a CSV, write the department of every case."""
    import sys

    import jieba
    import joblib
    import pandas as pd

    model = joblib.load(sys.argv[1])
    cases = pd.read_csv(sys.argv[2], dtype=str, keep_default_na=False)
    text = [" ".join(jieba.lcut(t)) for t in cases["title"] + "。" + cases["body"]]
    out = pd.DataFrame({"case_id": cases["case_id"], "department": model.predict(text)})
    out.to_csv(sys.argv[3], index=False)
''')


def build_input(folder: Path) -> tuple[Path, str, Path | None]:
    """The canonical CSV to score, where it came from, and the labelled file to train on (None: demo)."""
    from training.loading import load_cases

    present = [SHARED / name for name in SOURCES if (SHARED / name).exists()]
    sources = present or [DEMO]
    frame = load_cases(sources).frame
    frame = frame.drop_duplicates("case_id").sort_values("created_at", kind="stable")
    columns = ["case_id", "title", "body", "created_at", "reporter_id"]
    path = folder / "cases.csv"
    frame[columns].to_csv(path, index=False)
    labelled = SHARED / SOURCES[0] if present else None
    return path, ", ".join(str(p) for p in sources), labelled


def train_baseline(folder: Path, labelled: Path | None) -> Path:
    import jieba
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    from training.loading import load_cases

    frame = load_cases([labelled or DEMO], require_department=True, training=True).frame
    # Words joined by spaces, as the scoring script prepares them: nothing custom is pickled.
    text = [" ".join(jieba.lcut(t)) for t in frame["title"].fillna("") + "。" + frame["body"].fillna("")]
    model = make_pipeline(TfidfVectorizer(token_pattern=r"(?u)\S+", ngram_range=(1, 2), sublinear_tf=True,
                                          min_df=2), LinearSVC())
    model.fit(text, frame["department"].astype(str).tolist())
    path = folder / "baseline.joblib"
    joblib.dump(model, path)
    return path


def train_bundle(folder: Path, labelled: Path | None) -> tuple[Path, str]:
    """The bundle folder `triage predict` scores with, and which recipe made it."""
    from training.config import load_config
    from training.risk_labels import SharedDataMissing, join_risk_labels
    from training.train import train

    directory = folder / "model"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
    os.environ["TRIAGE_MLFLOW_ARTIFACTS"] = str(folder / "artifacts")
    data: list[Path] = [labelled or DEMO]
    risk_labels = None
    recipe = "the demo data (default config)"
    if labelled is not None:
        data += [DEV_RISK] if DEV_RISK.exists() else []
        try:
            risk_labels = join_risk_labels([RISK_LABELS], SHARED.parent)
        except SharedDataMissing:
            risk_labels = None
        recipe = ("the production recipe: " + ", ".join(p.name for p in data)
                  + (f" and {len(risk_labels)} annotated risk labels" if risk_labels is not None else ""))
    print(f"training the model to score with on {recipe} (about ten minutes with the risk labels)")
    train(data, load_config(), risk_labels=risk_labels).bundle.save(directory)
    return directory, recipe


def triage_command(root: Path) -> list[str]:
    """The `triage` command as run from checkout ``root`` (its entry module moved once)."""
    module = "command.cli" if (root / "command" / "cli.py").exists() else "training.cli"
    code = f"import sys; sys.path.insert(0, {str(root)!r}); from {module} import app; sys.argv[0] = 'triage'; app()"
    return [sys.executable, "-c", code]


def run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command[:3])}... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="bundle folder (default: trained here)")
    parser.add_argument("--old-root", type=Path, default=None, help="another checkout to run the same command from")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="triage predict --workers (default: its own)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        folder = Path(tmp)
        cases, source, labelled = build_input(folder)
        import pandas as pd

        n = len(pd.read_csv(cases, dtype=str, keep_default_na=False))
        print(f"input: {n} cases from {source}")
        baseline_model = train_baseline(folder, labelled)
        model, recipe = (args.model, None) if args.model else train_bundle(folder, labelled)
        script = folder / "baseline.py"
        script.write_text(BASELINE_SCRIPT, encoding="utf-8")
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        workers = [] if args.workers is None else ["--workers", str(args.workers)]
        variants: dict[str, list[str]] = {
            "baseline": [sys.executable, str(script), str(baseline_model), str(cases), str(folder / "base.csv")],
            "triage": [*triage_command(ROOT), "predict", "--model", str(model), "--input", str(cases),
                       "--output", str(folder / "new.csv"), *workers],
        }
        if args.old_root is not None:
            variants["triage_old"] = [*triage_command(args.old_root.resolve()), "predict", "--model", str(model),
                                      "--input", str(cases), "--output", str(folder / "old.csv"), *workers]
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, command in variants.items():
                times[name].append(run(command, env))
                print(f"  {name}: {times[name][-1]:.1f} s")
        same_departments = None
        if "triage_old" in variants:
            new, old = pd.read_csv(folder / "new.csv"), pd.read_csv(folder / "old.csv")
            numbers = [c for c in new.columns if "probability" in c or "confidence" in c]
            same_departments = bool(new.drop(columns=numbers).equals(old.drop(columns=numbers)))
    results: dict[str, Any] = {}
    base = statistics.median(times["baseline"])
    for name, values in times.items():
        median = statistics.median(values)
        results[name] = {"seconds": [round(v, 2) for v in values], "median_seconds": round(median, 2),
                         "cases_per_second": round(n / median, 1), "throughput_vs_baseline": round(base / median, 3)}
    report = {
        "what": "whole-process batch scoring of one file: triage predict (risk + hot issues) vs plain routing",
        "command": shlex.join([sys.executable, *sys.argv]),
        "input": {"cases": n, "source": source},
        "model": f"trained here on {recipe}" if recipe else str(model),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                    "note": "2 shared cores: absolute times move with the neighbours' load; ratios much less"},
        "repeats": args.repeats,
        "results": results,
        "old_and_new_outputs_equal_but_probabilities": same_departments,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, r in results.items():
        print(f"{name:>11}: median {r['median_seconds']:.1f} s, {r['cases_per_second']:.0f} cases/s, "
              f"{r['throughput_vs_baseline']:.2f}x the baseline")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
