"""Hot-issue benchmark: replay the TipDM votes stream and the demo data through the hot-issue detector.

    .venv/bin/python experiments/bench_hotspots.py [--data PATH] [--config models/defaults/hotspots.yaml]
        [--demo training/demo_data/grievances.csv] [--output experiments/results/hotspots.json]

A few seconds on 2 cores. Both files are replayed in time order (`training.hotspots_cli.events_from_frame`,
every usable row, duplicates included, as `triage hotspots` does) through one fresh `HotspotDetector`
each, with the settings of `--config` (default models/defaults/hotspots.yaml, else the built-in defaults).

Votes stream (``../shared/data/tipdm2020/messages_with_votes_until_2019-06.csv``; skipped with a message
when absent, as on a user's machine):

- every alert: time first raised, level, reason, place, keywords, cases, reporters;
- alerts per month, in total and red (every month that has cases or alerts);
- the known bursts of `KNOWN_BURSTS` below. A known burst is a name, regular expressions over the case's
  normalised ``title + "\\n" + body`` (a case must match all of them, case-insensitive) and a range of
  months (inclusive). Its **member cases** are the replayed cases that match it in that range, in replay
  order. An alert **belongs** to a known burst when the alert's member cases (at the time it was raised)
  include one of the burst's member cases. "Fired after k members" = the number of member cases observed up
  to and including the case whose observation raised the alert. Reported per known burst: members, the
  first alert (any level) and the first red alert with their k, and grouping recall: the share of the
  members that landed in the detector burst that raised the first alert (the detector burst holding most
  members when none alerted); its purity (the share of that detector burst's cases, over the whole
  replay, that are members) is a lower bound, since messages about the same problem that the expressions
  do not match count as impurities.
- targets (issue 3): every known burst alerts within its first 10 member cases; fewer than 4 red alerts in
  every month.

Demo data (``training/demo_data/grievances.csv``, always run): the ground truth is the ``burst`` column.
Per ground-truth burst the same figures (members, first and red alert after k members, recall, purity);
and the alerts that fired on non-burst cases: an alert is on a burst when more than half of its member
cases at raise time belong to one ground-truth burst, otherwise it fired on non-burst cases.

Writes experiments/results/hotspots.json and prints tables. The JSON lists alerts by case ids, place and
keywords (the detector's own output), never case titles or bodies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.text import init_tokenizer, normalise  # noqa: E402
from models.hotspot_settings import DEFAULT_HOTSPOT_CONFIG, load_hotspot_config  # noqa: E402
from models.hotspots import Alert, Assignment, CaseEvent, HotspotConfig, HotspotDetector  # noqa: E402
from training.config import ConfigError  # noqa: E402
from training.hotspots_cli import events_from_frame  # noqa: E402
from training.loading import load_cases  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tipdm2020" / "messages_with_votes_until_2019-06.csv"
DEFAULT_DEMO = ROOT / "training" / "demo_data" / "grievances.csv"
RESULTS = ROOT / "experiments" / "results" / "hotspots.json"
#: Targets of issue 3.
MAX_MEMBERS_BEFORE_ALERT = 10
MAX_RED_PER_MONTH = 3  # "fewer than 4 red alerts a month"
console = Console(width=None if sys.stdout.isatty() else 150)  # wide tables in logs and pipes
PROTOCOL = {
    "replay": "every usable row, in time order (training.hotspots_cli.events_from_frame), one fresh detector "
              "per file",
    "known_burst_members": "cases matching every pattern of the burst (case-insensitive, normalised title + "
                           "newline + body) whose time falls in its months, in replay order",
    "alert_belongs_to_burst": "the alert's member cases at raise time include a member of the burst",
    "fired_after_k_members": "members observed up to and including the case whose observation raised the alert",
    "recall": "share of the members assigned to the detector burst that raised the first alert (else the "
              "detector burst holding most members)",
    "purity": "share of that detector burst's cases (whole replay) that are members; a lower bound for the "
              "votes stream",
    "demo_alert_on_burst": "more than half of the alert's member cases belong to one ground-truth burst; "
                           "otherwise it fired on non-burst cases",
}


@dataclass(frozen=True)
class KnownBurst:
    """A burst known to be in the votes stream. Members: cases matching every pattern (case-insensitive,
    over the normalised title + "\\n" + body) whose time falls in the months `first_month`..`last_month`."""

    name: str
    patterns: tuple[str, ...]
    first_month: str  # "YYYY-MM"
    last_month: str  # "YYYY-MM", inclusive
    note: str = ""


# The bursts issue 3 names. Add a row for each further burst a release should be checked on.
KNOWN_BURSTS: tuple[KnownBurst, ...] = (
    KnownBurst("58车贷", (r"58车贷",), "2019-01", "2019-05", "the many messages about the 58车贷 case"),
    KnownBurst(
        "月亮岛 110 kV line", (r"月亮岛", r"110|高压"), "2019-01", "2019-06",
        # A bare 线 would also match unrelated mentions of 月亮岛 (热线, 地铁4号线, 直线距离).
        "the 110 kV power line at 月亮岛",
    ),
)


# -- replay -----------------------------------------------------------------------------------------------


@dataclass
class Replay:
    events: list[CaseEvent]
    assignments: list[Assignment]
    alerts: list[Alert]
    seconds: float

    def __post_init__(self) -> None:
        self.position = {e.case_id: i for i, e in enumerate(self.events)}
        self.burst_of = {a.case_id: a.burst_id for a in self.assignments}
        self.burst_cases = Counter(a.burst_id for a in self.assignments if a.burst_id is not None)


def replay_frame(frame: pd.DataFrame, config: HotspotConfig) -> Replay:
    events = list(events_from_frame(frame))
    detector = HotspotDetector(config)
    start = time.perf_counter()
    assignments = [detector.observe(e) for e in events]
    seconds = time.perf_counter() - start
    alerts = [a.alert for a in assignments if a.alert is not None]
    return Replay(events, assignments, alerts, seconds)


def burst_figures(name: str, members: Sequence[str], run: Replay) -> dict[str, Any]:
    """Figures of one known (or ground-truth) burst whose member case ids are `members`, in replay order."""
    member_set = set(members)
    member_positions = sorted(run.position[c] for c in members)

    def after(alert: Alert) -> int:  # members observed up to and including the raising case
        raised_at = run.position[alert.last_case_id]
        return sum(1 for p in member_positions if p <= raised_at)

    linked = [a for a in run.alerts if member_set.intersection(a.member_case_ids)]
    first = linked[0] if linked else None
    red = next((a for a in linked if a.level == "red"), None)
    spread = Counter(run.burst_of[c] for c in members)
    first_seen: dict[str | None, int] = {}
    for c in members:
        first_seen.setdefault(run.burst_of[c], run.position[c])
    if first is not None:
        main: str | None = first.burst_id
    else:  # no alert: the detector burst holding most members (ties: the one reached first)
        ranked = sorted((b for b in spread if b is not None), key=lambda b: (-spread[b], first_seen[b]))
        main = ranked[0] if ranked else None
    in_main = spread.get(main, 0) if main is not None else 0
    return {
        "name": name,
        "members": len(members),
        "member_case_ids": list(members),
        "first_member_at": _iso(run.events[member_positions[0]].created_at) if members else None,
        "alerted": first is not None,
        "first_alert": _alert_ref(first, after(first)) if first else None,
        "first_red_alert": _alert_ref(red, after(red)) if red else None,
        "first_alert_after_members": after(first) if first else None,
        "red_alert_after_members": after(red) if red else None,
        "alerts": [_alert_ref(a, after(a)) for a in linked],
        "main_burst_id": main,
        "recall": in_main / len(members) if members else None,
        "purity": in_main / run.burst_cases[main] if main is not None and run.burst_cases[main] else None,
        "main_burst_cases": run.burst_cases[main] if main is not None else 0,
        "member_spread_over_bursts": sorted((n for b, n in spread.items() if b is not None), reverse=True),
        "members_without_vector": spread.get(None, 0),
    }


def _alert_ref(alert: Alert, after_members: int) -> dict[str, Any]:
    return {"alert_id": alert.alert_id, "level": alert.level, "raised_at": _iso(alert.raised_at),
            "after_members": after_members, "cases": alert.cases, "reporters": alert.reporters}


def alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "raised_at": _iso(alert.raised_at),
        "level": alert.level,
        "reason": alert.reason,
        "place": alert.place,
        "keywords": alert.keywords,
        "cases": alert.cases,
        "reporters": alert.reporters,
        "recent_cases": alert.recent_cases,
        "growth_ratio": alert.growth_ratio,
        "votes": alert.votes,
        "first_case_id": alert.first_case_id,
        "last_case_id": alert.last_case_id,
        "member_case_ids": alert.member_case_ids,
    }


def per_month(run: Replay) -> list[dict[str, Any]]:
    cases = Counter(e.created_at.strftime("%Y-%m") for e in run.events if e.created_at is not None)
    alerts = Counter(a.raised_at.strftime("%Y-%m") for a in run.alerts)
    red = Counter(a.raised_at.strftime("%Y-%m") for a in run.alerts if a.level == "red")
    return [{"month": m, "cases": cases[m], "alerts": alerts[m], "red": red[m]}
            for m in sorted(set(cases) | set(alerts))]


def known_members(burst: KnownBurst, run: Replay) -> list[str]:
    patterns = [re.compile(p, re.IGNORECASE) for p in burst.patterns]
    start = pd.Period(burst.first_month, "M").start_time
    end = (pd.Period(burst.last_month, "M") + 1).start_time
    out = []
    for event in run.events:
        if event.created_at is None or not start <= event.created_at < end:
            continue
        text = f"{normalise(event.title)}\n{normalise(event.body)}"
        if all(p.search(text) for p in patterns):
            out.append(event.case_id)
    return out


# -- the two data sets --------------------------------------------------------------------------------------


def bench_votes(path: Path, config: HotspotConfig) -> dict[str, Any]:
    loaded = load_cases([path], training=False)
    run = replay_frame(loaded.frame, config)
    months = per_month(run)
    bursts = [burst_figures(b.name, known_members(b, run), run) | {"definition": asdict(b)} for b in KNOWN_BURSTS]
    early = {b["name"]: b["first_alert_after_members"] is not None
             and b["first_alert_after_members"] <= MAX_MEMBERS_BEFORE_ALERT for b in bursts}
    worst_month = max(months, key=lambda m: m["red"]) if months else None
    targets = {
        f"every_known_burst_alerts_within_{MAX_MEMBERS_BEFORE_ALERT}_members": all(early.values()),
        "per_burst": early,
        f"red_alerts_fewer_than_{MAX_RED_PER_MONTH + 1}_every_month": all(
            m["red"] <= MAX_RED_PER_MONTH for m in months),
        "max_red_in_a_month": worst_month["red"] if worst_month else 0,
        "max_red_month": worst_month["month"] if worst_month else None,
    }
    return {
        "data": _file_info(path, loaded.report.summary()["rows_read"], len(run.events)),
        "span": [_iso(run.events[0].created_at), _iso(run.events[-1].created_at)] if run.events else None,
        "replay_s": run.seconds,
        "replay_ms_per_case": 1000 * run.seconds / max(len(run.events), 1),
        "alerts_total": len(run.alerts),
        "alerts_red": sum(a.level == "red" for a in run.alerts),
        "alerts": [alert_row(a) for a in run.alerts],
        "per_month": months,
        "known_bursts": bursts,
        "targets": targets,
        "targets_met": all(v for k, v in targets.items() if isinstance(v, bool)),
    }


def bench_demo(path: Path, config: HotspotConfig) -> dict[str, Any]:
    loaded = load_cases([path], training=False)
    frame = loaded.frame
    if "burst" not in frame.columns:
        raise SystemExit(f"{path}: no `burst` column (the demo data's ground truth)")
    truth = {str(c): ("" if pd.isna(b) else str(b).strip()) for c, b in zip(frame["case_id"], frame["burst"],
                                                                           strict=True)}
    run = replay_frame(frame, config)
    members: dict[str, list[str]] = {}
    for event in run.events:
        if truth[event.case_id]:
            members.setdefault(truth[event.case_id], []).append(event.case_id)
    bursts = [burst_figures(name, ids, run) for name, ids in members.items()]
    on_burst, non_burst = [], []
    for alert in run.alerts:
        label, n = Counter(truth[c] for c in alert.member_case_ids).most_common(1)[0]
        (on_burst if label and n > len(alert.member_case_ids) / 2 else non_burst).append(alert)
    recalls = [b["recall"] for b in bursts]
    purities = [b["purity"] for b in bursts]
    return {
        "data": _file_info(path, loaded.report.summary()["rows_read"], len(run.events)),
        "replay_s": run.seconds,
        "ground_truth_bursts": len(bursts),
        "cases_in_bursts": sum(b["members"] for b in bursts),
        "bursts_alerted": sum(b["alerted"] for b in bursts),
        f"bursts_alerted_within_{MAX_MEMBERS_BEFORE_ALERT}_members": sum(
            b["alerted"] and b["first_alert_after_members"] <= MAX_MEMBERS_BEFORE_ALERT for b in bursts),
        "recall_mean": sum(recalls) / len(recalls) if recalls else None,
        "recall_min": min(recalls) if recalls else None,
        "purity_mean": sum(purities) / len(purities) if purities else None,
        "purity_min": min(purities) if purities else None,
        "alerts_total": len(run.alerts),
        "alerts_red": sum(a.level == "red" for a in run.alerts),
        "alerts_on_bursts": len(on_burst),
        "alerts_on_non_burst_cases": len(non_burst),
        "non_burst_alert_ids": [a.alert_id for a in non_burst],
        "non_burst_cases_in_alerts": sum(1 for a in run.alerts for c in a.member_case_ids if not truth[c]),
        "bursts": bursts,
        "alerts": [alert_row(a) for a in run.alerts],
    }


# -- output ---------------------------------------------------------------------------------------------------


def print_tables(report: dict[str, Any], output: Path) -> None:
    votes, demo = report["votes"], report["demo"]
    cfg = report["config"]
    console.print(f"config {cfg['version']} ({cfg['source']})", highlight=False)
    if "skipped" not in votes:
        name = votes["data"]["file"]
        table = Table(title=f"alerts on {name} ({votes['data']['cases_replayed']} cases replayed)")
        for col in ("raised at", "level", "reason", "place", "keywords", "cases", "reporters"):
            table.add_column(col, justify="right" if col in ("cases", "reporters") else "left",
                             no_wrap=col != "keywords")
        for a in votes["alerts"]:
            level = f"[red]{a['level']}[/]" if a["level"] == "red" else f"[yellow]{a['level']}[/]"
            table.add_row(a["raised_at"][:16].replace("T", " "), level, a["reason"], a["place"] or "",
                          " ".join(a["keywords"][:5]), str(a["cases"]), str(a["reporters"]))
        console.print(table)

        table = Table(title="alerts per month")
        for col in ("month", "cases", "alerts", "red"):
            table.add_column(col, justify="left" if col == "month" else "right")
        for m in votes["per_month"]:
            table.add_row(m["month"], str(m["cases"]), str(m["alerts"]), str(m["red"]))
        table.add_row("total", str(sum(m["cases"] for m in votes["per_month"])), str(votes["alerts_total"]),
                      str(votes["alerts_red"]), style="bold")
        console.print(table)

        console.print(_burst_table(f"known bursts in {name}", votes["known_bursts"]))
        t = votes["targets"]
        ok = "[green]met[/]" if votes["targets_met"] else "[red]NOT met[/]"
        console.print(
            f"targets {ok}: every known burst alerts within its first {MAX_MEMBERS_BEFORE_ALERT} member cases: "
            f"{_yes(t[f'every_known_burst_alerts_within_{MAX_MEMBERS_BEFORE_ALERT}_members'])}; "
            f"fewer than {MAX_RED_PER_MONTH + 1} red alerts in every month: "
            f"{_yes(t[f'red_alerts_fewer_than_{MAX_RED_PER_MONTH + 1}_every_month'])} "
            f"(most: {t['max_red_in_a_month']} in {t['max_red_month']}); "
            f"replay {votes['replay_ms_per_case']:.2f} ms/case", highlight=False)
    else:
        console.print(f"[yellow]skipped:[/] {votes['skipped']}", highlight=False)

    console.print(_burst_table(f"demo bursts in {demo['data']['file']} ({demo['data']['cases_replayed']} cases)",
                               demo["bursts"]))
    console.print(
        f"demo: {demo['bursts_alerted']}/{demo['ground_truth_bursts']} bursts alerted; recall mean "
        f"{demo['recall_mean']:.3f} (min {demo['recall_min']:.2f}), purity mean {demo['purity_mean']:.3f} "
        f"(min {demo['purity_min']:.2f}); {demo['alerts_total']} alerts ({demo['alerts_red']} red), "
        f"{demo['alerts_on_non_burst_cases']} on non-burst cases; {demo['non_burst_cases_in_alerts']} non-burst "
        f"cases among alert members", highlight=False)
    console.print(f"total {report['runtime_s']:.1f}s; written to {output}", highlight=False)


def _burst_table(title: str, bursts: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("burst", "members", "first alert", "after k", "red after k", "recall", "purity", "spread"):
        table.add_column(col, justify="left" if col in ("burst", "first alert", "spread") else "right")
    for b in bursts:
        first = b["first_alert"]
        table.add_row(
            b["name"], str(b["members"]),
            f"{first['level']} {first['raised_at'][:10]}" if first else "[red]none[/]",
            _opt(b["first_alert_after_members"]), _opt(b["red_alert_after_members"]),
            _opt(b["recall"], "{:.2f}"), _opt(b["purity"], "{:.2f}"),
            "+".join(str(n) for n in b["member_spread_over_bursts"]),
        )
    return table


def _opt(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"


def _iso(value: Any) -> str | None:
    return None if value is None else pd.Timestamp(value).isoformat()


def _file_info(path: Path, rows_read: int, replayed: int) -> dict[str, Any]:
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rows_read": rows_read,
            "cases_replayed": replayed}


def _without_shared_text(report: dict) -> dict:
    """The committed results keep counts, times and ids for the real data, not words taken from it.

    Places and keywords are the detector's output, but they are text of the shared data set, which the
    project does not commit; the console table shows them.
    """
    votes = report.get("votes")
    if isinstance(votes, dict) and isinstance(votes.get("alerts"), list):
        votes = dict(votes)
        votes["alerts"] = [{k: v for k, v in a.items() if k not in ("place", "keywords")} for a in votes["alerts"]]
        report = {**report, "votes": votes}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the votes stream to replay")
    parser.add_argument("--config", type=Path, default=None,
                        help="detector settings (YAML); default models/defaults/hotspots.yaml, else built-in")
    parser.add_argument("--demo", type=Path, default=DEFAULT_DEMO, help="demo data with a `burst` column")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        config = load_hotspot_config(args.config)
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    if args.config is not None:
        source = str(args.config)
    elif DEFAULT_HOTSPOT_CONFIG.exists():
        source = str(DEFAULT_HOTSPOT_CONFIG.relative_to(ROOT))
    else:
        source = "built-in defaults"

    start = time.perf_counter()
    init_tokenizer()
    if args.data.exists():
        votes = bench_votes(args.data, config)
    else:
        votes = {"skipped": f"{args.data} is absent (the shared data is not on this machine); demo data only",
                 "targets_met": None}
    demo = bench_demo(args.demo, config)
    runtime = time.perf_counter() - start

    report = {
        "protocol": PROTOCOL,
        "config": {"source": source, "version": config.version, "values": config.model_dump(mode="json")},
        "known_burst_definitions": [asdict(b) for b in KNOWN_BURSTS],
        "votes": votes,
        "demo": demo,
        "runtime_s": runtime,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": shlex.join(sys.orig_argv),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(_without_shared_text(report), ensure_ascii=False, indent=2), encoding="utf-8")
    print_tables(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
