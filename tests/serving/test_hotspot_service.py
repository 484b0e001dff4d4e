"""The service around the hot-issue detector: periodic snapshots never hold up triage."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from serving.hotspot_service import HotspotService
from serving.store import Store, upgrade_database
from training.config import load_hotspot_config

START = datetime(2026, 9, 1, 8, 0)


class BlockingSink:
    """Writes like the store, but a snapshot waits until the test lets it go."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.release = threading.Event()
        self.started = threading.Event()
        self.snapshots = 0

    def add_hotspot_member(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.add_hotspot_member(*args, **kwargs)

    def add_alert(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.add_alert(*args, **kwargs)

    def save_snapshot(self, payload: Mapping[str, Any], *, detector_version: str | None = None) -> Any:
        self.started.set()
        assert self.release.wait(timeout=60)
        self.snapshots += 1
        return self.store.save_snapshot(payload, detector_version=detector_version)


def test_a_slow_snapshot_write_does_not_block_observing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hs.db'}"
    upgrade_database(url)
    with Store.from_url(url) as store:
        sink = BlockingSink(store)
        service = HotspotService.restore(store, load_hotspot_config(None), snapshot_every=5, sink=sink)
        for i in range(5):  # the 5th case makes a snapshot due
            service.observe(f"C{i}", START + timedelta(hours=i), f"第{i}号路灯不亮", "晚上很黑", f"U{i}")
        assert sink.started.wait(timeout=30)
        observed = threading.Event()

        def more() -> None:
            for i in range(5, 12):
                service.observe(f"C{i}", START + timedelta(hours=i), f"第{i}号路灯不亮", "晚上很黑", f"U{i}")
            observed.set()

        threading.Thread(target=more, daemon=True).start()
        # With the write blocked, triage goes on: observing never waits for the snapshot.
        assert observed.wait(timeout=30), "observe waited for the snapshot write"
        assert store.latest_snapshot() is None
        sink.release.set()
        service.close()  # waits for the write in flight, then saves the 7 cases observed since
        assert sink.snapshots == 2
        snapshot = store.latest_snapshot()
        assert snapshot is not None and snapshot.payload["n_docs"] == 12
