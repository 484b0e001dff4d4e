"""The service's periodic jobs, run in its lifespan: issuing warnings, the overdue sweep and webhook delivery.

Each is an asyncio task whose round runs in a worker thread (the store and httpx calls block), so a slow
receiver or database never holds the event loop. A failed round is logged and tried again next period; a
job never stops the service. Several replicas may run them at once: issuing is idempotent per source, the
sweep escalates by conditional updates and deliveries are claimed (`store.outbox`), so nothing is done twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from serving.services import Services

logger = logging.getLogger(__name__)


async def _every(name: str, seconds: float, job: Callable[[], object]) -> None:
    while True:
        try:
            await asyncio.to_thread(job)
        except Exception as exc:
            logger.warning("%s round failed (%s); tried again in %.1f s", name, type(exc).__name__, seconds)
        await asyncio.sleep(seconds)


def start_jobs(services: Services) -> list[asyncio.Task[None]]:
    """Start the sweep and (with subscribers configured) the delivery worker; cancel them with `stop_jobs`."""
    settings = services.settings
    tasks = [
        asyncio.create_task(_every("warning issue", settings.warning_issue_seconds, services.warnings.issue_new),
                            name="warning-issue"),
        asyncio.create_task(_every("warning sweep", settings.warning_sweep_seconds, services.warnings.sweep),
                            name="warning-sweep"),
    ]
    if services.deliverer is not None:
        tasks.append(asyncio.create_task(
            _every("webhook delivery", settings.webhook_poll_seconds, services.deliverer.deliver_due),
            name="webhook-delivery",
        ))
    return tasks


async def stop_jobs(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the jobs and wait for them (a round already in its thread finishes: its claims stay consistent)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
