"""The service's periodic jobs, run in its lifespan: issuing warnings, the overdue sweep and webhook delivery.

Each is an asyncio task whose round runs on a daemon thread of its own `Deadline` (the store and httpx calls
block), so a slow receiver or database never holds the event loop. A database that hangs without failing
(a stopped proxy) must not hang the service either: a round is awaited at most `ROUND_SECONDS`, and none
starts while the writer counts the database as down; a round stuck in such a call keeps its daemon thread,
never asyncio's default executor, which the service's shutdown waits for; at shutdown a round in progress
is waited for a few seconds, so the service stops with no write in flight. A failed round is logged and
tried again next period; a job never stops the service. Several replicas may run them at once: issuing is
idempotent per source, the sweep escalates by conditional updates and deliveries are claimed
(`store.outbox`), so nothing is done twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from serving.deadline import Deadline
from serving.services import Services

logger = logging.getLogger(__name__)


#: Longest a round is awaited before it counts as hung (its thread is then left to the database).
ROUND_SECONDS = 60.0
#: Longest the shutdown waits for a round already running (a hung one is then left to its thread). Without
#: the wait a round could still be writing after the service stopped (a schema dropped after a run deadlocked).
SHUTDOWN_GRACE_SECONDS = 5.0


async def _every(
    name: str, seconds: float, job: Callable[[], object], rounds: Deadline, paused: Callable[[], bool]
) -> None:
    while True:
        if not paused():
            # asyncio.wait, not wait_for: on Python 3.11 wait_for drops a cancellation that arrives as the round
            # ends, and the job then never stops (the service's shutdown waited for it forever).
            round_ = asyncio.wrap_future(rounds.submit(job))
            try:
                done, _ = await asyncio.wait({round_}, timeout=rounds.seconds)
            except asyncio.CancelledError:
                # Shutting down: a round already in its thread is let finish (for a while), so the service
                # stops with none of its writes in flight; one that has not started never will.
                await asyncio.wait({round_}, timeout=SHUTDOWN_GRACE_SECONDS)
                round_.cancel()
                raise
            if not done:
                round_.cancel()
                logger.warning("%s round had no answer within %.0f s; tried again in %.1f s", name, rounds.seconds,
                               seconds)
            elif round_.cancelled():  # queued past its deadline behind a hung round: never started
                logger.warning("%s round did not start in time; tried again in %.1f s", name, seconds)
            elif round_.exception() is not None:
                logger.warning("%s round failed (%s); tried again in %.1f s", name,
                               type(round_.exception()).__name__, seconds)
        await asyncio.sleep(seconds)


def start_jobs(services: Services) -> list[asyncio.Task[None]]:
    """Start the sweep and (with subscribers configured) the delivery worker; cancel them with `stop_jobs`."""
    settings = services.settings
    rounds = Deadline(ROUND_SECONDS, workers=3)  # one per job: a hung round never delays another job's

    def paused() -> bool:
        return services.writer.down  # the database is not answering: the writer retries it, the jobs wait

    tasks = [
        asyncio.create_task(_every("warning issue", settings.warning_issue_seconds, services.warnings.issue_new,
                                   rounds, paused), name="warning-issue"),
        asyncio.create_task(_every("warning sweep", settings.warning_sweep_seconds, services.warnings.sweep,
                                   rounds, paused), name="warning-sweep"),
    ]
    if services.deliverer is not None:
        tasks.append(asyncio.create_task(
            _every("webhook delivery", settings.webhook_poll_seconds, services.deliverer.deliver_due, rounds, paused),
            name="webhook-delivery",
        ))
    running = set(tasks)

    def ended(task: asyncio.Task[None]) -> None:
        running.discard(task)
        if not running:
            rounds.close()  # its threads end (one still in a hung round ends when the round returns)

    for task in tasks:
        task.add_done_callback(ended)
    return tasks


async def stop_jobs(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the jobs and wait for them: a round already in its thread is waited for up to
    `SHUTDOWN_GRACE_SECONDS` (its claims stay consistent either way)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
