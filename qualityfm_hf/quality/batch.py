"""Scoring batches of `(n, 2, time)` windows, vectorised and spread over forked workers."""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass

import numpy as np

from ..utils.processes import worker_pool
from .common import QUALITY_CLASSES, _check_rate, _interpolate_rows, _warn, quality_class_index
from .ecg import DEFAULT_ECG_METHOD, ECG_METHODS, _ecg_quality_batch
from .ppg import NO_DC_MESSAGE, _ppg_quality_batch


# =============================================================================
# Batches of windows
# =============================================================================
@dataclass
class QualityScores:
    """Per-window quality of a batch, each array of shape `(n,)`.

    Args:
        ecg (`np.ndarray`): rrSQI in [0, 1]; NaN where the ECG is missing.
        ppg (`np.ndarray`): Rescaled PPG SQI in [0, 1]; NaN where the PPG is missing.
        combined (`np.ndarray`): Mean of the available channel scores; NaN when both are missing.
        class_index (`np.ndarray` of int8): Index into `QUALITY_CLASSES` (higher = better); -1 = unscored.
        notes (`list[str]`): Empty, or what was missing ("PPG missing: scored from ECG alone").
    """

    ecg: np.ndarray
    ppg: np.ndarray
    combined: np.ndarray
    class_index: np.ndarray
    notes: list[str]

    def __len__(self) -> int:
        return len(self.combined)

    @property
    def classes(self) -> list[str]:
        """Class names; `"Unscored"` where no channel was usable."""
        return [QUALITY_CLASSES[i] if i >= 0 else "Unscored" for i in self.class_index]


def _score_chunk(ppg, ecg, has_ppg, has_ecg, sampling_rate, ecg_method):
    ppg_scores = np.full(len(ppg), np.nan)
    ecg_scores = np.full(len(ecg), np.nan)
    no_dc = 0
    # Fancy indexing copies; skip it in the common case where every window has the channel.
    if has_ppg.all():
        ppg_scores[:], no_dc = _ppg_quality_batch(ppg, sampling_rate)
    elif has_ppg.any():
        ppg_scores[has_ppg], no_dc = _ppg_quality_batch(ppg[has_ppg], sampling_rate)
    if has_ecg.all():
        ecg_scores[:] = _ecg_quality_batch(ecg, sampling_rate, ecg_method)
    elif has_ecg.any():
        ecg_scores[has_ecg] = _ecg_quality_batch(ecg[has_ecg], sampling_rate, ecg_method)
    return ppg_scores, ecg_scores, no_dc


# The batch being scored, set just before the pool forks: forked workers inherit it and read their slice,
# instead of each task pickling its windows through a pipe (86 MB for 600 windows).
_FORKED_BATCH: tuple | None = None


def _score_forked_range(start: int, stop: int, sampling_rate: float, ecg_method: str):
    ppg, ecg, has_ppg, has_ecg = _FORKED_BATCH
    return _score_chunk(ppg[start:stop], ecg[start:stop], has_ppg[start:stop], has_ecg[start:stop],
                        sampling_rate, ecg_method)


def _score_in_pool(ppg, ecg, has_ppg, has_ecg, sampling_rate, ecg_method, workers):
    global _FORKED_BATCH
    import multiprocessing

    n = len(ppg)
    # A few chunks per worker balance uneven windows; >= 32 windows each keeps the per-task cost negligible.
    bounds = np.linspace(0, n, max(workers, min(4 * workers, n // 32)) + 1).astype(int)
    ranges = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
    forked = "fork" in multiprocessing.get_all_start_methods()
    try:
        if forked:
            _FORKED_BATCH = (ppg, ecg, has_ppg, has_ecg)
        with worker_pool(workers) as pool:  # workers die with this process, even when it is SIGKILLed
            if forked:
                futures = [pool.submit(_score_forked_range, a, b, sampling_rate, ecg_method) for a, b in ranges]
            else:  # spawn: the windows have to travel
                futures = [pool.submit(_score_chunk, ppg[a:b], ecg[a:b], has_ppg[a:b], has_ecg[a:b],
                                       sampling_rate, ecg_method) for a, b in ranges]
            parts = [f.result() for f in futures]
    finally:
        _FORKED_BATCH = None
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            sum(p[2] for p in parts))


# Starting and joining a forked pool costs ~0.1 s (about 100 windows of scoring); below this many windows
# per worker the pool is slower than scoring in this process.
_MIN_WINDOWS_PER_WORKER = 64


def _default_workers(n: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n // _MIN_WINDOWS_PER_WORKER))


def score_windows(
    windows: np.ndarray,
    sampling_rate: float = 300,
    channel_mask: np.ndarray | None = None,
    num_workers: int | None = None,
    ecg_method: str = DEFAULT_ECG_METHOD,
) -> QualityScores:
    """Quality of each window of a batch: rrSQI of the ECG, PPG SQI, their mean and its class (§2.1).

    Args:
        windows (`np.ndarray` of shape `(n, 2, time)`): Raw windows in [PPG, ECG_II] order, physical units,
            all at `sampling_rate` (QualityFM: 30 s at 300 Hz). Do not min-max normalise first: the PPG
            perfusion index needs the raw DC level. NaN/inf samples in a channel are linearly interpolated
            (one warning with the count); an all-NaN channel counts as missing.
        sampling_rate (`float`, defaults to 300): Hz.
        channel_mask (`np.ndarray` of shape `(n, 2)` or `(2,)`, *optional*): True where the channel exists.
            A missing channel is not scored: the combined score comes from the other alone and `notes` says
            so. A window with neither channel gets NaN scores and class -1.
        num_workers (`int`, *optional*): Worker processes; defaults to min(available cores, n // 64), at least
            1 (a pool costs ~0.1 s, so small batches stay serial; parallelise over records instead). With 1 the
            work stays in this process. Workers are forked (POSIX): they inherit the windows and the imported
            detectors, and each scores a few contiguous chunks.
        ecg_method (`str`, defaults to `"sleepecg"`): R-peak detector, one of `ECG_METHODS`.

    Returns:
        `QualityScores` with arrays of shape `(n,)`.
    """
    windows = np.asarray(windows)
    if windows.dtype not in (np.float32, np.float64):
        windows = windows.astype(np.float64)  # float32 stays as is: blocks and rows are converted as scored
    if windows.ndim != 3 or windows.shape[1] != 2:
        raise ValueError(
            f"windows must be (n, 2, time) = [PPG, ECG_II]; got {windows.shape}. WFDB arrays are "
            "(samples, channels): transpose, and add a batch axis for one window."
        )
    if windows.shape[0] == 0 or windows.shape[2] == 0:
        raise ValueError(f"windows is empty (shape {windows.shape}); expected at least one window of samples.")
    if ecg_method not in ECG_METHODS:
        raise ValueError(f"`ecg_method` is {ecg_method!r}, but has to be one of {list(ECG_METHODS)}.")
    rate = _check_rate(sampling_rate)
    n = windows.shape[0]
    finite = np.isfinite(windows)
    if not finite.any():
        raise ValueError(f"windows {windows.shape} hold no finite sample; nothing to score.")

    present = finite.any(axis=-1)  # (n, 2): an all-NaN channel is missing
    if channel_mask is not None:
        mask = np.asarray(channel_mask, dtype=bool)
        if mask.shape not in ((2,), (n, 2)):
            raise ValueError(f"channel_mask must be (n, 2) = ({n}, 2) or (2,); got {mask.shape}.")
        present &= np.broadcast_to(mask, (n, 2))
    gaps = (~finite & present[..., None]).sum()
    if gaps:
        _warn(f"{int(gaps)} NaN/inf samples in present channels of {n} windows; linearly interpolated.")
        windows = _interpolate_rows(windows.reshape(n * 2, -1).astype(np.float64)).reshape(windows.shape)

    ppg, ecg = windows[:, 0], windows[:, 1]
    has_ppg, has_ecg = present[:, 0], present[:, 1]
    workers = _default_workers(n) if num_workers is None else int(num_workers)
    if workers < 1:
        raise ValueError(f"num_workers must be >= 1; got {num_workers}.")
    if workers == 1:
        ppg_scores, ecg_scores, no_dc = _score_chunk(ppg, ecg, has_ppg, has_ecg, rate, ecg_method)
    else:
        ppg_scores, ecg_scores, no_dc = _score_in_pool(ppg, ecg, has_ppg, has_ecg, rate, ecg_method, workers)
    if no_dc:
        _warn(f"{no_dc} of {n} windows have {NO_DC_MESSAGE}.")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of two NaNs -> NaN, wanted
        combined = np.nanmean(np.stack([ecg_scores, ppg_scores]), axis=0)
    notes = [
        "" if p and e
        else "PPG missing: scored from ECG alone" if e
        else "ECG missing: scored from PPG alone" if p
        else "PPG and ECG missing: not scored"
        for p, e in zip(has_ppg, has_ecg)
    ]
    return QualityScores(ecg_scores, ppg_scores, combined, quality_class_index(combined), notes)


