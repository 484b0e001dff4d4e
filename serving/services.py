"""The long-lived objects one serving process works with, opened and closed in one place.

`open_services` is the wiring: the audit store (migrated, with the deployment's connect and lock timeouts),
the spool-backed writer in front of it, the hot-issue detector writing through that writer, the warning desk
(policy, gazetteer, warnings and outbox on the store), and the model.
The app's lifespan and the demo seeder (`command.demo_seed`) both call it, so the seeded cases go through
exactly what the server uses, and a change to the wiring cannot leave one of them behind.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from features.text import init_tokenizer
from models.hotspot_settings import load_hotspot_config
from models.long_lived import settle_long_lived
from models.tracking import configure_tracking
from serving.deadline import Deadline
from serving.hotspot_service import HotspotService, claim_local_state, release_local_state, shares_state
from serving.metrics import MetricsPort, ServiceMetrics, forget_dead_workers, multiproc_dir
from serving.model_reload import load_and_warm
from serving.settings import Settings
from serving.spool import DurableWriter, Spool, engine_options
from serving.state import ModelState, model_ref
from serving.warning_desk import WarningDesk
from serving.webhooks import Deliverer, deliverer_from_settings
from store import Store, upgrade_database


@dataclass(eq=False)
class Services:
    """What `open_services` opened; `close()` closes it in the reverse order (idempotent)."""

    settings: Settings
    model_state: ModelState
    store: Store
    writer: DurableWriter
    hotspots: HotspotService
    warnings: WarningDesk
    metrics: ServiceMetrics
    #: Posts outbox events to the webhook subscribers; None when none are configured.
    deliverer: Deliverer | None = None
    _closing: ExitStack | None = field(default=None, repr=False)

    @property
    def closed(self) -> bool:
        return self._closing is None

    def close(self) -> None:
        """Save the detector's state, release its owner lock, stop the writer (one last replay, or the spool
        stays on disk), then dispose of the store. Every step runs even if an earlier one fails."""
        closing, self._closing = self._closing, None
        if closing is not None:
            closing.close()


def open_store(settings: Settings) -> Store:
    """The audit store named by `settings`, migrated to the latest schema, with the deployment's timeouts.

    The store is not optional at start-up: a service that cannot record predictions must not answer.
    Once running, an outage is bridged by the spool (`serving.spool`)."""
    upgrade_database(settings.database_url)
    options = engine_options(settings.database_url, settings.db_connect_timeout, settings.db_call_timeout)
    if make_url(settings.database_url).get_backend_name() == "postgresql":
        # As many connections as calls can run at once (`Deadline`'s threads): with SQLAlchemy's default 5, the
        # load benchmark opened and closed a PostgreSQL connection for about one request in seven.
        options |= {"pool_size": settings.db_pool_size, "max_overflow": max(1, settings.db_pool_size // 2)}
    return Store.from_url(settings.database_url, **options)


def open_desk_store(settings: Settings) -> Store:
    """The store the warning desk and its jobs use: the same database (already migrated), its own few
    connections (PostgreSQL; SQLite's local file cannot hang that way)."""
    options = engine_options(settings.database_url, settings.db_connect_timeout, settings.db_call_timeout)
    if make_url(settings.database_url).get_backend_name() == "postgresql":
        options |= {"pool_size": 2, "max_overflow": 2}
    return Store.from_url(settings.database_url, **options)


def open_services(settings: Settings) -> Services:
    """Open the store, the writer in front of it, the hot-issue detector and the model, in that order.

    A model that cannot be loaded is not an error here: `model_state.error` says why (the app answers 503
    on triage until a reload). Anything else that fails (the database, another process owning the
    hot-issue state: `HotspotOwnerError`) closes what was already opened and propagates.
    """
    closing = ExitStack()
    try:
        configure_tracking()
        init_tokenizer()
        store = open_store(settings)
        closing.callback(store.dispose)
        writer = DurableWriter(store, Spool(settings.spool_dir), retry_initial=settings.spool_retry_initial_seconds,
                               retry_max=settings.spool_retry_max_seconds, deadline=Deadline(settings.db_call_timeout))
        closing.callback(writer.spool.close)  # a failed replay below lets go of the spool files it adopted
        writer.drain_at_start()  # what an earlier run spooled goes in first (and before the detector replays cases)
        closing.callback(writer.stop)
        shared = shares_state(settings.hotspot_sharing, store)
        owner_lock = None if shared else claim_local_state(store)  # HotspotOwnerError: the start fails, saying why
        closing.callback(release_local_state, owner_lock)
        hotspots = HotspotService.restore(store, load_hotspot_config(settings.hotspot_config), sink=writer,
                                          shared=shared, snapshot_seconds=settings.hotspot_snapshot_seconds)
        closing.callback(hotspots.close)
        hotspots.follow(settings.hotspot_follow_seconds)
        writer.start()
        # The warning desk and its periodic jobs get a small pool of their own: a round stuck in a database
        # that hangs without failing holds its connection until the database answers, and must never take
        # the connections the request path, the writer and the hot-issue feed need.
        desk_store = open_desk_store(settings)
        closing.callback(desk_store.dispose)
        warnings = WarningDesk.open(desk_store, settings.warning_policy, settings.district_gazetteer)
        deliverer = deliverer_from_settings(warnings.outbox, settings)
        if deliverer is not None:
            closing.callback(deliverer.close)
        state = ModelState()
        state.model, state.error = load_and_warm(settings.model_uri)
        metrics = open_metrics(settings, writer, state, hotspots)
        closing.callback(metrics.close)
        settle_long_lived()  # the model and the restored detector: never walked by the collector again
    except BaseException:
        closing.close()
        raise
    return Services(settings, state, store, writer, hotspots, warnings, metrics, deliverer, closing)


def open_metrics(
    settings: Settings, writer: DurableWriter, state: ModelState, hotspots: HotspotService
) -> ServiceMetrics:
    """The counters and gauges of this process; the open metrics port if one is configured."""
    metrics = ServiceMetrics(enabled=settings.metrics_enabled)
    if not metrics.enabled:
        return metrics
    directory = multiproc_dir()
    if directory is not None:
        forget_dead_workers(directory)
    hotspots.on_alert = metrics.alert
    hotspots.on_group = metrics.feed_group

    def read() -> tuple[bool, int, tuple[str | None, str | None] | None]:
        model = state.model
        ref = model_ref(model) if model is not None else None
        return not writer.down, writer.spool.pending(), (ref.name, ref.version) if ref else None

    metrics.watch(read, settings.metrics_refresh_seconds)
    if settings.metrics_port is not None:
        port = MetricsPort(settings.metrics_host, settings.metrics_port)
        if port.start():
            metrics.on_close(port.close)
    return metrics
