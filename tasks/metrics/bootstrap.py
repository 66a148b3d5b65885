"""Percentile bootstrap confidence intervals for any metric of row-aligned arrays."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from ._common import MetricWarning


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap interval of `metric_fn(*arrays)`.

    Rows (axis 0) are resampled with replacement, the same rows for every array, so pairs such as
    `(y_true, y_score)` stay aligned. Rows are windows or alarms: when one subject contributes several
    rows the interval is too narrow (resample subjects instead, then call this on subject-level arrays).

    Args:
        metric_fn (`Callable[..., float]`): e.g. `auroc` or `lambda t, p: physionet_score(t, p, 0.42)`.
        *arrays (`np.ndarray`, each with the same first dimension `n`).
        n_resamples (`int`): bootstrap resamples.
        confidence (`float`): two-sided level in (0, 1).
        seed (`int`): seed of `np.random.default_rng`, so intervals are reproducible.

    Returns:
        `tuple[float, float, float]`: `(point, low, high)`. Resamples where the metric is undefined
        (NaN, e.g. AUROC on a one-class resample) are skipped with one `MetricWarning` giving the count;
        `low` and `high` are NaN when every resample was undefined.
    """
    if not arrays:
        raise ValueError(
            "bootstrap_ci needs at least one array after metric_fn, e.g. bootstrap_ci(auroc, y_true, y_score)."
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}. Use 0.95 for a 95% interval.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1; got {n_resamples}.")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"all arrays must have the same number of rows; got {[a.shape[0] for a in arrays]}.")
    point = float(metric_fn(*arrays))
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    # Per-resample "undefined" warnings would repeat hundreds of times; they are summarised below instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        for i in range(n_resamples):
            rows = rng.integers(0, n, size=n)
            values[i] = metric_fn(*(a[rows] for a in arrays))
    defined = values[np.isfinite(values)]
    n_skipped = n_resamples - defined.size
    if n_skipped:
        warnings.warn(
            f"{n_skipped} of {n_resamples} bootstrap resamples gave an undefined metric (NaN) and were skipped; "
            f"the interval uses the other {defined.size}.",
            MetricWarning,
            stacklevel=2,
        )
    if defined.size == 0:
        return point, float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [alpha, 1.0 - alpha])
    return point, float(low), float(high)
