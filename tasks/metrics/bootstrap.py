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
    groups=None,
    warn_undefined: bool = True,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap interval of `metric_fn(*arrays)`; the one bootstrap of the package.

    Rows (axis 0) are resampled with replacement, the same rows for every array, so pairs such as
    `(y_true, y_score)` stay aligned. When one subject contributes several rows (windows of a record), pass
    `groups` (one id per row): whole groups are then resampled, so correlated rows move together and the interval
    is not too narrow.

    Args:
        metric_fn (`Callable[..., float]`): e.g. `auroc` or `lambda t, p: physionet_score(t, p, 0.42)`.
        *arrays (`np.ndarray`, each with the same first dimension `n`).
        n_resamples (`int`): bootstrap resamples.
        confidence (`float`): two-sided level in (0, 1).
        seed (`int`): seed of `np.random.default_rng`, so intervals are reproducible.
        groups (array-like of length `n`, *optional*): group id of each row (e.g. the record); resample groups.
        warn_undefined (`bool`): warn once with the count of undefined resamples (below).

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
    members = None
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape[0] != n:
            raise ValueError(f"groups must give one id per row ({n}); got {groups.shape[0]}.")
        names, inverse = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inverse == i) for i in range(len(names))]
    point = float(metric_fn(*arrays))
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    # Per-resample "undefined" warnings would repeat hundreds of times; they are summarised below instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        for i in range(n_resamples):
            if members is None:
                rows = rng.integers(0, n, size=n)
            else:
                rows = np.concatenate([members[j] for j in rng.integers(0, len(members), len(members))])
            values[i] = metric_fn(*(a[rows] for a in arrays))
    defined = values[np.isfinite(values)]
    n_skipped = n_resamples - defined.size
    if n_skipped and warn_undefined:
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
