"""`triage predict` reads its input file in a forked process while this one imports the scoring stack and
loads the model.

Why: the three came one after another on one core, with the second idle: on the 15k TipDM messages the
imports take about 2 s, reading and normalising the file 0.8 s and loading the model 1 s (a quarter of the
whole run before any case is scored). The reader needs only pandas and the loader, so forked before the
heavy imports it is done before they are; its result comes back pickled (~0.1 s for 15k cases).

Where fork is unavailable, or the reader dies (killed, out of memory), the file is read here instead: the
run is slower, never different. A `DataError` raised in the reader is raised here as it was. A file larger
than `MAX_FORKED_BYTES` is read here too: its cases would be held twice, and pickled once, on the way back,
while the time saved (the imports, about 2 s) stays the same however large the file.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.loading import LoadedCases

logger = logging.getLogger(__name__)

__all__ = ["MAX_FORKED_BYTES", "InputReader"]

#: Largest input file read in the forked process (about 50k cases of a typical grievance CSV).
MAX_FORKED_BYTES = 64 * 1024 * 1024


def _read(path: Path, encoding: str) -> LoadedCases:
    from training.loading import load_cases  # imported in the reader: the parent is busy with its own

    return load_cases([path], training=False, encoding=encoding, with_keys=False)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # missing or unreadable: read here, where the loader names the problem
        return MAX_FORKED_BYTES + 1


class InputReader:
    """One input file, being read in a forked process from construction; `result` waits for it."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path, self.encoding = path, encoding
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[LoadedCases] | None = None
        if "fork" not in mp.get_all_start_methods() or _size(path) > MAX_FORKED_BYTES:
            return
        try:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("fork"))
            self._future = self._pool.submit(_read, path, encoding)
        except (OSError, RuntimeError) as exc:  # no process to spare: read it here, later
            logger.info("reading %s in this process (%s)", path.name, type(exc).__name__)
            self.close()

    def result(self) -> LoadedCases:
        """The loaded cases; raises what `load_cases` raises (`DataError` for a file that cannot be used)."""
        try:
            if self._future is not None:
                try:
                    return self._future.result()
                except BrokenProcessPool:
                    logger.warning("the process reading %s ended early; reading it here", self.path.name)
            return _read(self.path, self.encoding)
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._future = None
