"""Out-of-taxonomy detection measured on held-out departments (issue 14, item 7).

    .venv/bin/python experiments/bench_out_of_taxonomy.py [--data PATH] [--max-cases 4000] [--config FILE]

The candidate detector (`TaxonomyNovelty`, below; not part of the service: see the result) scores a
case by its mean cosine similarity to its k nearest training cases in the router's own TF-IDF space, and
flags a case below the `flag_rate` quantile of the training cases' leave-one-out scores.

For each department D in turn: the router (the project's config) and the detector are trained on 80% of
the cases of the *other* departments;
then D's cases play the part of a new kind of case. Reported per held-out department and as medians:

- ``flagged_unknown``: share of D's cases the detector sends to review as out of taxonomy (recall);
- ``flagged_known``: share of the other departments' held-out 20% it flags (the cost: extra reviews);
- ``confidence_baseline``: the share of D's cases caught by the router's confidence alone, flagging the
  same share of known held-out cases (the lowest-confidence ones): what the probabilities already say;
- ``confident_unknown``: share of D's cases the router sends on with confidence >= 0.8 (the failure the
  issue reports), and how many of those the detector catches;
- ``auroc_similarity`` / ``auroc_confidence``: threshold-free, how well the detector's score and the
  router's confidence each tell D's cases from known held-out ones (0.5: not at all).

Data: ``../shared/data/tipdm2020/messages_labeled.csv`` (7 departments), or the shipped demo data
where the shared data is absent (says so). A stratified sample of `--max-cases` keeps the run to a few
minutes on 2 cores. Writes experiments/results/out_of_taxonomy.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import normalize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.text import init_tokenizer  # noqa: E402
from models.router import build_router  # noqa: E402
from training.config import load_config  # noqa: E402
from training.loading import load_cases  # noqa: E402
from training.splitting import train_test_split_grouped  # noqa: E402

#: Rows of the reference matrix scored at a time (bounds the dense similarity block).
BLOCK = 512


@dataclass
class TaxonomyNovelty:
    """Mean cosine similarity to the k nearest training cases; below the `flag_rate` quantile of the
    training cases' leave-one-out scores: out of taxonomy."""

    k: int = 5
    flag_rate: float = 0.03
    max_reference: int = 4000
    seed: int = 0
    reference: sp.csr_matrix | None = None
    threshold: float = 0.0

    def fit(self, features: sp.spmatrix, labels: np.ndarray) -> TaxonomyNovelty:
        """`features`: the router's feature rows of its training cases; `labels`: their departments."""
        rows = _stratified_sample(np.asarray(labels, dtype=object), self.max_reference, self.seed)
        reference = normalize(sp.csr_matrix(features)[rows]).astype(np.float32)
        self.reference = reference
        # Leave one out: each reference case against the others (its own similarity, 1, dropped).
        scores = self._scores(reference, exclude_self=True)
        self.threshold = float(np.quantile(scores, self.flag_rate)) if len(scores) else 0.0
        return self

    def scores(self, features: sp.spmatrix) -> np.ndarray:
        """Mean cosine similarity of each row to its `k` nearest reference cases."""
        if self.reference is None:
            raise ValueError("TaxonomyNovelty is not fitted")
        return self._scores(normalize(sp.csr_matrix(features)).astype(np.float32), exclude_self=False)

    def flags(self, features: sp.spmatrix) -> np.ndarray:
        """True where a case is unlike every department's training cases."""
        return self.scores(features) < self.threshold

    def _scores(self, rows: sp.csr_matrix, *, exclude_self: bool) -> np.ndarray:
        assert self.reference is not None
        k = min(self.k, self.reference.shape[0] - (1 if exclude_self else 0))
        if k <= 0:
            return np.zeros(rows.shape[0])
        out = np.empty(rows.shape[0])
        for start in range(0, rows.shape[0], BLOCK):
            sims = (rows[start : start + BLOCK] @ self.reference.T).toarray()
            if exclude_self:
                np.fill_diagonal(sims[:, start : start + BLOCK], -1.0)
            top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
            out[start : start + BLOCK] = top.mean(axis=1)
        return out

    def describe(self) -> dict[str, float | int]:
        return {"k": self.k, "flag_rate": self.flag_rate, "threshold": round(self.threshold, 6),
                "reference_cases": 0 if self.reference is None else int(self.reference.shape[0])}


def _stratified_sample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Row indices: all rows if they fit, else the same share of each label (at least one each)."""
    n = len(labels)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        take = max(1, round(len(idx) * limit / n))
        keep.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tipdm2020" / "messages_labeled.csv"
DEMO_DATA = ROOT / "training" / "demo_data" / "grievances.csv"
RESULTS = ROOT / "experiments" / "results" / "out_of_taxonomy.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=ROOT / "experiments" / "router.yaml")
    parser.add_argument("--max-cases", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    data, note = args.data, None
    if not data.exists():
        data, note = DEMO_DATA, f"{args.data} is absent: measured on the shipped demo data"
        print(note)
    init_tokenizer()
    config = load_config(args.config)
    frame = load_cases([data], require_department=True, training=True).frame
    frame = frame[frame["department"].notna()].reset_index(drop=True)
    if len(frame) > args.max_cases:
        frame = (frame.groupby("department", group_keys=False)
                 .sample(frac=args.max_cases / len(frame), random_state=config.seed).reset_index(drop=True))
    departments = sorted(frame["department"].unique())
    started = time.perf_counter()
    rows = []
    for held in departments:
        known, unknown = frame[frame["department"] != held], frame[frame["department"] == held]
        train, test = train_test_split_grouped(known.reset_index(drop=True), config.test_size, config.seed)
        router = build_router(config.features, config.classifier, config.seed)
        router.fit(train[["title", "body"]], np.asarray(train["department"], dtype=object))
        vectorizer = router[:-1]
        novelty = TaxonomyNovelty(seed=config.seed).fit(
            vectorizer.transform(train[["title", "body"]]), np.asarray(train["department"], dtype=object)
        )
        score_known = novelty.scores(vectorizer.transform(test[["title", "body"]]))
        score_unknown = novelty.scores(vectorizer.transform(unknown[["title", "body"]]))
        flagged_known, flagged_unknown = score_known < novelty.threshold, score_unknown < novelty.threshold
        conf_known = router.predict_proba(test[["title", "body"]]).max(axis=1)
        conf_unknown = router.predict_proba(unknown[["title", "body"]]).max(axis=1)
        rate = float(flagged_known.mean())
        cut = float(np.quantile(conf_known, rate)) if rate > 0 else -np.inf
        confident = conf_unknown >= 0.8
        is_unknown = np.r_[np.zeros(len(test)), np.ones(len(unknown))]
        rows.append({
            "held_out_department": held, "unknown_cases": len(unknown), "known_held_out_cases": len(test),
            "flagged_unknown": round(float(flagged_unknown.mean()), 4),
            "flagged_known": round(rate, 4),
            "confidence_baseline": round(float((conf_unknown < cut).mean()), 4),
            "confident_unknown": round(float(confident.mean()), 4),
            "confident_unknown_caught": round(float(flagged_unknown[confident].mean()), 4) if confident.any() else None,
            "threshold": novelty.threshold,
            # Threshold-free: how well each score tells an unknown department's case from a known one
            # (0.5: not at all); low similarity / low confidence means "unknown".
            "auroc_similarity": round(float(roc_auc_score(is_unknown, -np.r_[score_known, score_unknown])), 4),
            "auroc_confidence": round(float(roc_auc_score(is_unknown, -np.r_[conf_known, conf_unknown])), 4),
        })
        print(json.dumps(rows[-1], ensure_ascii=False))
    medians = {key: round(statistics.median(r[key] for r in rows), 4)
               for key in ("flagged_unknown", "flagged_known", "confidence_baseline", "confident_unknown",
                           "auroc_similarity", "auroc_confidence")}
    result = {
        "data": {"file": str(data), "cases_used": len(frame), "departments": len(departments), "note": note},
        "detector": {"k": TaxonomyNovelty.k, "flag_rate": TaxonomyNovelty.flag_rate,
                     "max_reference": TaxonomyNovelty.max_reference},
        "machine": {"platform": platform.platform(), "cpus": __import__("os").cpu_count()},
        "seconds": round(time.perf_counter() - started, 1),
        "median": medians,
        "by_held_out_department": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"median": medians, "seconds": result["seconds"]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
