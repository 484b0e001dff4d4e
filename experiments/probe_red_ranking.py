"""Development probe (issue 12): would another text representation rank the red cases better?

    .venv/bin/python experiments/probe_red_ranking.py [--data ../shared/data] [--embeddings] [--output PATH]

Why: blind red recall is bounded by how P(red) ranks the cases, not by the band (at red recall 0.90 the
best band keeps 0.34 precision on the blind set). Before changing the risk model, this probe compares
text representations by one number each: the **out-of-fold average precision of P(red)** over the annotated
training cases (``experiments/risk_labels/train.csv``; 5 stratified folds, seed 42), and the precision at
red recall 0.90 there. It reads the training annotations only: the blind set is never loaded (see
``risk_labels/PROTOCOL.md``), so nothing chosen from it leaks into the blind figures.

Variants, each a balanced logistic regression on TF-IDF unless said otherwise:

- ``baseline``: the shipped text model's terms (`models.risk.text_score.text_grams`: word 1-2-grams and
  character 2-3-grams), level head (red / yellow / green), C 4: the reference every other line is read against;
- ``title block xW``: the same plus a second block of the title's own terms, weighted W (titles are short
  and often name the danger);
- ``NB-LR``: red against the rest on naive-Bayes log-count-ratio scaled terms (Wang and Manning's NBSVM idea);
- ``first 400 characters``: the terms of the text's opening only (long bodies dilute the situation);
- with ``--embeddings`` (needs ``gensim``, not a project dependency: ``pip install gensim``): word2vec and
  fastText vectors trained here on every TipDM message except the blind cases (no pretrained vectors can be
  fetched on these machines), mean and max pooled, alone and blended 0.3 / 0.7 with the baseline.

Writes the figures (no case text) to ``--output`` (default ``experiments/results/red_ranking_probe.json``).
Skips with exit 0 and a message when the shared data is absent. 17 minutes on 2 cores with ``--embeddings``
(2026-12-07), most of it the TF-IDF variants.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.bench_predict import SOURCES as TIPDM_FILES  # noqa: E402  (the four TipDM files)
from features.text import case_text, init_tokenizer, tokenise  # noqa: E402
from models.risk.text_score import text_doc, text_grams  # noqa: E402
from training.loading import load_cases  # noqa: E402
from training.risk_labels import join_risk_labels  # noqa: E402

LABELS = ROOT / "experiments" / "risk_labels"
RESULTS = ROOT / "experiments" / "results" / "red_ranking_probe.json"
LEVEL_CODE = {"red": 0, "yellow": 1, "green": 2}
OPENING_CHARS = 400
FOLDS, SEED, C = 5, 42, 4.0

Split = tuple[np.ndarray, np.ndarray]
Features = Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]
Scorer = Callable[[Any, Any, np.ndarray], np.ndarray]


class Probe:
    """The annotated training cases, their folds, and the out-of-fold P(red) of each variant."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.texts = [case_text(t, b) for t, b in zip(frame["title"], frame["body"], strict=True)]
        self.titles = [case_text(t, "") for t in frame["title"]]
        self.tokens = [tokenise(x) for x in self.texts]
        self.docs = [text_doc(t, x) for t, x in zip(self.tokens, self.texts, strict=True)]
        self.levels = frame["risk_level"].map(LEVEL_CODE).to_numpy()
        self.red = (self.levels == 0).astype(int)
        self.folds: list[Split] = list(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
                                       .split(self.docs, self.levels))
        self.results: dict[str, dict[str, float]] = {}

    def summary(self, p_red: np.ndarray) -> dict[str, float]:
        order = np.argsort(-p_red, kind="stable")
        found = np.cumsum(self.red[order])
        needed = int(np.ceil(0.9 * self.red.sum()))
        at = int(np.searchsorted(found, needed)) + 1
        return {"red_average_precision": round(float(average_precision_score(self.red, p_red)), 4),
                "precision_at_red_recall_0.90": round(needed / at, 4)}

    def out_of_fold(self, name: str, features: Features, scorer: Scorer) -> np.ndarray:
        p_red = np.zeros(len(self.red))
        for train, test in self.folds:
            x_train, x_test = features(train, test)
            p_red[test] = scorer(x_train, x_test, train)
        self.report(name, p_red)
        return p_red

    def report(self, name: str, p_red: np.ndarray) -> None:
        self.results[name] = self.summary(p_red)
        figures = self.results[name]
        print(f"{name:42s} AP {figures['red_average_precision']:.3f}   "
              f"precision at red recall 0.90 {figures['precision_at_red_recall_0.90']:.3f}", flush=True)

    # -- representations -------------------------------------------------------------------------------
    def tfidf(self, docs: Sequence[str]) -> Features:
        def features(train: np.ndarray, test: np.ndarray) -> tuple[Any, Any]:
            vectorizer = TfidfVectorizer(analyzer=text_grams, lowercase=False, min_df=2, sublinear_tf=True)
            return vectorizer.fit_transform([docs[i] for i in train]), vectorizer.transform([docs[i] for i in test])
        return features

    def with_title(self, weight: float) -> Features:
        body = self.tfidf(self.docs)
        title = self.tfidf([text_doc(tokenise(t), t) for t in self.titles])

        def features(train: np.ndarray, test: np.ndarray) -> tuple[Any, Any]:
            (a_train, a_test), (b_train, b_test) = body(train, test), title(train, test)
            return (sparse.hstack([a_train, weight * b_train]).tocsr(),
                    sparse.hstack([a_test, weight * b_test]).tocsr())
        return features

    # -- heads -----------------------------------------------------------------------------------------
    def level_head(self, x_train: Any, x_test: Any, train: np.ndarray, c: float = C) -> np.ndarray:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(x_train, self.levels[train])
        return model.predict_proba(x_test)[:, 0]

    def nb_red_head(self, x_train: Any, x_test: Any, train: np.ndarray) -> np.ndarray:
        red = self.red[train]
        present = (x_train > 0).astype(np.float64)
        p = 1.0 + np.asarray(present[red == 1].sum(0)).ravel()
        q = 1.0 + np.asarray(present[red == 0].sum(0)).ravel()
        ratio = sparse.diags(np.log((p / p.sum()) / (q / q.sum())))
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(x_train @ ratio, red)
        return model.predict_proba(x_test @ ratio)[:, 1]

    def embedding(self, vectors: Any) -> Features:
        size = vectors.vector_size
        pooled = np.zeros((len(self.tokens), 2 * size))
        for i, tokens in enumerate(self.tokens):
            known = [vectors[w] for w in tokens if w in vectors]
            if known:
                stacked = np.asarray(known)
                pooled[i, :size], pooled[i, size:] = stacked.mean(0), stacked.max(0)

        def features(train: np.ndarray, test: np.ndarray) -> tuple[Any, Any]:
            scaler = StandardScaler().fit(pooled[train])
            return scaler.transform(pooled[train]), scaler.transform(pooled[test])
        return features


def unlabelled_corpus(data: Path) -> list[list[str]]:
    """Every TipDM message's tokens (one per text key), the blind cases left out."""
    blind = set(pd.read_csv(LABELS / "blind.csv", dtype=str, usecols=["case_id"])["case_id"])
    corpus: list[list[str]] = []
    for name in TIPDM_FILES:
        frame = load_cases([data / "tipdm2020" / name]).frame
        frame = frame[~frame["case_id"].astype(str).isin(blind)].drop_duplicates("dedup_key")
        corpus += [tokenise(case_text(t, b)) for t, b in zip(frame["title"], frame["body"], strict=True)]
    return corpus


def embedding_variants(probe: Probe, data: Path, baseline: np.ndarray) -> None:
    try:
        from gensim.models import FastText, Word2Vec
    except ImportError:
        print("--embeddings needs gensim (pip install gensim); skipped")
        return
    corpus = unlabelled_corpus(data)
    print(f"embedding corpus: {len(corpus)} messages", flush=True)
    for name, kind in (("word2vec", Word2Vec), ("fastText", FastText)):
        model = kind(sentences=corpus, vector_size=200, window=5, min_count=2, sg=1, epochs=10, workers=2, seed=1)
        # Dense standardised vectors need a stronger penalty than sparse TF-IDF rows.
        p_red = probe.out_of_fold(f"{name} mean+max pooled", probe.embedding(model.wv),
                                  functools.partial(probe.level_head, c=0.1))
        probe.report(f"{name} 0.3 + baseline 0.7", 0.3 * p_red + 0.7 * baseline)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--embeddings", action="store_true", help="also word2vec / fastText (needs gensim)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (args.data / "tipdm2020").is_dir():
        print(f"{args.data}/tipdm2020 is absent: the probe needs the shared data; skipped")
        return 0
    started = time.perf_counter()
    init_tokenizer()
    probe = Probe(join_risk_labels([LABELS / "train.csv"], args.data))
    print(f"{len(probe.red)} annotated training cases, {int(probe.red.sum())} red; blind set not read", flush=True)
    baseline = probe.out_of_fold("baseline (shipped text model's terms)", probe.tfidf(probe.docs), probe.level_head)
    for weight in (0.5, 1.0):
        probe.out_of_fold(f"title block x{weight}", probe.with_title(weight), probe.level_head)
    probe.out_of_fold("NB-LR red vs rest", probe.tfidf(probe.docs), probe.nb_red_head)
    openings = [text_doc(tokenise(x[:OPENING_CHARS]), x[:OPENING_CHARS]) for x in probe.texts]
    probe.out_of_fold(f"first {OPENING_CHARS} characters", probe.tfidf(openings), probe.level_head)
    if args.embeddings:
        embedding_variants(probe, args.data, baseline)
    out = {
        "what": "out-of-fold P(red) ranking of text representations on the training annotations (blind unread)",
        "cases": len(probe.red), "red": int(probe.red.sum()), "folds": FOLDS, "seed": SEED,
        "variants": probe.results, "seconds": round(time.perf_counter() - started, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command": " ".join([".venv/bin/python", "experiments/probe_red_ranking.py", *sys.argv[1:]]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
