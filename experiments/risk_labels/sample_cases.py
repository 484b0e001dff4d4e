"""Draw the real cases to annotate for the risk model: a blind set and a training set, by id only.

    .venv/bin/python experiments/risk_labels/sample_cases.py [--data-dir ../shared/data] [--blind 600] [--train 1600]

Why a script: the draw must be reproducible and must never overlap the 300 cases of
``risk/risk_labels_dev.csv`` (read while the cue lexicon was written) or each other, not even as a copy
of the same message under another id. Writes ``assignment.csv`` beside this file (source, case_id,
split, stratum, slice): ids only, no case text. With ``--sheets DIR`` it also writes the annotators'
sheets (with text) to DIR, which must be outside the repository.

Recipe, mirroring how the dev file was drawn (about 60% from messages with risk-like words):
- pool: the four TipDM 2020 files, one row per distinct message (`training.loading.text_keys`: the same
  dedup key or group key is one message; the first file in POOL_FILES order wins), minus every message
  that is a dev case (same source and id, same key, or the same first 60 key characters, because dev
  bodies were cut at 700 characters);
- stratum ``cue`` (60%): messages holding a word of SAMPLING_WORDS, a broad list written from the
  rubric's wording alone (never read off cases) and used only to enrich the draw, never as a feature;
- stratum ``random`` (40%): uniform over the rest of the pool;
- each stratum is split between blind and train at random, so both follow the same recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from training.loading import text_keys  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 20261206
KEY_PREFIX = 60
BODY_CHARS = 700  # what an annotator reads, as in the dev file
POOL_FILES = {
    "tipdm2020 messages_labeled": "tipdm2020/messages_labeled.csv",
    "tipdm2020 messages_with_votes": "tipdm2020/messages_with_votes_until_2019-06.csv",
    "tipdm2020 messages_with_replies": "tipdm2020/messages_with_replies.csv",
    "tipdm2020 messages_unlabeled": "tipdm2020/messages_unlabeled.csv",
}
# Risk-like words from the rubric's own wording and its near synonyms. Enrichment only.
SAMPLING_WORDS = (
    "危险", "隐患", "安全", "事故", "死亡", "身亡", "受伤", "生命", "爆炸", "着火", "火灾", "燃气", "煤气", "倒塌",
    "坍塌", "裂缝", "漏电", "电线", "洪水", "淹", "塌方", "滑坡", "电梯", "中毒", "饮用水", "自来水", "疫情",
    "传染", "抢救", "急救", "拖欠", "欠薪", "讨薪", "农民工", "烂尾", "交房", "集资", "诈骗", "骗", "跑路",
    "强拆", "强制", "拆迁", "上访", "聚集", "堵路", "维权", "打人", "殴打", "威胁", "恐吓", "自杀", "跳楼",
    "幼儿园", "学校", "孩子", "老人", "残疾", "污染", "噪音", "恶臭", "停水", "停电", "多次", "无果", "上百",
    "几十", "村民", "业主", "群众", "血汗钱", "走投无路",
)


def load_pool(data_dir: Path) -> pd.DataFrame:
    frames = []
    for source, rel in POOL_FILES.items():
        raw = pd.read_csv(data_dir / rel, dtype=str, keep_default_na=False)
        frames.append(pd.DataFrame({
            "source": source,
            "case_id": raw["留言编号"].str.strip(),
            "title": raw["留言主题"],
            "body": raw["留言详情"],
            "created_at": raw["留言时间"],
            "department": raw.get("一级标签", pd.Series("", index=raw.index)),
        }))
    pool = pd.concat(frames, ignore_index=True)
    keys = [text_keys(t, b) for t, b in zip(pool["title"], pool["body"], strict=True)]
    pool["dedup_key"] = [k[0] for k in keys]
    pool["group_key"] = [k[1] for k in keys]
    pool = pool[pool["case_id"] != ""]
    pool = pool.drop_duplicates(["source", "case_id"])
    pool = pool.drop_duplicates("dedup_key").drop_duplicates("group_key")
    return pool.reset_index(drop=True)


def dev_exclusions(data_dir: Path) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    dev = pd.read_csv(data_dir / "risk/risk_labels_dev.csv", dtype=str, keep_default_na=False)
    ids = set(zip(dev["source"], dev["case_id"].str.strip(), strict=True))
    keys: set[str] = set()
    prefixes: set[str] = set()
    for title, body in zip(dev["title"], dev["body"], strict=True):
        dedup, group = text_keys(title, body)
        keys |= {dedup, group}
        prefixes |= {dedup[:KEY_PREFIX], group[:KEY_PREFIX]}
    return ids, keys, prefixes


def _source_alias(source: str) -> str:
    return "tipdm2020 messages_with_votes" if "votes" in source else source


def draw(
    data_dir: Path, n_blind: int, n_train: int, cue_share: float, slice_size: int, blind_top_up: int = 0,
    more_train: tuple[int, ...] = (),
) -> pd.DataFrame:
    pool = load_pool(data_dir)
    dev_ids, dev_keys, dev_prefixes = dev_exclusions(data_dir)
    is_dev = pd.Series(
        [
            (_source_alias(s), c) in dev_ids or d in dev_keys or g in dev_keys
            or d[:KEY_PREFIX] in dev_prefixes or g[:KEY_PREFIX] in dev_prefixes
            for s, c, d, g in zip(pool["source"], pool["case_id"], pool["dedup_key"], pool["group_key"], strict=True)
        ],
        index=pool.index,
    )
    pool = pool[~is_dev].copy()
    text = (pool["title"] + " " + pool["body"]).str.slice(0, BODY_CHARS + 200)
    pool["stratum"] = np.where(text.apply(lambda t: any(w in t for w in SAMPLING_WORDS)), "cue", "random")
    rng = np.random.default_rng(SEED)
    total = n_blind + n_train
    n_cue = round(total * cue_share)
    cue_rows = pool.index[pool["stratum"] == "cue"].to_numpy()
    picked_cue = rng.choice(cue_rows, size=n_cue, replace=False)
    rest = pool.index.difference(picked_cue).to_numpy()
    picked_random = rng.choice(rest, size=total - n_cue, replace=False)
    drawn = pool.loc[np.concatenate([picked_cue, picked_random])].copy()
    drawn["stratum"] = ["cue"] * n_cue + ["random"] * (total - n_cue)
    # Blind and train get the same stratum mix.
    drawn["split"] = "train"
    for stratum in ("cue", "random"):
        rows = drawn.index[drawn["stratum"] == stratum].to_numpy()
        k = round(n_blind * (len(rows) / total))
        drawn.loc[rng.choice(rows, size=k, replace=False), "split"] = "blind"
    drawn = drawn.sample(frac=1.0, random_state=SEED)  # annotators see the strata mixed
    drawn["slice"] = ""
    for split in ("blind", "train"):
        rows = drawn.index[drawn["split"] == split]
        drawn.loc[rows, "slice"] = [f"{split}-{i // slice_size + 1:02d}" for i in range(len(rows))]
    if blind_top_up:
        # The first draw let in a message with neither title nor body (its label is dropped); a later,
        # separate draw adds blind cases with text without changing the first one.
        has_text = (pool["title"].str.strip() + pool["body"].str.strip()) != ""
        rest = pool.index[has_text & ~pool.index.isin(drawn.index)].to_numpy()
        extra = pool.loc[np.random.default_rng(SEED + 1).choice(rest, size=blind_top_up, replace=False)].copy()
        extra["stratum"], extra["split"], extra["slice"] = "random", "blind", "blind-topup"
        drawn = pd.concat([drawn, extra])
    # Later, separate draws of training cases by the same 60/40 recipe, each leaving the earlier ones as they were.
    for draw_no, size in enumerate(more_train, start=2):
        drawn = pd.concat([drawn, _more_training_cases(pool, drawn, size, cue_share, draw_no)])
    return drawn


def _more_training_cases(pool: pd.DataFrame, drawn: pd.DataFrame, size: int, cue_share: float,
                         draw_no: int) -> pd.DataFrame:
    has_text = (pool["title"].str.strip() + pool["body"].str.strip()) != ""
    free = has_text & ~pool.index.isin(drawn.index)
    rng = np.random.default_rng(SEED + draw_no)
    free_cue = pool.index[free & (pool["stratum"] == "cue")].to_numpy()
    # The fifth draw found fewer cue messages left than 60% of it: it takes all of them, the rest at random.
    n_cue = min(round(size * cue_share), len(free_cue))
    cue = rng.choice(free_cue, size=n_cue, replace=False)
    rest = pool.index[free & ~pool.index.isin(cue)].to_numpy()
    rand = rng.choice(rest, size=size - n_cue, replace=False)
    extra = pool.loc[np.concatenate([cue, rand])].copy()
    extra["stratum"] = ["cue"] * n_cue + ["random"] * (size - n_cue)
    extra["split"] = "train"
    extra = extra.sample(frac=1.0, random_state=SEED + draw_no)
    extra["slice"] = [f"train{draw_no}-{i // 250 + 1:02d}" for i in range(len(extra))]  # 250 per annotator
    return extra


def write_sheets(drawn: pd.DataFrame, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in drawn.groupby("slice"):
        with open(directory / f"{name}.jsonl", "w", encoding="utf-8") as out:
            for row in part.itertuples():
                out.write(json.dumps({
                    "source": row.source, "case_id": row.case_id, "created_at": row.created_at,
                    "title": row.title.strip(), "body": " ".join(row.body.split())[:BODY_CHARS],
                }, ensure_ascii=False) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--blind", type=int, default=600)
    parser.add_argument("--train", type=int, default=1600)
    parser.add_argument("--cue-share", type=float, default=0.6)
    parser.add_argument("--slice-size", type=int, default=200)
    parser.add_argument("--blind-top-up", type=int, default=5, help="blind cases drawn after the first draw")
    parser.add_argument("--more-train", type=int, nargs="*", default=[2000, 3000, 2000, 3000],
                        help="sizes of the later draws of training cases, in the order they were made")
    parser.add_argument("--sheets", type=Path, help="write annotators' sheets (with text) here, outside the repo")
    args = parser.parse_args()
    if not (args.data_dir / "tipdm2020").is_dir():
        print(f"skipped: no shared data at {args.data_dir}")
        return 0
    drawn = draw(args.data_dir, args.blind, args.train, args.cue_share, args.slice_size, args.blind_top_up,
                 tuple(args.more_train))
    out = drawn[["source", "case_id", "split", "stratum", "slice"]].sort_values(["split", "slice", "source", "case_id"])
    out.to_csv(HERE / "assignment.csv", index=False)
    if args.sheets:
        if args.sheets.resolve().is_relative_to(ROOT):
            print("--sheets must be outside the repository (the sheets hold case text)")
            return 2
        write_sheets(drawn, args.sheets)
    print(out.groupby(["split", "stratum"]).size().to_string())
    print(drawn.groupby(["split", "source"]).size().to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
