"""`triage train --engine dask`: the risk model's LightGBM fits run on a Dask cluster (`lightgbm.dask`).

What runs where: the features, weak labels, text score and band choice stay in this process (they are
cheap next to the boosting, and the band choice needs every out-of-fold prediction here anyway); each
LightGBM fit (the band folds and the final one) sends its rows to the workers, one block per worker, and
trains data-parallel with `DaskLGBMClassifier`. The fitted model comes back with ``to_local()``, a plain
`LGBMClassifier`, so the stored bundle and serving are the same as with the local engine.

Why the numbers differ a little from the local engine: in distributed LightGBM each worker finds the
histogram bin edges of its share of the features from its own rows, so the bins (and hence the trees)
are not exactly the local ones. ``class_weight="balanced"`` would likewise be computed per worker from
its own labels; it is folded into the sample weights here, from all rows, so it matches the local engine.
"""

from __future__ import annotations

import logging
import warnings
from itertools import pairwise
from typing import Any

import dask
import dask.array as da
import lightgbm
import numpy as np
from distributed import Client
from sklearn.utils.class_weight import compute_sample_weight

from models.risk import BoosterFitter
from training.train import TrainingError

logger = logging.getLogger(__name__)


class DaskTrainingError(TrainingError):
    """A LightGBM fit on the cluster failed (a worker died, a port was refused...): one line saying why."""


def _worker_blocks(client: Client, arrays: list[np.ndarray]) -> list[da.Array]:
    """Each array as a Dask array of one row block per worker, each block placed on its own worker.

    `lightgbm.dask` trains one LightGBM machine per worker holding data; placing the blocks explicitly
    makes every worker take part (the scheduler would otherwise be free to put small arrays on one).
    """
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise DaskTrainingError("the Dask cluster has no workers")
    n = len(arrays[0])
    bounds = np.linspace(0, n, min(len(workers), n) + 1).astype(int)
    out = []
    for array in arrays:
        blocks = []
        for i, (lo, hi) in enumerate(pairwise(bounds)):
            future = client.scatter(array[lo:hi], workers=[workers[i]], broadcast=False, hash=False)
            delayed = dask.delayed(future)
            blocks.append(da.from_delayed(delayed, shape=(hi - lo, *array.shape[1:]), dtype=array.dtype))
        out.append(da.concatenate(blocks, axis=0))
    return out


class _RankedClient:
    """`client` for `lightgbm.dask`, listing data parts by the address of the worker holding them.

    LightGBM gives the machines ranks in the order `lightgbm.dask` lists the parts, which it takes from
    ``Client.who_has`` (a set's order, so it changes from fit to fit), and which rank finds the bin edges
    of which features depends on it. Without this, the same rows on the same cluster gave different
    boosters about every other fit; with it, block i of the rows is always on rank i.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def who_has(self, futures: Any = None, **kwargs: Any) -> dict[Any, Any]:
        held = self._client.who_has(futures, **kwargs)
        return dict(sorted(held.items(), key=lambda item: sorted(item[1])))


def dask_booster_fitter(client: Client) -> BoosterFitter:
    """A `models.risk.BoosterFitter` that trains on `client`'s workers and returns the local copy."""

    def fit(params: dict[str, Any], X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray) -> lightgbm.LGBMClassifier:
        from lightgbm.dask import DaskLGBMClassifier

        params = dict(params)
        params.pop("n_jobs", None)  # lightgbm.dask gives each worker its Dask threads
        class_weight = params.pop("class_weight", None)
        weights = np.asarray(sample_weight, dtype=np.float64)
        if class_weight is not None:  # from all rows, as the local engine does, not per worker
            weights = weights * compute_sample_weight(class_weight, y)
        dX, dy, dw = _worker_blocks(client, [np.asarray(X, dtype=np.float32), np.asarray(y), weights])
        try:
            with client.as_current(), warnings.catch_warnings():
                # lightgbm.dask warns that n_jobs (always among the estimator's params) is ignored: it is.
                warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored", category=UserWarning)
                estimator = DaskLGBMClassifier(client=_RankedClient(client), class_weight=None, **params)
                model = estimator.fit(dX, dy, sample_weight=dw)
        except Exception as exc:  # a worker died, ports refused...: one line naming the step
            raise DaskTrainingError(
                f"LightGBM training on the Dask cluster failed ({len(y)} rows): {type(exc).__name__}: {exc}"
            ) from exc
        local = model.to_local()
        logger.info("risk booster fitted on %d Dask worker(s), %d rows", len(dX.chunks[0]), len(y))
        return local

    return fit
