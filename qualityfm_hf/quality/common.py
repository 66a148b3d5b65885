"""Quality classes, their thresholds, and the input checks every score shares."""

from __future__ import annotations

import warnings

import numpy as np

QUALITY_CLASSES = ("Bad", "Poor", "Acceptable", "Good", "Excellent")  # index grows with quality
# Lower bounds of Poor, Acceptable, Good, Excellent (§2.1): [0.3, 0.5), [0.5, 0.7), [0.7, 0.9), >= 0.9.
QUALITY_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
UNSCORED = -1  # class index of a window with no usable channel
RRSQI_MIN_SAMPLES = 200  # shortest signal a score is computed for


def _warn(message: str) -> None:
    # Imported lazily: the feature-extractor module pulls in transformers, which the CLI should not pay for.
    from ..modeling.feature_extraction_qualityfm import QualityFMWarning

    warnings.warn(message, QualityFMWarning, stacklevel=3)


# =============================================================================
# Classes
# =============================================================================
def quality_class_index(score: float | np.ndarray) -> int | np.ndarray:
    """Class index of `score` in `QUALITY_CLASSES` (0 = Bad ... 4 = Excellent); NaN -> `UNSCORED` (-1)."""
    scores = np.asarray(score, dtype=np.float64)
    index = np.searchsorted(np.asarray(QUALITY_THRESHOLDS), scores, side="right").astype(np.int8)
    index = np.where(np.isnan(scores), UNSCORED, index).astype(np.int8)
    return int(index) if index.ndim == 0 else index


def quality_class(score: float) -> str:
    """Class name of a combined score: Excellent >= 0.9, Good [0.7, 0.9), Acceptable [0.5, 0.7),
    Poor [0.3, 0.5), Bad < 0.3 (§2.1).

    The reference code's `0.9 < q <= 0.7`-style comparisons can never hold, so there only Excellent and Bad
    occur; the notes' table is implemented instead.
    """
    index = quality_class_index(float(score))
    if index == UNSCORED:
        raise ValueError(f"score is NaN; a class needs a score in [0, 1]. Got {score!r}.")
    return QUALITY_CLASSES[index]


# =============================================================================
# Input checks
# =============================================================================
def _as_signal(signal, name: str) -> np.ndarray:
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"{name} must be 1-D (samples,); got shape {signal.shape}. Pass one channel.")
    if signal.size == 0:
        raise ValueError(f"{name} is empty; expected at least {RRSQI_MIN_SAMPLES} samples.")
    missing = ~np.isfinite(signal)
    if missing.all():
        raise ValueError(f"{name} has no finite samples ({signal.size} NaN/inf); nothing to score.")
    if missing.any():
        _warn(f"{name}: {int(missing.sum())} of {signal.size} samples are NaN/inf; linearly interpolated.")
        signal = _interpolate_rows(signal[None])[0]
    return signal


def _check_rate(sampling_rate: float) -> float:
    if not np.isfinite(sampling_rate) or sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive number of Hz; got {sampling_rate!r}.")
    return float(sampling_rate)


def _interpolate_rows(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN/inf in each row of `x` `(n, time)` that has at least one finite value."""
    x = x.copy()
    grid = np.arange(x.shape[1])
    for row in np.flatnonzero((~np.isfinite(x)).any(axis=1)):
        ok = np.isfinite(x[row])
        if ok.any():
            x[row] = np.interp(grid, grid[ok], x[row, ok])
    return x


