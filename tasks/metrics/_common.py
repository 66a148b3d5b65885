"""Input checks and the warning class shared by the pure metric functions."""

from __future__ import annotations

import warnings

import numpy as np


class MetricWarning(UserWarning):
    """A metric was undefined for the data given (for example one class only) and NaN was returned."""


def warn_undefined(name: str, reason: str) -> float:
    """Warn that `name` is undefined and return NaN, so callers can `return warn_undefined(...)`."""
    warnings.warn(f"{name} is undefined: {reason}; returning NaN.", MetricWarning, stacklevel=3)
    return float("nan")


def safe_ratio(numerator: float, denominator: float) -> float:
    """`numerator / denominator`, or NaN when the denominator is 0 (no warning: callers name the metric)."""
    return float(numerator) / float(denominator) if denominator != 0 else float("nan")


def as_1d_float(values, name: str) -> np.ndarray:
    """Convert to a finite 1-D float64 array or raise a ValueError that names the argument."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (n_samples,); got shape {array.shape}. Flatten it or pass one column."
        )
    n_bad = int((~np.isfinite(array)).sum())
    if n_bad:
        raise ValueError(
            f"{name} must be finite; found {n_bad} NaN/inf of {array.size}. Drop those rows before computing metrics."
        )
    return array


def check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of rows; got {a.shape[0]} and {b.shape[0]}."
        )
