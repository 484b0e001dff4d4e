"""Case-by-case equality of two checkouts' scoring paths, for one fixed model.

    # each checkout's code scores the same cases with the same bundle (trained here if the file is absent)
    .venv/bin/python experiments/compare_paths.py dump --root /tmp/old-checkout --bundle /tmp/bundle --out old.json
    .venv/bin/python experiments/compare_paths.py dump --root . --bundle /tmp/bundle --out new.json
    .venv/bin/python experiments/compare_paths.py compare old.json new.json

A refactor of the hot path (one preparation per case, TF-IDF from the fitted vocabularies, one `assess`)
must not change an answer. ``dump`` imports the project from ``--root`` and records, for every case of
``--data`` (default: the shipped demo data) in time order:

- the service path: `serving.triage_service.triage_cases` one case per call, with a fresh SQLite audit store
  and hot-issue service, as `/v1/triage` runs it: department, confidence, top 3, review flag and reason,
  risk level, probabilities and reasons, hot issue;
- the batch path: `training.predict.attach_hot_issues` then `models.mlflow_model.routes_frame`, as
  `triage predict` runs it: department, confidences, risk level and probabilities, hot-issue id.

``compare`` checks every field: probabilities within ``--tolerance`` (1e-6), everything else equal, and
exits 1 on any difference. Only ids and numbers are written; no case text.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
DEMO = HERE / "training" / "demo_data" / "grievances.csv"


def _train(directory: Path, data: Path) -> None:
    """Train the default recipe on ``data`` with the imported checkout's code, into a throw-away MLflow
    store, and save the bundle in ``directory``."""
    from training.config import load_config
    from training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.environ["TRIAGE_MLFLOW_ARTIFACTS"] = f"{tmp}/artifacts"
        train([data], load_config()).bundle.save(directory)


def dump(root: Path, bundle_path: Path, data: Path, out: Path) -> None:
    sys.path.insert(0, str(root.resolve()))
    import pandas as pd

    # Any file name: a bundle saved by an older checkout (bundle.pkl.gz, bundle.joblib) loads in every newer one.
    if not any((bundle_path / name).exists() for name in ("bundle.pkl.zst", "bundle.pkl.gz", "bundle.joblib")):
        _train(bundle_path, data)
    from models.bundle import TriageBundle
    from models.hotspot_settings import load_hotspot_config
    from models.mlflow_model import LoadedModel, routes_frame
    from serving.hotspot_service import HotspotService
    from serving.schemas import TriageRequest
    from serving.triage_service import triage_cases
    from store import Store, upgrade_database
    from training.loading import load_cases
    from training.predict import attach_hot_issues

    bundle = TriageBundle.load(bundle_path)
    model = LoadedModel(bundle, str(bundle_path), name="compare", version="1")
    cases = load_cases([data]).frame
    cases = cases.sort_values("created_at", kind="stable").reset_index(drop=True)
    config = load_hotspot_config()

    service: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/audit.db"
        upgrade_database(url)
        store = Store.from_url(url)
        hotspots = HotspotService.restore(store, config)
        try:
            for row in cases.itertuples(index=False):
                created = row.created_at
                request = TriageRequest(
                    case_id=str(row.case_id), title=str(row.title or ""), body=str(row.body or ""),
                    created_at=None if pd.isna(created) else pd.Timestamp(created).to_pydatetime(),
                    reporter_id=None if pd.isna(row.reporter_id) else str(row.reporter_id),
                )
                (answer,) = triage_cases(model, [request], store=store, hotspots=hotspots)
                service[request.case_id] = answer.model_dump(
                    mode="json", exclude={"prediction_id", "stored_at", "case_id"}
                )
        finally:
            hotspots.close()
            store.dispose()

    replayed = attach_hot_issues(cases, config)
    frame = routes_frame(bundle, replayed)
    frame.insert(0, "case_id", replayed["case_id"].astype(str).to_numpy())
    frame["hot_issue_id"] = replayed["hot_issue_id"].to_numpy()
    batch = {
        str(r["case_id"]): {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in json.loads(frame.to_json(orient="records", force_ascii=False))
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"root": str(root.resolve()), "bundle": str(bundle_path), "data": str(data),
                               "service": service, "batch": batch}, ensure_ascii=False), encoding="utf-8")
    print(f"{len(service)} cases through the service path, {len(batch)} through the batch path -> {out}")


def _differences(a: Any, b: Any, tolerance: float, path: str, found: dict[str, int]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _differences(a.get(key), b.get(key), tolerance, f"{path}.{key}", found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _differences(x, y, tolerance, f"{path}[{i}]" if not isinstance(x, dict) else path + "[]", found)
    elif isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        if abs(float(a) - float(b)) > tolerance:
            found[path] = found.get(path, 0) + 1
    elif a != b:
        found[path] = found.get(path, 0) + 1


def compare(first: Path, second: Path, tolerance: float) -> int:
    a = json.loads(first.read_text(encoding="utf-8"))
    b = json.loads(second.read_text(encoding="utf-8"))
    status = 0
    for part in ("service", "batch"):
        found: dict[str, int] = {}
        cases = sorted(set(a[part]) | set(b[part]))
        differing = 0
        for case_id in cases:
            before = sum(found.values())
            _differences(a[part].get(case_id), b[part].get(case_id), tolerance, part, found)
            differing += sum(found.values()) > before
        print(f"{part}: {len(cases)} cases, {differing} differing")
        for field, n in sorted(found.items()):
            print(f"  {field}: {n}")
        status |= differing > 0
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--root", type=Path, default=HERE, help="checkout whose code scores")
    d.add_argument("--bundle", type=Path, required=True,
                   help="bundle folder (trained with --root's code if absent; dump the older checkout first)")
    d.add_argument("--data", type=Path, default=DEMO)
    d.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("first", type=Path)
    c.add_argument("second", type=Path)
    c.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.root, args.bundle, args.data, args.out)
    else:
        sys.exit(compare(args.first, args.second, args.tolerance))


if __name__ == "__main__":
    main()
