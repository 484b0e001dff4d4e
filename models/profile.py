"""What the cases a model was trained for look like: the reference a later window of traffic is held against.

`build_profile` describes a set of cases and the model's answers to them: department mix, risk mix,
confidence and text length as histograms on fixed bins, vocabulary coverage (share of tokens in the
router's vocabulary) and tokens never seen in training, share of cases naming a place, and the
confidence and place share by department. Training builds one on cases the model did not fit (out-of-fold
and held-out), saves it in the bundle (`TriageBundle.reference`) and logs it to MLflow; the drift report
(`models.drift`) builds one for a window of served cases the same way and compares the two.

Plain dicts and lists throughout: the profile is JSON as logged, and pickles without any class of ours.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.places import primary_place
from features.prepared import PreparedCase
from features.vectorizer import TOKEN_SEPARATOR

PROFILE_VERSION = 1
#: Fixed bin edges, so a window's histogram lines up with the reference's.
CONFIDENCE_EDGES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0000001]
LENGTH_EDGES = [0, 30, 60, 100, 150, 200, 300, 500, 1000, math.inf]
NO_LEVEL = "none"
#: Tokens that say nothing about a topic: masked numbers and one-character tokens.
_MIN_TERM_CHARS = 2


@dataclass(frozen=True, slots=True)
class CaseFigures:
    """What one case contributes to a profile (computed once per case)."""

    department: str
    confidence: float
    risk_level: str
    length: int
    tokens: tuple[str, ...]
    has_place: bool


def case_figures(case: PreparedCase, department: str, confidence: float, risk_level: str | None) -> CaseFigures:
    return CaseFigures(
        department=str(department),
        confidence=float(confidence),
        risk_level=risk_level or NO_LEVEL,
        length=len(case.title) + len(case.body),
        tokens=case.tokens,
        has_place=primary_place(case.text) is not None,
    )


def router_vocabulary(router: Any) -> frozenset[str] | None:
    """The single words of the router's fitted word vocabulary; None for routers without one (hashed)."""
    try:
        vectorizer = router[0].word_vectorizer_
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    vocabulary = getattr(vectorizer, "vocabulary_", None)
    if not vocabulary:
        return None
    return frozenset(term for term in vocabulary if TOKEN_SEPARATOR not in term)


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[float]:
    """Shares of `values` per bin [edges[i], edges[i+1]); an empty input gives zeros."""
    counts, _ = np.histogram(np.asarray(list(values), dtype=float), bins=np.asarray(edges, dtype=float))
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def shares(labels: Iterable[str]) -> dict[str, float]:
    counts = Counter(labels)
    total = sum(counts.values())
    return {k: counts[k] / total for k in sorted(counts)} if total else {}


def is_term(token: str) -> bool:
    """A token that can name a topic: two characters or more, not a number or a masked number."""
    return len(token) >= _MIN_TERM_CHARS and not any(ch.isdigit() for ch in token) and "*" not in token


def build_profile(
    cases: Sequence[CaseFigures],
    *,
    vocabulary: Collection[str] | None,
    training_tokens: Collection[str] | None,
) -> dict[str, Any]:
    """The profile of `cases`. ``vocabulary``: the router's words (coverage); ``training_tokens``: every
    token of the training cases (the share never seen in training). Either may be None (not computed)."""
    tokens = [t for c in cases for t in c.tokens]
    n_tokens = len(tokens)
    in_vocabulary = unseen = None
    if vocabulary is not None and n_tokens:
        in_vocabulary = sum(t in vocabulary for t in tokens) / n_tokens
    if training_tokens is not None and n_tokens:
        unseen = sum(t not in training_tokens for t in tokens) / n_tokens
    by_department: dict[str, list[CaseFigures]] = {}
    for case in cases:
        by_department.setdefault(case.department, []).append(case)
    return {
        "version": PROFILE_VERSION,
        "n_cases": len(cases),
        "n_tokens": n_tokens,
        "department_mix": shares(c.department for c in cases),
        "risk_mix": shares(c.risk_level for c in cases),
        "confidence": {"edges": CONFIDENCE_EDGES, "shares": histogram((c.confidence for c in cases), CONFIDENCE_EDGES)},
        "text_length": {"edges": [e if math.isfinite(e) else None for e in LENGTH_EDGES],
                        "shares": histogram((c.length for c in cases), LENGTH_EDGES)},
        "vocabulary": {"coverage": in_vocabulary, "unseen_share": unseen},
        "place_share": (sum(c.has_place for c in cases) / len(cases)) if cases else None,
        "by_department": {
            department: {
                "n_cases": len(members),
                "mean_confidence": float(np.mean([c.confidence for c in members])),
                "place_share": sum(c.has_place for c in members) / len(members),
            }
            for department, members in sorted(by_department.items())
        },
    }


def unseen_terms(
    cases: Sequence[CaseFigures], known: Collection[str], *, min_cases: int, limit: int
) -> list[dict[str, Any]]:
    """Terms not in `known` that appear in at least `min_cases` cases, most widespread first."""
    in_cases: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for case in cases:
        fresh = [t for t in case.tokens if t not in known and is_term(t)]
        counts.update(fresh)
        in_cases.update(set(fresh))
    frequent = [(term, n) for term, n in in_cases.items() if n >= min_cases]
    frequent.sort(key=lambda item: (-item[1], -counts[item[0]], item[0]))
    return [{"term": term, "cases": n, "count": counts[term]} for term, n in frequent[:limit]]


def reference_from_training(
    cases: Sequence[CaseFigures], training_tokens: Iterable[str], vocabulary: Collection[str] | None
) -> dict[str, Any]:
    """The reference saved with a model: the profile of cases it did not fit, plus the training tokens."""
    known = frozenset(training_tokens)
    profile = build_profile(cases, vocabulary=vocabulary, training_tokens=known)
    profile["training_tokens"] = sorted(known)
    return profile


def without_tokens(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The profile as logged and shown: the (long) training token list left out, its size kept."""
    out = {k: v for k, v in profile.items() if k != "training_tokens"}
    out["n_training_tokens"] = len(profile.get("training_tokens") or [])
    return out
