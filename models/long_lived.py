"""Keeping a loaded model out of the cyclic garbage collector's full passes.

A process that has loaded a model holds hundreds of thousands of container objects that live as long as
it does (vocabularies, trees, the risk model's term index, a restored hot-issue detector). CPython's full
collection walks every one of them each time it runs, and under load it runs often: in the load benchmark
(`experiments/bench_load.py`, 2 uvicorn workers, 30 s) each worker made 10-12 full passes of 150-220 ms,
12-13% of its CPU and pauses that stall every request of the process. `gc.freeze()` moves what exists
now to a permanent generation the collector never walks; frozen objects are still freed by reference
counting when released (a replaced model), only reference cycles among them stay until the next
`settle_long_lived`, which unfreezes and collects them first.
"""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)


def settle_long_lived() -> int:
    """Collect what is garbage now, then freeze everything left (the model and other start-up state) out
    of later collections; returns how many objects are frozen. Call it once start-up or a model swap is
    done: the one full pass it makes costs about as much as one of those it saves."""
    started = time.perf_counter()
    gc.unfreeze()  # a model swapped out since the last call: its cycles are collectable again
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("froze %d long-lived objects out of garbage collection (%.0f ms)", frozen,
                1000 * (time.perf_counter() - started))
    return frozen
