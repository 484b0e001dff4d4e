"""How long a worker's thread may keep the interpreter lock before another thread is let in.

A uvicorn worker runs many CPU-bound Python threads at once: each request's scoring on anyio's pool, the
store's calls on the deadline threads (`serving.deadline`), the hot-issue feed's intake, the warning rounds.
They share one GIL, and CPython hands it over every 5 ms (`sys.setswitchinterval`) even when nothing is
waiting on I/O. Under the 50-client load on 2 cores each hand-over is a context switch and a cold cache,
and the thread holding the hot-issue feed's lock, which every replica waits for, is pushed off the CPU as
often as any other. A thread that waits on the database or the network still gives the lock up at once;
only the forced hand-overs between busy threads become rarer.

Measured with `experiments/bench_load.py` (2 workers, PostgreSQL, 30 s, four same-run pairs, 2-core VM):
20 ms against the default 5 ms gave more requests/s in every pair (median +1.6%), 2-5% less worker CPU
per request, the feed lock held 2-5% less per case and p99 lower in every pair (median -6%); 0.5-1 ms made
everything worse (the lock held 4.0 against 3.2 ms per case). One request alone (`bench_service.py`) has
no other thread to hand over to.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)


@contextmanager
def switch_interval(milliseconds: float) -> Iterator[None]:
    """The interpreter's switch interval set to `milliseconds` while the block runs (0: left as it is),
    then put back as it was."""
    if milliseconds <= 0:
        yield
        return
    before = sys.getswitchinterval()
    sys.setswitchinterval(milliseconds / 1000)
    logger.info("interpreter switch interval %.1f ms (was %.1f ms)", milliseconds, 1000 * before)
    try:
        yield
    finally:
        sys.setswitchinterval(before)
