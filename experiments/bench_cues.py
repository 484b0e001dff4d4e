"""Risk-cue matching: one pass over the text (`Lexicon.scanner`) vs one `finditer` per lexicon entry.

    .venv/bin/python experiments/bench_cues.py [--data PATH ...] [--repeat 5] [--out experiments/results/cues.json]

On the shipped demo data and on the real TipDM messages (``../shared/data/tipdm2020/messages_labeled.csv``
and ``messages_unlabeled.csv`` by default; skipped with a message where absent), for every case text
(``case_text(title, body)``):

- **equality**: `features.risk_cues._lexicon_matches` against the per-entry scan it replaced (copied
  below as `old_lexicon_matches`): the number of texts whose CueMatch lists differ must be 0; so must the
  number whose raw per-entry spans differ (before negation / requires_any windows);
- **time**: microseconds per case, each case timed ``--repeat`` times per variant, old and new
  interleaved, the fastest run kept; the median (and mean) over cases, and the ratio new / old. Two phases:
  ``lexicon_matches`` (what `match_cues` spends on the lexicon) and ``scan`` (finding the raw matches only).
  The scan phase also times the first design considered, one combined ``(?=(?:p0)|(?:p1)|...)`` pattern
  whose positions each entry confirms with ``pattern.match``: Python's re cannot skip ahead on a lookahead,
  so it tries every entry at every character;
- **long runs**: one character repeated n and 4n times, old and new (linear: about 4x, not 16x).

Exits 1 if any text differs. Prints no case text. Writes experiments/results/cues.json. The machine has 2
shared cores: absolute figures move with the neighbours' load, the ratio much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features import risk_cues  # noqa: E402
from features.risk_cues import CueMatch, Lexicon, load_lexicon  # noqa: E402
from features.text import case_text  # noqa: E402
from training.loading import load_cases  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "tipdm2020"
DEFAULT_DATA = [SHARED / "messages_labeled.csv", SHARED / "messages_unlabeled.csv"]
DEMO_DATA = ROOT / "training" / "demo_data" / "grievances.csv"
RESULTS = ROOT / "experiments" / "results" / "cues.json"
RUNS = {"a": "a", "燃": "燃", "，": "，", "电梯": "电梯", "燃气": "燃气"}
RUN_LENGTH = 100_000

Spans = dict[int, list[tuple[int, int]]]


# -- the per-entry scan that the one-pass matcher replaced (reference copy) ---------------------------------


def old_spans(text: str, lexicon: Lexicon) -> Spans:
    found = {k: [m.span() for m in e.pattern.finditer(text)] for k, e in enumerate(lexicon.entries)}
    return {k: spans for k, spans in found.items() if spans}


def old_lexicon_matches(text: str, lexicon: Lexicon) -> list[CueMatch]:
    by_category: dict[tuple[str, str], list[CueMatch]] = {}
    for e in lexicon.entries:
        for m in e.pattern.finditer(text):
            start, end = m.span()
            if start == end:
                continue
            if e.negation is not None:
                lo, _ = risk_cues._bounds(text, start, end, risk_cues._CLAUSE_BREAK, e.negation_window)
                if e.negation.search(text, lo, start):
                    continue
            if e.requires is not None:
                lo, hi = risk_cues._bounds(text, start, end, risk_cues._SENTENCE_BREAK, e.window)
                if not (e.requires.search(text, lo, start) or e.requires.search(text, end, hi)):
                    continue
            by_category.setdefault((e.criterion, e.category), []).append(
                CueMatch(e.criterion, e.category, m.group(), start, end)
            )
    return [m for group in by_category.values() for m in risk_cues._non_overlapping(group)]


# -- the design not taken: one combined lookahead, confirmed per entry --------------------------------------


def lookahead_scan(lexicon: Lexicon) -> Callable[[str], Spans]:
    combined = re.compile("(?=" + "|".join(f"(?:{e.pattern.pattern})" for e in lexicon.entries) + ")")

    def spans(text: str) -> Spans:
        positions = [m.start() for m in combined.finditer(text)]
        found: Spans = {}
        for k, e in enumerate(lexicon.entries):
            resume = 0
            for pos in positions:
                if pos >= resume and (m := e.pattern.match(text, pos)):
                    resume = m.end()
                    found.setdefault(k, []).append(m.span())
        return found

    return spans


# -- measuring -------------------------------------------------------------------------------------------------


def texts_of(path: Path) -> list[str]:
    frame = load_cases([path]).frame
    return [case_text(t, b) for t, b in zip(frame["title"], frame["body"], strict=True)]


def per_case_us(variants: dict[str, Callable[[str], object]], texts: list[str], repeat: int) -> dict[str, list[float]]:
    """Fastest of ``repeat`` runs per case and variant, in microseconds; variants interleaved per case."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    clock = time.perf_counter_ns
    for text in texts:
        for name, run in variants.items():
            best = min(_once(run, text, clock) for _ in range(repeat))
            out[name].append(best / 1000)
    return out


def _once(run: Callable[[str], object], text: str, clock: Callable[[], int]) -> int:
    started = clock()
    run(text)
    return clock() - started


def summary(us: list[float]) -> dict[str, float]:
    return {"median_us": round(statistics.median(us), 1), "mean_us": round(statistics.fmean(us), 1)}


def ratio(new: list[float], old: list[float]) -> float:
    """Median of the new per-case times over the median of the old ones."""
    return round(statistics.median(new) / statistics.median(old), 3)


def measure(name: str, texts: list[str], lexicon: Lexicon, repeat: int) -> dict[str, Any]:
    new_matches = [risk_cues._lexicon_matches(t, lexicon) for t in texts]
    differing = [i for i, t in enumerate(texts) if new_matches[i] != old_lexicon_matches(t, lexicon)]
    differing_spans = [i for i, t in enumerate(texts) if lexicon.scanner.spans(t) != old_spans(t, lexicon)]
    differing_any = sorted(set(differing) | set(differing_spans))
    full = per_case_us({"old": lambda t: old_lexicon_matches(t, lexicon),
                        "new": lambda t: risk_cues._lexicon_matches(t, lexicon)}, texts, repeat)
    lookahead = lookahead_scan(lexicon)
    scan = per_case_us({"old": lambda t: old_spans(t, lexicon), "new": lexicon.scanner.spans,
                        "lookahead": lookahead}, texts, repeat)
    lookahead_differing = sum(lookahead(t) != old_spans(t, lexicon) for t in texts)
    starts = lexicon.scanner.starts
    result = {
        "texts": len(texts),
        "median_chars": statistics.median(len(t) for t in texts),
        "texts_with_a_cue": sum(map(bool, new_matches)),
        "texts_differing": len(differing_any),  # CueMatch lists or raw spans differ
        "texts_with_differing_matches": len(differing),
        "texts_with_differing_spans": len(differing_spans),
        "differing_indices": differing_any[:20],  # row numbers only, never text
        "lexicon_matches": {"old": summary(full["old"]), "new": summary(full["new"]),
                            "ratio_new_over_old": ratio(full["new"], full["old"])},
        "scan": {"old": summary(scan["old"]), "new": summary(scan["new"]), "lookahead": summary(scan["lookahead"]),
                 "ratio_new_over_old": ratio(scan["new"], scan["old"]),
                 "ratio_lookahead_over_old": ratio(scan["lookahead"], scan["old"]),
                 "lookahead_texts_differing": lookahead_differing},
        "candidate_positions_per_case_median": statistics.median(sum(1 for _ in starts.finditer(t)) for t in texts),
    }
    r = result
    print(f"{name}: {r['texts']} texts, differing {r['texts_differing']}; "
          f"lexicon_matches median old {r['lexicon_matches']['old']['median_us']} us, new "
          f"{r['lexicon_matches']['new']['median_us']} us, ratio {r['lexicon_matches']['ratio_new_over_old']}; "
          f"scan old {r['scan']['old']['median_us']}, new {r['scan']['new']['median_us']}, "
          f"lookahead {r['scan']['lookahead']['median_us']} us", flush=True)
    return result


def long_runs(lexicon: Lexicon) -> dict[str, Any]:
    """Seconds for n and 4n characters of one repeated unit, old and new (4x is linear, 16x quadratic)."""
    out: dict[str, Any] = {}
    for label, unit in RUNS.items():
        row: dict[str, Any] = {}
        for variant, run in (("old", old_lexicon_matches), ("new", risk_cues._lexicon_matches)):
            seconds = []
            for n in (RUN_LENGTH, 4 * RUN_LENGTH):
                text = unit * (n // len(unit))
                best = min(_once(partial(run, lexicon=lexicon), text, time.perf_counter_ns) for _ in range(3))
                seconds.append(best / 1e9)
            row[variant] = {"n_s": round(seconds[0], 4), "4n_s": round(seconds[1], 4),
                            "growth": round(seconds[1] / seconds[0], 2)}
            assert run(unit * 200, lexicon) == old_lexicon_matches(unit * 200, lexicon)
        out[label] = row
        print(f"run of {label!r}: n={RUN_LENGTH:,} old {row['old']}, new {row['new']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=DEFAULT_DATA,
                        help="real message files (load_cases format); skipped with a message where absent")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case and variant (fastest kept)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    lexicon = load_lexicon()
    datasets: dict[str, Path] = {"demo": DEMO_DATA}
    skipped = []
    for path in args.data:
        if path.exists():
            datasets[path.name] = path
        else:
            skipped.append(str(path))
            print(f"{path} is absent: skipped (the demo data is measured all the same)")
    results = {name: measure(name, texts_of(path), lexicon, args.repeat) for name, path in datasets.items()}
    scanner = lexicon.scanner
    result = {
        "what": "features.risk_cues._lexicon_matches: one pass (Lexicon.scanner) vs one finditer per lexicon entry",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "2 shared cores: absolute times move with the neighbours' load, ratios much less"},
        "lexicon": {"version": lexicon.version, "entries": len(lexicon.entries),
                    "scanner": {"first_character_pairs": len(scanner.by_pair),
                                "single_characters": len(scanner.by_char),
                                "entries_tried_everywhere": len(scanner.anywhere)}},
        "timing": f"per case: fastest of {args.repeat} runs per variant, old and new interleaved; median over cases",
        "data": {name: str(path) for name, path in datasets.items()},
        "skipped": skipped,
        "results": results,
        "texts_compared": sum(r["texts"] for r in results.values()),
        "texts_differing": sum(r["texts_differing"] for r in results.values()),
        "long_runs": {"n": RUN_LENGTH, "runs": long_runs(lexicon)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"compared {result['texts_compared']} texts, {result['texts_differing']} differing; wrote {args.out}")
    if result["texts_differing"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
