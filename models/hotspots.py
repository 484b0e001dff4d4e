"""Streaming hot-issue detector: attaches each incoming case to a burst of similar cases and raises an
alert when a burst grows past configured thresholds.

How a case is placed
--------------------
1. Its text becomes a keyword vector: jieba tokens of title + body (`features.text.tokenise`), the title's
   tokens counted `title_weight` extra times, runs of single characters joined ("御", "景", "湾" ->
   "御景湾", because jieba splits names it does not know), and one token per specific place name
   (`features.places`). Weights are sublinear tf x idf, cut to the `max_terms` strongest, L2-normalised.
   **idf is estimated incrementally** from the document frequencies of every case observed so far
   (including this one): idf = ln((1 + N) / (1 + df)) + 1. It works from a cold start (with one case all
   idfs are 1, i.e. plain tf) and needs no fitted vocabulary; the counts are part of the detector's state
   and its snapshot. A case's vector is frozen at intake and never re-weighted, so later cases cannot
   change it (no look-ahead).
2. Candidates are the live bursts that share one of the case's `index_terms` strongest terms (an
   inverted index over each member's strongest terms) or its place; at most `max_candidates` of them,
   ranked by the overlap, are compared by cosine with the burst centroid (sum of member vectors).
3. Place rule (the case's place is the most specific place of its title, else of its body): a burst
   that already names the same place (`features.places.same_place`) gets `same_place_bonus` added to
   the similarity; a burst whose main place is a *different* place of the *same kind* (two communities,
   two companies) is never joined. Only "strong" places can keep cases apart: those read from a title,
   and those read from a body whose kind has a reliable suffix (community, school, hospital); other
   places found in bodies are too often wrong ("说担保公司") to veto a match. Districts and generic power
   lines ("110kV高压线") never decide.
4. The case joins the best burst with similarity (+ bonus) >= `similarity_threshold`; otherwise it
   starts a new burst whose id is derived from its case id ("hot-<case_id>").

Window and statistics
---------------------
The detector's clock is the newest case time seen. Members older than `window_days` before it expire;
a burst with no members left vanishes. A case with no time takes the time of the previous case (or,
for the very first case, 1970-01-01, which expires as soon as a dated case arrives). Statistics are
computed right after the case joins, from cases observed so far only: cases and distinct reporters in
the window, cases in the last `growth_days`, the growth ratio (the rate over the last `growth_days`
against the rate over the window, so a burst whose cases all came in the last week has
window_days / growth_days), the sum of the members' votes (as the events carry them) and the age of the
burst (days since its first case, expired ones included).

Reporter ids only feed the count of *distinct* reporters; nothing is kept or scored per reporter. A case
without a reporter id counts as its own reporter (`anonymous_reporters_are_distinct`), so files without a
reporter column can still alert.

Alerts
------
Yellow when a burst has >= `yellow_min_cases` cases from >= `yellow_min_reporters` distinct reporters.
Red when it meets the yellow condition and one of: >= `red_min_cases` cases from >= `red_min_reporters`
reporters; fast growth (>= `red_growth_min_cases` cases in the last `growth_days`, growth ratio >=
`red_growth_ratio` and >= `red_growth_min_reporters` reporters); votes >= `red_min_votes`. The reason
("cases", "growth", "votes", joined by "+") is part of the alert. Each level fires once per burst,
raised by the case that crosses it; a burst that goes straight to red fires red only; a yellow burst
that escalates fires a new red alert. Alert ids are "<burst_id>:<level>".

Defaults
--------
Tuned on the TipDM messages with votes (2019-01 to 2019-06, about 350 cases a month) and checked on the
demo data: the 58车贷 burst alerts yellow at its 5th member case and red at its 7th, the 110 kV line at
月亮岛路 yellow at its 4th and red at its 7th; about 6 alerts a month in all, 0-1 of them red. A
similarity threshold of 0.35 or more splits the demo bursts (paraphrases by different people share few
words); 0.25 or less lets more unrelated cases in.

Determinism and persistence
---------------------------
No randomness: the same cases in the same order give the same burst ids, assignments and alerts.
`snapshot()` returns a JSON-serialisable dict (config, clock, idf counts, live bursts with their members'
frozen keyword weights, places, reporters and votes, the levels each burst has fired, and the alerts
raised); `from_snapshot()` rebuilds a detector that behaves exactly as the one that was snapshotted.
`replay(events)` rebuilds state from history.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
import re
from collections import Counter, _count_elements  # type: ignore[attr-defined]
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from itertools import compress, islice
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features import tokenizer
from features.places import extract_places, is_specific, place_key, same_place
from features.prepared import PreparedCase, prepare
from features.text import TEXT_PIPELINE_VERSION, case_text

logger = logging.getLogger(__name__)

#: Version of the snapshot layout (not of the config, which carries its own `version`).
SNAPSHOT_FORMAT = 1
LEVELS = ("yellow", "red")
_EPOCH = datetime(1970, 1, 1)
_PLACE_PREFIX = "@"  # place tokens in keyword vectors: "@御景湾"
_SINGLE_CHAR = re.compile(r"^[\u4e00-\u9fff]$")
#: Place kinds whose suffixes are reliable enough that a place read from a body may keep cases apart.
_RELIABLE_KINDS = frozenset({"community", "school", "hospital"})
_WEIGHT_DIGITS = 6  # member weights are rounded at intake, so snapshots reproduce them exactly


#: A burst is a hot issue from its second case on (`Assignment.hot_issue_id`).
HOT_ISSUE_MIN_CASES = 2


class HotspotConfig(BaseModel):
    """Versioned settings of the hot-issue detector. Bump `version` when a default changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = "hotspots-1"
    # window
    window_days: float = Field(30.0, gt=0)
    growth_days: float = Field(7.0, gt=0)
    # similarity
    similarity_threshold: float = Field(0.30, gt=0, le=1)
    same_place_bonus: float = Field(0.15, ge=0, le=1)
    title_weight: float = Field(1.0, ge=0)
    body_max_chars: int = Field(300, ge=0)
    max_terms: int = Field(40, ge=1)
    index_terms: int = Field(8, ge=1)
    max_candidates: int = Field(64, ge=1)
    max_posting: int = Field(400, ge=1)
    # alerts
    yellow_min_cases: int = Field(3, ge=1)
    yellow_min_reporters: int = Field(3, ge=1)
    red_min_cases: int = Field(6, ge=1)
    red_min_reporters: int = Field(5, ge=1)
    red_growth_min_cases: int = Field(5, ge=1)
    red_growth_ratio: float = Field(3.0, ge=0)
    red_growth_min_reporters: int = Field(4, ge=1)
    red_min_votes: int = Field(500, ge=0)
    anonymous_reporters_are_distinct: bool = True
    alert_keywords: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _check(self) -> HotspotConfig:
        if self.growth_days > self.window_days:
            raise ValueError("growth_days must not exceed window_days")
        if self.red_min_cases < self.yellow_min_cases or self.red_min_reporters < self.yellow_min_reporters:
            raise ValueError("red thresholds must not be below the yellow ones")
        return self


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One incoming case. `created_at` None: the time of the previous case is used."""

    case_id: str
    created_at: datetime | None
    title: str = ""
    body: str = ""
    reporter_id: str | None = None
    votes: int | None = None


@dataclass(frozen=True, slots=True)
class CaseTerms:
    """The stateless half of a case's keyword vector: raw term counts (title counted `1 + title_weight`
    times, place tokens added) and its main place. It depends on the text and the config only, so it can
    be computed anywhere, in parallel; the idf weighting that follows needs the detector's state."""

    counts: dict[str, float]
    place: tuple[str, str, str, str] | None  # (name, kind, key, "title"|"body")

    def to_json(self, key: str) -> dict[str, Any]:
        """A JSON document of these terms made under settings `key` (`terms_key`), for the shared feed.
        Counts go as [term, count] pairs: JSONB reorders object keys, and the order is kept exactly."""
        return {"key": key, "counts": [[t, n] for t, n in self.counts.items()],
                "place": None if self.place is None else list(self.place)}

    @classmethod
    def from_json(cls, document: Any, key: str) -> CaseTerms | None:
        """The terms of `to_json`'s document, or None when it was made under other settings than `key` or
        is not one (then the caller computes them from the text)."""
        if not isinstance(document, dict) or document.get("key") != key:
            return None
        counts, place = document.get("counts"), document.get("place")
        try:
            return cls({str(t): float(n) for t, n in counts},
                       None if place is None else (str(place[0]), str(place[1]), str(place[2]), str(place[3])))
        except (TypeError, ValueError, IndexError):
            return None


#: Bump when `case_terms` computes other terms from the same text and settings: stored terms under the old
#: key are then recomputed from the text instead of reused (`terms_key`).
TERMS_FORMAT = 1
_terms_keys: dict[tuple[float, int, str], str] = {}


def terms_key(config: HotspotConfig) -> str:
    """What `case_terms` depends on besides the text: the settings it reads, the word segmenter with its
    dictionary, the normalisation rules (`TEXT_PIPELINE_VERSION`) and `TERMS_FORMAT`. Terms stored under
    another key are not reused."""
    memo = (config.title_weight, config.body_max_chars, tokenizer.active())
    key = _terms_keys.get(memo)
    if key is None:
        spec = tokenizer.spec()
        raw = (f"{TERMS_FORMAT}|{TEXT_PIPELINE_VERSION}|{memo[0]!r}|{memo[1]}|{spec.name}|{spec.version}|"
               f"{spec.dictionary}")
        key = _terms_keys[memo] = hashlib.sha256(raw.encode()).hexdigest()[:16]
    return key


def case_terms(title: str, body: str, config: HotspotConfig, prepared: PreparedCase | None = None) -> CaseTerms:
    """Tokens (jieba), joined single-character runs and specific places of one case: see `CaseTerms`.

    ``prepared``: the case as the router prepared it (`features.prepared`); its tokens are reused, and only
    a body longer than `HotspotConfig.body_max_chars` (the detector reads its beginning) is cut and
    tokenised again.
    """
    if prepared is None:
        prepared = prepare(title, body)
    title_n, title_tokens = prepared.title_masked, prepared.title_tokens
    if len(prepared.body) <= config.body_max_chars:
        body_n, body_tokens = prepared.body_masked, prepared.body_tokens
    else:
        body_n = case_text("", prepared.body[: config.body_max_chars])
        body_tokens = prepared.head_tokens(body_n)
    counts: dict[str, float] = {}
    _count_elements(counts, _terms(body_tokens))  # Counter's C helper, on a plain dict
    title_counts: dict[str, int] = {}
    _count_elements(title_counts, _terms(title_tokens))
    title_factor = 1.0 + config.title_weight
    get = counts.get
    for term, n in title_counts.items():
        counts[term] = get(term, 0) + n * title_factor
    place = None
    for where, text in (("title", title_n), ("body", body_n)):
        for p in extract_places(text):
            if is_specific(p):
                key = place_key(p)
                term = _PLACE_PREFIX + key
                counts[term] = get(term, 0) + 1
                if place is None:
                    place = (p.name, p.kind, key, where)
    return CaseTerms(counts, place)


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    burst_id: str
    level: Literal["yellow", "red"]
    raised_at: datetime
    reason: str
    keywords: list[str]
    place: str | None
    first_case_id: str
    last_case_id: str
    member_case_ids: list[str]
    cases: int
    reporters: int
    recent_cases: int
    growth_ratio: float
    votes: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["raised_at"] = self.raised_at.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        values = dict(data)
        values["raised_at"] = datetime.fromisoformat(values["raised_at"])
        values["keywords"] = list(values["keywords"])
        values["member_case_ids"] = list(values["member_case_ids"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a case went and its burst's statistics at intake (after the case joined)."""

    case_id: str
    burst_id: str | None
    joined_existing: bool
    similarity: float | None
    cases: int
    reporters: int
    recent_cases: int
    growth_ratio: float
    votes: int
    age_days: float
    alert: Alert | None = None

    @property
    def hot_issue_id(self) -> str | None:
        """The hot issue this case belongs to: its burst, once the burst holds `HOT_ISSUE_MIN_CASES` cases.

        The one place the rule is written; serving, batch and Dask all ask here.
        """
        return self.burst_id if self.burst_id and self.cases >= HOT_ISSUE_MIN_CASES else None

    def features(self) -> dict[str, float]:
        """Numeric burst statistics, e.g. as risk-model inputs."""
        return {
            "burst_cases": float(self.cases),
            "burst_reporters": float(self.reporters),
            "burst_recent_cases": float(self.recent_cases),
            "burst_growth": float(self.growth_ratio),
            "burst_votes": float(self.votes),
            "burst_age_days": float(self.age_days),
        }


@dataclass(slots=True)
class _Member:
    case_id: str
    time: datetime
    reporter: str | None
    votes: int | None
    weights: dict[str, float]  # frozen, L2-normalised keyword vector
    place: tuple[str, str, str, str] | None  # (name, kind, key, "title"|"body"): the case's main place
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "time": self.time.isoformat(),
            "reporter": self.reporter,
            "votes": self.votes,
            "weights": self.weights,
            "place": list(self.place) if self.place else None,
            "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Member:
        place = data.get("place")
        return cls(
            case_id=str(data["case_id"]),
            time=datetime.fromisoformat(data["time"]),
            reporter=data.get("reporter"),
            votes=data.get("votes"),
            weights={str(k): float(v) for k, v in data["weights"].items()},
            place=(str(place[0]), str(place[1]), str(place[2]), str(place[3])) if place else None,
            seq=int(data["seq"]),
        )


@dataclass(slots=True)
class _Burst:
    burst_id: str
    created_at: datetime
    seq: int
    fired: set[str] = field(default_factory=set)
    members: dict[str, _Member] = field(default_factory=dict)
    centroid: dict[str, float] = field(default_factory=dict)
    norm_: float | None = 0.0  # None: not computed since the centroid last changed (see `norm`)
    places: Counter[str] = field(default_factory=Counter)  # place key -> members naming it
    strong_places: Counter[str] = field(default_factory=Counter)  # the same, for places that can conflict
    place_info: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (name, kind) first seen

    @property
    def norm(self) -> float:
        """L2 norm of the centroid, computed when first asked for after a change: most bursts change more
        often than a case is compared with them, and the sum runs over the whole centroid."""
        if self.norm_ is None:
            self.norm_ = math.sqrt(math.fsum(v * v for v in self.centroid.values()))
        return self.norm_

    def add(self, member: _Member) -> None:
        self.members[member.case_id] = member
        centroid = self.centroid
        get = centroid.get
        for term, weight in member.weights.items():
            centroid[term] = get(term, 0.0) + weight
        self.norm_ = None
        if member.place:
            name, kind, key, _ = member.place
            self.places[key] += 1
            if _is_strong(member.place):
                self.strong_places[key] += 1
            self.place_info.setdefault(key, (name, kind))

    def remove(self, case_ids: Iterable[str]) -> None:
        for case_id in case_ids:
            del self.members[case_id]
        members = list(self.members.values())
        self.members, self.centroid, self.place_info, self.norm_ = {}, {}, {}, 0.0
        self.places, self.strong_places = Counter(), Counter()
        for member in members:  # rebuild in member order: the same floats as a restored detector
            self.add(member)

    def main_place(self, *, strong_only: bool = False) -> tuple[str, str, str] | None:
        """(name, kind, key) of the place most members name (ties: the first named); with `strong_only`,
        counting only places that can keep cases apart (see `_is_strong`)."""
        counts = self.strong_places if strong_only else self.places
        if not counts:
            return None
        best = max(counts.items(), key=lambda kv: kv[1])[0]
        name, kind = self.place_info[best]
        return name, kind, best


@dataclass(frozen=True, slots=True)
class StateCapture:
    """A detector's state at one moment, for `snapshot()` later. Members and alerts are never changed once
    made (bursts only add and drop them), so holding them is as good as a copy; only the document
    frequency table is copied."""

    config: HotspotConfig
    now: datetime | None
    last_time: datetime | None
    seq: int
    burst_seq: int
    n_docs: int
    df: dict[str, int]
    bursts: tuple[tuple[str, datetime, int, tuple[str, ...], tuple[_Member, ...]], ...]
    alerts: tuple[Alert, ...]

    def snapshot(self) -> dict[str, Any]:
        """The document `HotspotDetector.from_snapshot` reads (format `SNAPSHOT_FORMAT`)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "config_version": self.config.version,
            "config": self.config.model_dump(mode="json"),
            "now": self.now.isoformat() if self.now else None,
            "last_time": self.last_time.isoformat() if self.last_time else None,
            "seq": self.seq,
            "burst_seq": self.burst_seq,
            "n_docs": self.n_docs,
            "df": self.df,
            "bursts": [
                {
                    "burst_id": burst_id,
                    "created_at": created_at.isoformat(),
                    "seq": seq,
                    "fired": list(fired),
                    "members": [m.to_dict() for m in members],
                }
                for burst_id, created_at, seq, fired, members in self.bursts
            ],
            "alerts": [a.to_dict() for a in self.alerts],
        }


class HotspotDetector:
    """Streaming detector of bursts of similar cases. Not thread-safe: feed it from one worker."""

    def __init__(self, config: HotspotConfig | None = None) -> None:
        self.config = config or HotspotConfig()
        self.alerts: list[Alert] = []
        self._bursts: dict[str, _Burst] = {}
        self._case_burst: dict[str, str] = {}  # live member case id -> burst id
        self._df: Counter[str] = Counter()
        self._n_docs = 0
        self._seq = 0
        self._burst_seq = 0
        self._now: datetime | None = None
        self._last_time: datetime | None = None
        self._expiry: list[tuple[datetime, int, str]] = []  # (time, seq, case_id) heap
        self._term_index: dict[str, dict[str, int]] = {}
        self._place_index: dict[str, dict[str, int]] = {}

    # -- public API -------------------------------------------------------------------------------
    @property
    def burst_count(self) -> int:
        return len(self._bursts)

    def burst_level(self, burst_id: str | None) -> str | None:
        """The highest alert level a live burst has reached ("red", "yellow"), or None."""
        burst = self._bursts.get(burst_id) if burst_id else None
        if burst is None or not burst.fired:
            return None
        return "red" if "red" in burst.fired else "yellow"

    def burst_members(self, burst_id: str) -> list[str]:
        burst = self._bursts.get(burst_id)
        return list(burst.members) if burst else []

    def burst_member_details(self, burst_id: str) -> list[tuple[str, datetime, str | None]]:
        """(case_id, case time, reporter id) of a live burst's members, in the order they joined."""
        burst = self._bursts.get(burst_id)
        return [(m.case_id, m.time, m.reporter) for m in burst.members.values()] if burst else []

    def observe(self, case: CaseEvent, terms: CaseTerms | None = None) -> Assignment:
        """Assign one case to a burst, update the window and return the burst's state at intake.

        `terms`: the case's `case_terms`, when computed elsewhere (a Dask worker tokenises in parallel,
        this detector then only does the stateful part); None: computed here from the case's text.
        """
        time = self._case_time(case.created_at)
        self._now = time if self._now is None or time > self._now else self._now
        self._expire()

        existing = self._case_burst.get(case.case_id)
        if existing is not None:  # the same case again (e.g. a replay overlapping live intake)
            return self._assignment(case.case_id, self._bursts[existing], True, None, None)

        if terms is None:
            terms = case_terms(case.title, case.body, self.config)
        weights, place = self._weigh(terms.counts), terms.place
        self._seq += 1
        if not weights:
            return Assignment(case.case_id, None, False, None, 0, 0, 0, 0.0, int(case.votes or 0), 0.0)

        burst, similarity = self._best_burst(weights, place)
        joined = burst is not None
        if burst is None:
            burst = self._new_burst(case.case_id, time)
        member = _Member(
            case_id=case.case_id,
            time=time,
            reporter=None if case.reporter_id is None else str(case.reporter_id),
            votes=None if case.votes is None else int(case.votes),
            weights=weights,
            place=place,
            seq=self._seq,
        )
        self._add_member(burst, member)
        stats = self._stats(burst)  # raising an alert changes none of them
        alert = self._check_alert(burst, case.case_id, stats)
        if alert is not None:
            self.alerts.append(alert)
            logger.info("hot-issue alert %s (%d cases, %d reporters)", alert.alert_id, alert.cases, alert.reporters)
        return self._assignment(case.case_id, burst, joined, similarity, alert, stats)

    def replay(self, events: Iterable[CaseEvent]) -> list[Alert]:
        """Observe events in the given order; return the alerts they raised."""
        raised: list[Alert] = []
        for event in events:
            assignment = self.observe(event)
            if assignment.alert is not None:
                raised.append(assignment.alert)
        return raised

    # -- persistence ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable state; `from_snapshot` restores an equivalent detector."""
        return self.capture().snapshot()

    def capture(self) -> StateCapture:
        """The state `snapshot` renders, taken in milliseconds where rendering takes a large fraction of a
        second: a service takes it under its lock and renders it outside, so intake never waits for it."""
        return StateCapture(
            config=self.config,
            now=self._now,
            last_time=self._last_time,
            seq=self._seq,
            burst_seq=self._burst_seq,
            n_docs=self._n_docs,
            df=dict(self._df),
            bursts=tuple(
                (b.burst_id, b.created_at, b.seq, tuple(level for level in LEVELS if level in b.fired),
                 tuple(b.members.values()))
                for b in sorted(self._bursts.values(), key=lambda b: b.seq)
            ),
            alerts=tuple(self.alerts),
        )

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> HotspotDetector:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"unsupported hot-issue snapshot format {data.get('format')!r}; expected {SNAPSHOT_FORMAT}"
            )
        config = HotspotConfig.model_validate(data["config"])
        self = cls(config)
        self._now = datetime.fromisoformat(data["now"]) if data.get("now") else None
        self._last_time = datetime.fromisoformat(data["last_time"]) if data.get("last_time") else None
        self._seq = int(data["seq"])
        self._burst_seq = int(data["burst_seq"])
        self._n_docs = int(data["n_docs"])
        self._df = Counter({str(k): int(v) for k, v in data["df"].items()})
        for raw in data["bursts"]:
            burst = _Burst(
                burst_id=str(raw["burst_id"]),
                created_at=datetime.fromisoformat(raw["created_at"]),
                seq=int(raw["seq"]),
                fired=set(raw["fired"]),
            )
            self._bursts[burst.burst_id] = burst
            for member_data in raw["members"]:
                self._add_member(burst, _Member.from_dict(member_data))
        self.alerts = [Alert.from_dict(a) for a in data.get("alerts", [])]
        return self

    def rewind_clock(self, latest: datetime) -> bool:
        """Bring a clock that ran ahead of ``latest`` (naive UTC) back to it; whether it had.

        A snapshot saved after a case dated far ahead was observed holds that date as "now"; restored as
        it is, every new case would count as years old and no burst would ever form."""
        if self._now is None or self._now <= latest:
            return False
        self._now = self._last_time = latest
        return True

    # -- internals --------------------------------------------------------------------------------
    def _case_time(self, created_at: datetime | None) -> datetime:
        if created_at is None or created_at != created_at:  # None, NaN or pandas NaT
            time = self._last_time or _EPOCH
        else:
            time = _naive(created_at)
        self._last_time = time
        return time

    def _expire(self) -> None:
        assert self._now is not None
        cutoff = self._now - timedelta(days=self.config.window_days)
        expired: dict[str, list[str]] = {}
        while self._expiry and self._expiry[0][0] < cutoff:
            _, _, case_id = heapq.heappop(self._expiry)
            burst_id = self._case_burst.pop(case_id, None)
            if burst_id is not None:
                expired.setdefault(burst_id, []).append(case_id)
        for burst_id, case_ids in expired.items():
            burst = self._bursts[burst_id]
            for case_id in case_ids:
                self._unindex(burst, burst.members[case_id])
            burst.remove(case_ids)
            if not burst.members:
                del self._bursts[burst_id]

    def _weigh(self, counts: Mapping[str, float]) -> dict[str, float]:
        """The stateful half of the keyword vector: update the document frequencies with this case, then
        sublinear tf x incremental idf, cut to `max_terms`, L2-normalised (see the module docstring)."""
        if not counts:
            return {}
        self._n_docs += 1
        self._df.update(counts.keys())
        df, log, n1 = self._df, math.log, 1 + self._n_docs
        raw = {term: (1.0 + log(tf)) * (log(n1 / (1 + df[term])) + 1.0) for term, tf in counts.items()}
        # Heaviest first, ties by term: sort by term, then stably by weight, descending (two sorts in C
        # instead of a key tuple per term).
        top = sorted(raw)
        top.sort(key=raw.__getitem__, reverse=True)
        del top[self.config.max_terms :]
        weights = list(map(raw.__getitem__, top))
        norm = math.sqrt(math.fsum([w * w for w in weights]))
        return dict(zip(top, [round(w / norm, _WEIGHT_DIGITS) for w in weights], strict=True))

    def _best_burst(
        self, weights: dict[str, float], place: tuple[str, str, str, str] | None
    ) -> tuple[_Burst | None, float | None]:
        cfg = self.config
        overlap: dict[str, float] = {}
        overlap_get = overlap.get
        term_index, max_posting = self._term_index, cfg.max_posting
        for term, weight in islice(weights.items(), cfg.index_terms):
            posting = term_index.get(term)
            if posting and len(posting) <= max_posting:
                for burst_id in posting:
                    overlap[burst_id] = overlap_get(burst_id, 0.0) + weight
        if place is not None:
            for burst_id in self._place_index.get(place[2], ()):
                overlap[burst_id] = overlap_get(burst_id, 0.0) + 1.0
        if not overlap:
            return None, None
        bursts = self._bursts
        ranked = sorted(overlap, key=lambda b: (-overlap[b], bursts[b].seq))[: cfg.max_candidates]
        position = {t: i for i, t in enumerate(weights)}
        best: tuple[float, int, _Burst, float] | None = None
        for burst_id in ranked:
            burst = bursts[burst_id]
            relation = _place_relation(place, burst)
            if relation == "conflict":
                continue
            norm = burst.norm
            if norm == 0.0:
                continue
            similarity = _dot(weights, burst.centroid, position) / norm
            score = similarity + (cfg.same_place_bonus if relation == "same" else 0.0)
            if score >= cfg.similarity_threshold and (best is None or (score, -burst.seq) > (best[0], -best[1])):
                best = (score, burst.seq, burst, similarity)
        if best is None:
            return None, None
        return best[2], round(best[3], 6)

    def _new_burst(self, case_id: str, time: datetime) -> _Burst:
        burst_id = f"hot-{case_id}"
        suffix = 2
        while burst_id in self._bursts:
            burst_id = f"hot-{case_id}-{suffix}"
            suffix += 1
        self._burst_seq += 1
        burst = _Burst(burst_id=burst_id, created_at=time, seq=self._burst_seq)
        self._bursts[burst_id] = burst
        return burst

    def _add_member(self, burst: _Burst, member: _Member) -> None:
        burst.add(member)
        self._case_burst[member.case_id] = burst.burst_id
        heapq.heappush(self._expiry, (member.time, member.seq, member.case_id))
        for term in list(member.weights)[: self.config.index_terms]:
            posting = self._term_index.setdefault(term, {})
            posting[burst.burst_id] = posting.get(burst.burst_id, 0) + 1
        if member.place:
            posting = self._place_index.setdefault(member.place[2], {})
            posting[burst.burst_id] = posting.get(burst.burst_id, 0) + 1

    def _unindex(self, burst: _Burst, member: _Member) -> None:
        keys = [(self._term_index, t) for t in list(member.weights)[: self.config.index_terms]]
        if member.place:
            keys.append((self._place_index, member.place[2]))
        for index, key in keys:
            posting = index[key]
            posting[burst.burst_id] -= 1
            if posting[burst.burst_id] == 0:
                del posting[burst.burst_id]
                if not posting:
                    del index[key]

    def _stats(self, burst: _Burst) -> tuple[int, int, int, float, int, float]:
        cfg = self.config
        assert self._now is not None
        cases = len(burst.members)
        recent_from = self._now - timedelta(days=cfg.growth_days)
        reporter_ids: set[str] = set()
        anonymous = recent = votes = 0
        for m in burst.members.values():  # one pass: a burst can hold hundreds of members
            if m.reporter is None:
                anonymous += 1
            else:
                reporter_ids.add(m.reporter)
            if m.time > recent_from:
                recent += 1
            if m.votes:
                votes += m.votes
        reporters = len(reporter_ids) + (anonymous if cfg.anonymous_reporters_are_distinct else 0)
        growth = (recent / cfg.growth_days) / (cases / cfg.window_days) if cases else 0.0
        age = (self._now - burst.created_at).total_seconds() / 86400.0
        return cases, reporters, recent, round(growth, 4), votes, round(age, 4)

    def _assignment(
        self,
        case_id: str,
        burst: _Burst,
        joined: bool,
        similarity: float | None,
        alert: Alert | None,
        stats: tuple[int, int, int, float, int, float] | None = None,
    ) -> Assignment:
        cases, reporters, recent, growth, votes, age = stats or self._stats(burst)
        return Assignment(
            case_id, burst.burst_id, joined, similarity, cases, reporters, recent, growth, votes, age, alert
        )

    def _check_alert(self, burst: _Burst, case_id: str, stats: tuple[int, int, int, float, int, float]) -> Alert | None:
        cfg = self.config
        cases, reporters, recent, growth, votes, _ = stats
        if cases < cfg.yellow_min_cases or reporters < cfg.yellow_min_reporters:
            return None
        reasons = []
        if cases >= cfg.red_min_cases and reporters >= cfg.red_min_reporters:
            reasons.append("cases")
        if (
            recent >= cfg.red_growth_min_cases
            and growth >= cfg.red_growth_ratio
            and reporters >= cfg.red_growth_min_reporters
        ):
            reasons.append("growth")
        if votes >= cfg.red_min_votes:
            reasons.append("votes")
        level: Literal["yellow", "red"] = "red" if reasons else "yellow"
        if level in burst.fired or "red" in burst.fired:
            return None
        burst.fired.update(("yellow", "red") if level == "red" else ("yellow",))
        place = burst.main_place()
        members = list(burst.members)
        assert self._now is not None
        return Alert(
            alert_id=f"{burst.burst_id}:{level}",
            burst_id=burst.burst_id,
            level=level,
            raised_at=burst.members[case_id].time,
            reason="+".join(reasons) if reasons else "cases",
            keywords=_keywords(burst.centroid, cfg.alert_keywords),
            place=place[0] if place else None,
            first_case_id=members[0],
            last_case_id=case_id,
            member_case_ids=members,
            cases=cases,
            reporters=reporters,
            recent_cases=recent,
            growth_ratio=growth,
            votes=votes,
        )


def replay(events: Iterable[CaseEvent], config: HotspotConfig | None = None) -> list[Alert]:
    """Alerts raised by replaying `events` (in the given order) through a fresh detector."""
    return HotspotDetector(config).replay(events)


# -- helpers ------------------------------------------------------------------------------------------


def _naive(value: datetime) -> datetime:
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    return value.replace(tzinfo=None) if value.tzinfo is not None else value


def _terms(tokens: Iterable[str]) -> list[str]:
    """Terms for similarity from a text's tokens: jieba words (single digits and letters dropped) plus runs
    of single CJK characters joined into one token (names jieba does not know come out as single characters)."""
    tokens = tokens if isinstance(tokens, tuple | list) else tuple(tokens)
    kinds = bytes(map(_TERM_KIND.__getitem__, tokens))
    out: list[str] = []
    done = 0
    for run in _RUNS.finditer(kinds):  # two or more single characters in a row: kept, then joined
        start, end = run.span()
        out += compress(tokens[done:end], kinds[done:end])
        out.append("".join(tokens[start:end]))
        done = end
    out += compress(tokens[done:], kinds[done:])
    return out


# What `_terms` does with a token (kept as a single CJK character, kept as a word, dropped: one ASCII
# character), decided once per distinct token: a batch has ~100k distinct tokens and millions of occurrences.
_DROP, _SINGLE, _WORD = 0, 1, 2
_RUNS = re.compile(re.escape(bytes((_SINGLE,))) + b"{2,}")


class _TermKinds(dict[str, int]):
    MAX = 1 << 18  # entries; dropped whole when full

    def __missing__(self, token: str) -> int:
        if _SINGLE_CHAR.match(token):
            kind = _SINGLE
        elif len(token) > 1 or not token.isascii():
            kind = _WORD
        else:
            kind = _DROP
        if len(self) >= self.MAX:
            self.clear()
        self[token] = kind
        return kind


_TERM_KIND = _TermKinds()


def _dot(weights: dict[str, float], centroid: dict[str, float], position: dict[str, int]) -> float:
    """``sum([w * centroid.get(t, 0.0) for t, w in weights.items()])``, bit for bit, from the terms the two
    share (``position``: each term's place in ``weights``): the others add w * 0.0 = +0.0 (weights are
    positive), which leaves a float sum unchanged, and a case shares a few of its ~40 terms with a burst.

    Two shared terms or fewer are summed in any order: 0.0 + a is a, and a + b is b + a in IEEE arithmetic.
    That is 82% of the candidates a TipDM replay compares, and sorting them cost the replay 15-25% of its time.
    """
    shared = weights.keys() & centroid.keys()
    if len(shared) > 2:
        return sum([weights[t] * centroid[t] for t in sorted(shared, key=position.__getitem__)], 0.0)
    return sum([weights[t] * centroid[t] for t in shared], 0.0)


def _is_strong(place: tuple[str, str, str, str]) -> bool:
    """Whether a case's place may keep it out of a burst: read from the title, or from the body when its
    kind has a reliable suffix (小区, 小学, 医院). Other places read from bodies are too often wrong
    ("说担保公司") to veto a match; they still count as the same place."""
    return place[3] == "title" or place[1] in _RELIABLE_KINDS


def _place_relation(place: tuple[str, str, str, str] | None, burst: _Burst) -> str:
    """'same' when the case's place matches a place of the burst; 'conflict' when the case's place and
    the burst's main place (both strong) are of the same kind but different; else 'none'."""
    if place is None or not burst.places:
        return "none"
    key = place[2]
    if key in burst.places or any(same_place(key, other) for other in burst.places):
        return "same"
    if not _is_strong(place):
        return "none"
    main = burst.main_place(strong_only=True)
    if main is not None and main[1] == place[1]:
        return "conflict"
    return "none"


def _keywords(centroid: Mapping[str, float], k: int) -> list[str]:
    ranked = sorted(
        ((t, w) for t, w in centroid.items() if not t.startswith(_PLACE_PREFIX) and len(t) > 1),
        key=lambda kv: (-kv[1], kv[0]),
    )
    return [t for t, _ in ranked[:k]]


__all__ = [
    "HOT_ISSUE_MIN_CASES",
    "LEVELS",
    "SNAPSHOT_FORMAT",
    "Alert",
    "Assignment",
    "CaseEvent",
    "CaseTerms",
    "HotspotConfig",
    "HotspotDetector",
    "case_terms",
    "replay",
]
