"""Risk-model benchmark on a blind set nobody read while building, against the cue rules alone.

    .venv/bin/python experiments/bench_risk.py [--data-dir ../shared/data] [--config training/defaults/router.yaml]
        [--params '{"text_C": 2.0}'] [--tune] [--router-cache /tmp/router_bench.npz]

About 8 minutes on 2 cores with 11,600 training labels (the text model's fold fits, two processes at a time,
and six router fits are most of it). Writes
experiments/results/risk.json and prints a table. Skips cleanly when the shared data is absent.

Protocol (experiments/risk_labels/PROTOCOL.md says it in full):

- **blind** (``experiments/risk_labels/blind.csv``, 600 real cases): labelled by annotators before any
  model scored them; no developer reads them, no cue, feature, parameter or band is chosen on them. The
  figures this script reports are measured here. Run with ``--tune`` while developing: it never scores the
  blind set and reports out-of-fold figures on the training labels instead.
- **gold for training** (``risk/risk_labels_dev.csv``, 300 cases, read while the lexicon was written;
  ``experiments/risk_labels/train.csv``, 11,600 annotated cases that no developer read): the real labels
  the risk model and its text model learn from; the bands are chosen on their out-of-fold predictions.
- **weak rows**: ``tipdm2020/messages_labeled.csv`` (copies folded) labelled by the cue rules, flagged weak.
  Every labelled-file row that is a copy of any gold or blind case (same id, same dedup / group key, or
  the same first 60 key characters, as the dev bodies are cut at 700 characters) is left out of the weak
  pool; copies of blind cases are left out of the routers' training too.
- **router probabilities** as features, never from a router that saw the case: five folds over the
  labelled file (blind copies removed) give out-of-fold probabilities to its rows and to the gold cases
  that copy them; a sixth router on all of it scores every other case (the blind set included).
- **hot-issue context**: every case's burst statistics at intake, from one time-ordered replay of the
  weak, gold and blind cases together (what `triage train` and `triage predict` compute).
- **variants**: ``model`` (the risk parameters of the config: with this many gold labels the weak rows
  are left out, ``weak_until_real``; the text model learns from the gold labels only), with
  ``--ablations`` also ``with_weak_rows`` (weak rows kept at ``weak_label_weight``), ``text_only`` (the
  text model's level head alone, with bands chosen the same way) and ``rules``
  (`features.risk_cues.rule_risk_level`; no training). Bands are chosen inside `RiskModel.fit` on
  out-of-fold predictions of the gold rows, never on the blind set.
- per rubric criterion, the share of blind cases of that criterion the model puts at its level or above,
  and whether the first reason of a red or yellow case names the annotated criterion.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from rich.console import Console
from rich.table import Table
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features import tokenizer  # noqa: E402
from features.risk_cues import CRITERIA, LEVELS, rule_risk_level  # noqa: E402
from features.text import case_text, init_tokenizer  # noqa: E402
from models.hotspots import HotspotConfig  # noqa: E402
from models.risk import (  # noqa: E402
    RiskModel,
    RiskParams,
    choose_bands,
    criterion_column,
    levels_from_proba,
    risk_features,
    weak_labels,
)
from models.risk.features import _docs  # noqa: E402
from models.risk.model import FORM_FEATURES  # noqa: E402
from models.risk.text_score import text_oof  # noqa: E402
from models.router import build_router  # noqa: E402
from training.config import TrainConfig, load_config  # noqa: E402
from training.loading import load_cases  # noqa: E402
from training.predict import attach_hot_issues  # noqa: E402
from training.risk_labels import join_risk_labels  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
LABELS = ROOT / "experiments" / "risk_labels"
RESULTS = ROOT / "experiments" / "results" / "risk.json"
KEY_PREFIX = 60
FOLDS = 5
console = Console(width=170)


# ---------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------


def _keys(frame: pd.DataFrame) -> list[set[str]]:
    out = []
    for d, g in zip(frame["dedup_key"].astype(str), frame["group_key"].astype(str), strict=True):
        keys = {f"d:{d}", f"g:{g}"}
        if len(d) >= KEY_PREFIX:
            keys.add(f"p:{d[:KEY_PREFIX]}")
        if len(g) >= KEY_PREFIX:
            keys.add(f"q:{g[:KEY_PREFIX]}")
        out.append(keys)
    return out


def copies_of(labeled: pd.DataFrame, cases: pd.DataFrame, same_source: pd.Series | None = None) -> np.ndarray:
    """For each labeled row, the index of the case in ``cases`` it copies (-1 if none): same key, same key
    prefix, or (where ``same_source`` marks cases from the labelled file) the same case id."""
    index: dict[str, int] = {}
    for i, keys in enumerate(_keys(cases)):
        for key in keys:
            index.setdefault(key, i)
    if same_source is not None:
        for i, (cid, same) in enumerate(zip(cases["case_id"].astype(str), same_source, strict=True)):
            if same:
                index.setdefault(f"id:{cid}", i)
    owner = np.full(len(labeled), -1, dtype=np.int64)
    for j, (keys, cid) in enumerate(zip(_keys(labeled), labeled["case_id"].astype(str), strict=True)):
        for key in (*sorted(keys), f"id:{cid}"):
            hit = index.get(key)
            if hit is not None:
                owner[j] = hit
                break
    return owner


def _fit_router(config: TrainConfig, train: pd.DataFrame, score: list[pd.DataFrame]) -> tuple[list[str], list]:
    init_tokenizer()
    router = build_router(config.features, config.classifier, config.seed)
    router.fit(train[["title", "body"]], np.asarray(train["department"], dtype=object))
    return [str(c) for c in router.classes_], [router.predict_proba(s[["title", "body"]]) for s in score]


def router_features(
    config: TrainConfig, labeled: pd.DataFrame, gold: pd.DataFrame, gold_owner: np.ndarray, others: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Router probabilities that never come from a router that saw the case (see the module docstring).

    ``labeled`` has no copy of a blind case; ``gold_owner[j]`` is the gold case that labeled row j copies
    (-1: none). Returns probabilities for the labeled rows, the gold cases and ``others``.
    """
    classes = sorted(set(labeled["department"]))
    cv = StratifiedGroupKFold(FOLDS, shuffle=True, random_state=config.seed)
    folds = list(cv.split(np.zeros(len(labeled)), labeled["department"], labeled["group_key"]))
    jobs = [delayed(_fit_router)(config, labeled.iloc[fit], [labeled.iloc[held]]) for fit, held in folds]
    jobs.append(delayed(_fit_router)(config, labeled, [gold, others]))
    out = Parallel(n_jobs=min(2, os.cpu_count() or 1))(jobs)
    p_lab = np.zeros((len(labeled), len(classes)))
    for (_, held), (fitted, (proba,)) in zip(folds, out[:-1], strict=True):
        p_lab[np.ix_(held, [classes.index(c) for c in fitted])] = proba
    fitted, (p_gold_full, p_other_full) = out[-1]
    cols = [classes.index(c) for c in fitted]
    p_gold = np.zeros((len(gold), len(classes)))
    p_gold[:, cols] = p_gold_full
    p_other = np.zeros((len(others), len(classes)))
    p_other[:, cols] = p_other_full
    for j in np.flatnonzero(gold_owner >= 0):  # a gold case copied in the labeled file: that row's out-of-fold
        p_gold[gold_owner[j]] = p_lab[j]
    return p_lab, p_gold, p_other, classes


# ---------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=list(LEVELS), zero_division=0)
    ay, pay = y != "green", pred != "green"
    return {
        "red_recall": float(r[0]),
        "red_precision": float(p[0]),
        "at_least_yellow_recall": float((ay & pay).sum() / max(1, ay.sum())),
        "at_least_yellow_precision": float((ay & pay).sum() / max(1, pay.sum())),
        "macro_f1": float(f.mean()),
        "accuracy": float((y == pred).mean()),
        "f1": {lvl: float(f[i]) for i, lvl in enumerate(LEVELS)},
        "recall": {lvl: float(r[i]) for i, lvl in enumerate(LEVELS)},
        "precision": {lvl: float(p[i]) for i, lvl in enumerate(LEVELS)},
        "support": {lvl: int(s[i]) for i, lvl in enumerate(LEVELS)},
        "confusion_rows_true_cols_pred_red_yellow_green": confusion_matrix(y, pred, labels=list(LEVELS)).tolist(),
    }


def ranking(y: np.ndarray, p_red: np.ndarray) -> dict[str, float]:
    """How well P(red) ranks the cases whatever the band (the threshold here is an oracle)."""
    red = y == "red"
    order = np.argsort(-p_red, kind="stable")
    tp = np.cumsum(red[order])
    recall, precision = tp / max(1, red.sum()), tp / np.arange(1, len(y) + 1)
    return {
        "red_average_precision": float(average_precision_score(red, p_red)),
        "oracle_red_precision_at_recall_0.90": float(precision[recall >= 0.90].max()),
    }


def per_criterion(criteria: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Per annotated criterion: cases, and the share the model put at the criterion's level or above."""
    order = {"green": 0, "yellow": 1, "red": 2}
    out = {}
    for c in CRITERIA:
        mask = criteria == c
        if mask.any():
            need = order[c.split("-")[0]]
            out[c] = {"n": int(mask.sum()),
                      "recall_at_level": float(np.mean([order[p] >= need for p in pred[mask]])),
                      "recall_exact_level": float(np.mean([order[p] == need for p in pred[mask]]))}
    return out


def reason_checks(results: list, y: np.ndarray, criteria: np.ndarray) -> dict[str, Any]:
    """Whether red / yellow reasons open with a criterion, name the annotated one, and avoid form features."""
    flagged = [i for i, r in enumerate(results) if r.level != "green"]
    opens = [i for i in flagged if r_first(results[i]) == "criterion"]
    right = [i for i in opens if results[i].level == y[i]]
    named = [i for i in right if results[i].reasons[0].criterion == criteria[i]]
    form = sum(1 for i in flagged for r in results[i].reasons if r.kind == "model" and r.feature in FORM_FEATURES)
    return {
        "red_or_yellow_predicted": len(flagged),
        "first_reason_is_a_criterion": len(opens) / max(1, len(flagged)),
        "criterion_matches_annotation_when_level_right": len(named) / max(1, len(right)),
        "form_features_among_red_yellow_reasons": form,
    }


def r_first(result: Any) -> str | None:
    return result.reasons[0].kind if result.reasons else None


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


def load(args: argparse.Namespace) -> dict[str, Any]:
    labeled = load_cases([args.data_dir / "tipdm2020" / "messages_labeled.csv"], require_department=True,
                         training=True).frame
    dev = load_cases([args.data_dir / "risk" / "risk_labels_dev.csv"]).frame
    dev["annotation"] = "dev (read while writing the lexicon)"
    train = join_risk_labels([LABELS / "train.csv"], args.data_dir)
    train["annotation"] = "train (annotated, not read by developers)"
    blind = join_risk_labels([LABELS / "blind.csv"], args.data_dir)
    gold = pd.concat([dev, train], ignore_index=True)
    gold_from_labeled = gold["source_file"].astype(str).str.endswith("messages_labeled.csv")
    blind_from_labeled = blind["source_file"].astype(str).str.endswith("messages_labeled.csv")
    blind_owner = copies_of(labeled, blind, blind_from_labeled)
    labeled = labeled[blind_owner < 0].reset_index(drop=True)
    gold_owner = copies_of(labeled, gold, gold_from_labeled)
    return {"labeled": labeled, "gold": gold, "blind": blind, "gold_owner": gold_owner,
            "blind_copies_removed": int((blind_owner >= 0).sum())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    config = load_config(args.config)
    tokenizer.use(config.tokenizer)  # the segmenter `triage train` would use with this config
    seed = config.seed
    # The risk parameters `triage train` would use with this config, with --params on top.
    params = config.risk.model_copy(update=json.loads(args.params)) if args.params else config.risk
    params = RiskParams.model_validate(params.model_dump())
    data = load(args)
    labeled, gold, blind, gold_owner = data["labeled"], data["gold"], data["blind"], data["gold_owner"]
    y_gold = gold["risk_level"].to_numpy(dtype=object)
    is_dev = gold["annotation"].str.startswith("dev").to_numpy()
    console.print(f"gold: {len(gold)} ({int(is_dev.sum())} dev + {int((~is_dev).sum())} train) "
                  f"{dict(pd.Series(y_gold).value_counts())}; blind: {len(blind)}; labelled file: {len(labeled)} rows "
                  f"({data['blind_copies_removed']} blind copies removed, {int((gold_owner >= 0).sum())} gold copies)",
                  highlight=False)

    t = time.perf_counter()
    weak = labeled[gold_owner < 0].reset_index(drop=True)
    context = pd.concat([weak.assign(part="weak"), gold.assign(part="gold"), blind.assign(part="blind")],
                        ignore_index=True)
    context["case_id"] = [f"{p}:{i}" for p, i in zip(context["part"], range(len(context)), strict=True)]
    context = attach_hot_issues(context, HotspotConfig())
    weak, gold_c, blind_c = (context[context["part"] == p].reset_index(drop=True) for p in ("weak", "gold", "blind"))
    replay_seconds = time.perf_counter() - t

    t = time.perf_counter()
    cache = args.router_cache
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            p_lab, p_gold, p_blind, classes = z["p_lab"], z["p_gold"], z["p_blind"], z["classes"].tolist()
        if (len(p_lab), len(p_gold), len(p_blind)) != (len(labeled), len(gold), len(blind)):
            raise SystemExit(f"{cache} was made for other data; delete it")
        console.print(f"router probabilities read from {cache} (development shortcut)", highlight=False)
    else:
        p_lab, p_gold, p_blind, classes = router_features(config, labeled, gold, gold_owner, blind)
        if cache is not None:
            np.savez(cache, p_lab=p_lab, p_gold=p_gold, p_blind=p_blind, classes=np.asarray(classes))
    router_seconds = time.perf_counter() - t
    p_weak = p_lab[gold_owner < 0]

    t = time.perf_counter()
    X_weak, names = risk_features(weak, p_weak, classes)
    y_weak, flagged = weak_labels(weak.assign(risk_level=None))
    assert flagged.all()
    X_gold, _ = risk_features(gold_c, p_gold, classes)
    texts_weak = [case_text(a, b) for a, b in zip(weak["title"], weak["body"], strict=True)]
    texts_gold = [case_text(a, b) for a, b in zip(gold_c["title"], gold_c["body"], strict=True)]
    features_seconds = time.perf_counter() - t

    X = np.vstack([X_weak, X_gold])
    y = np.concatenate([y_weak, y_gold])
    is_weak = np.r_[np.ones(len(y_weak), bool), np.zeros(len(y_gold), bool)]
    groups = np.concatenate([weak["group_key"].to_numpy(dtype=object), gold_c["group_key"].to_numpy(dtype=object)])
    texts = texts_weak + texts_gold
    criteria = [None] * len(y_weak) + (criterion_column(gold_c) or [None] * len(gold_c))

    variants: dict[str, Any] = {}
    fit_seconds: dict[str, float] = {}
    models: dict[str, RiskModel] = {}
    fits = [("model", params)]
    if args.ablations:
        fits.append(("with_weak_rows", params.model_copy(update={"weak_until_real": 0})))
    for name, p in fits:
        rows = np.arange(len(y))
        t = time.perf_counter()
        models[name] = RiskModel(p).fit_features(
            X[rows], names, y[rows], seed=seed, is_weak=is_weak[rows], groups=groups[rows],
            texts=[texts[i] for i in rows], criteria=[criteria[i] for i in rows],
        )
        fit_seconds[name] = time.perf_counter() - t

    # The text model alone (--ablations): out-of-fold on the gold rows, bands chosen there like RiskModel's.
    if args.ablations:
        t = time.perf_counter()
        codes = np.array([LEVELS.index(v) for v in y_gold])
        text_proba, _, text_scorer = text_oof(
            _docs(texts_gold), codes, np.ones(len(codes)), gold_c["group_key"].to_numpy(dtype=object), seed,
            C=params.text_C, folds=params.text_folds, n_jobs=params.text_jobs,
        )
        text_bands = choose_bands(y_gold, text_proba, params.red_recall_target, params.yellow_recall_target,
                                  params.red_precision_floor)
        fit_seconds["text_only"] = time.perf_counter() - t

    # Development figures: out of fold on the gold rows (what the bands were chosen on), dev and train apart.
    for name, model in models.items():
        labels, oof = model.band_oof_
        pred = levels_from_proba(oof, model.bands_)
        gold_rows = np.arange(len(y_gold))  # band_oof_ covers the real rows in order: the gold rows
        entry = {"bands": model.bands_, "band_report": model.band_report_}
        for part, mask in (("oof_train_annotations", ~is_dev[gold_rows]), ("oof_dev_file", is_dev[gold_rows])):
            entry[part] = {**metrics(labels[mask], pred[mask]), **ranking(labels[mask], oof[mask, 0])}
        variants[name] = {"development": entry}
    if args.ablations:
        text_pred = levels_from_proba(text_proba, text_bands)
        variants["text_only"] = {"development": {"bands": text_bands, **{
            part: {**metrics(y_gold[mask], text_pred[mask]), **ranking(y_gold[mask], text_proba[mask, 0])}
            for part, mask in (("oof_train_annotations", ~is_dev), ("oof_dev_file", is_dev))}}}
    rules_gold = np.array([rule_risk_level(t)[0] for t in texts_gold], dtype=object)
    variants["rules"] = {"development": {part: metrics(y_gold[mask], rules_gold[mask])
                                         for part, mask in (("oof_train_annotations", ~is_dev),
                                                            ("oof_dev_file", is_dev))}}

    report: dict[str, Any] = {
        "protocol": __doc__.split("Protocol (experiments/risk_labels/PROTOCOL.md says it in full):", 1)[1].strip(),
        "seed": seed,
        "risk_params": params.model_dump(mode="json"),
        "data": {
            "gold_dev": int(is_dev.sum()), "gold_train": int((~is_dev).sum()), "blind": len(blind),
            "weak_rows": len(y_weak), "gold_levels": dict(pd.Series(y_gold).value_counts().astype(int)),
            "blind_copies_removed_from_labelled_file": data["blind_copies_removed"],
        },
        "variants": variants,
        "blind_scored": not args.tune,
    }
    if not args.tune:
        y_blind = blind_c["risk_level"].to_numpy(dtype=object)
        c_blind = np.asarray(criterion_column(blind_c), dtype=object)
        texts_blind = [case_text(a, b) for a, b in zip(blind_c["title"], blind_c["body"], strict=True)]
        report["data"]["blind_levels"] = dict(pd.Series(y_blind).value_counts().astype(int))
        report["data"]["blind_criteria"] = dict(pd.Series(c_blind).value_counts().astype(int))
        for name, model in models.items():
            t = time.perf_counter()
            results = model.predict(blind_c, p_blind, classes)
            seconds = time.perf_counter() - t
            pred = np.array([r.level for r in results], dtype=object)
            p_red = np.array([r.probabilities["red"] for r in results])
            variants[name]["blind"] = {**metrics(y_blind, pred), **ranking(y_blind, p_red),
                                       "per_criterion": per_criterion(c_blind, pred),
                                       "reasons": reason_checks(results, y_blind, c_blind),
                                       "predict_seconds_600": round(seconds, 2)}
        if args.ablations:
            text_blind = text_scorer.predict_proba_docs(_docs(texts_blind))
            pred = levels_from_proba(text_blind, text_bands)
            variants["text_only"]["blind"] = {**metrics(y_blind, pred), **ranking(y_blind, text_blind[:, 0]),
                                              "per_criterion": per_criterion(c_blind, pred)}
        rules_blind = np.array([rule_risk_level(t)[0] for t in texts_blind], dtype=object)
        variants["rules"]["blind"] = {**metrics(y_blind, rules_blind), "per_criterion": per_criterion(c_blind,
                                                                                                      rules_blind)}
        m, r = variants["model"]["blind"], variants["rules"]["blind"]
        report["targets"] = {
            "red_recall_ge_0.90": m["red_recall"] >= 0.90,
            "red_precision_ge_0.60": m["red_precision"] >= 0.60,
            "at_least_yellow_recall_ge_0.90": m["at_least_yellow_recall"] >= 0.90,
            "macro_f1_ge_0.75": m["macro_f1"] >= 0.75,
            "beats_rules_by_0.10_red_recall_at_equal_or_better_precision": bool(
                m["red_recall"] - r["red_recall"] >= 0.10 and m["red_precision"] >= r["red_precision"]),
        }
    report["timing_seconds"] = {
        "hot_issue_replay": round(replay_seconds, 1), "routers": round(router_seconds, 1),
        "features": round(features_seconds, 1), **{f"fit_{k}": round(v, 1) for k, v in fit_seconds.items()},
        "total": round(time.perf_counter() - started, 1),
    }
    report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    return report


def print_table(report: dict[str, Any]) -> None:
    where = "blind" if report["blind_scored"] else "development"
    table = Table(title=f"risk levels ({where})")
    for col in ("variant", "figures on", "red recall", "red precision", ">=yellow recall", "macro-F1",
                "confusion (rows true r/y/g, cols pred)"):
        table.add_column(col)
    for name, variant in report["variants"].items():
        parts = [("blind", variant["blind"])] if "blind" in variant else []
        parts += [(f"OOF {k.removeprefix('oof_')}", v) for k, v in variant["development"].items()
                  if k.startswith("oof_")]
        for label, m in parts:
            table.add_row(name, label, f"{m['red_recall']:.3f}", f"{m['red_precision']:.3f}",
                          f"{m['at_least_yellow_recall']:.3f}", f"{m['macro_f1']:.3f}",
                          str(m["confusion_rows_true_cols_pred_red_yellow_green"]))
    console.print(table)
    if "targets" in report:
        console.print(f"targets: {report['targets']}", highlight=False)
        crit = report["variants"]["model"]["blind"]["per_criterion"]
        console.print("model, blind, per criterion (n, share at its level or above): "
                      + ", ".join(f"{c} {v['n']} {v['recall_at_level']:.2f}" for c, v in crit.items()),
                      highlight=False)
        console.print(f"reasons: {report['variants']['model']['blind']['reasons']}", highlight=False)
    console.print(f"timing: {report['timing_seconds']}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=ROOT / "training" / "defaults" / "router.yaml")
    parser.add_argument("--params", default="", help="RiskParams overrides as JSON, e.g. '{\"text_C\": 2.0}'")
    parser.add_argument("--tune", action="store_true",
                        help="development run: out-of-fold figures on the training labels only, the blind set unscored")
    parser.add_argument("--output", type=Path, default=None, help=f"results file (default {RESULTS}; none with --tune)")
    parser.add_argument("--ablations", action="store_true",
                        help="also fit the model with the weak rows kept (about 3 minutes more)")
    parser.add_argument("--router-cache", type=Path, default=None,
                        help="keep the router probabilities here between development runs")
    args = parser.parse_args(argv)
    needed = [args.data_dir / "tipdm2020" / "messages_labeled.csv", args.data_dir / "risk" / "risk_labels_dev.csv"]
    if not all(p.is_file() for p in needed):
        console.print(f"skipped: the shared data is absent ({args.data_dir}); this benchmark needs the real cases")
        return 0
    report = run(args)
    print_table(report)
    output = args.output or (None if args.tune else RESULTS)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=float) + "\n", "utf-8")
        console.print(f"results written to {output}", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
