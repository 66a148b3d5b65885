"""ECG quality: rrSQI of the R peaks of a maintained detector (paper notes §2.1)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.fft
import scipy.signal

from ..modeling.rhythm_qualityfm import (
    bandpass,
    ecg_polarity,
    fill_gaps,
    keep_full_size_beats,
    rhythm_statistics,
)
from .common import RRSQI_MIN_SAMPLES, _as_signal, _check_rate

# rrSQI thresholds (§2.1).
RRSQI_HR_RANGE = (40.0, 120.0)  # bpm
RRSQI_MAX_DELTA_RR = 0.5  # seconds between consecutive RR intervals
RRSQI_MAX_DELTA_HR = 0.30  # relative change of HR between consecutive beats
RRSQI_MIN_QRS = 20  # fewer detected QRS -> score 0

# R-peak detectors offered. "sleepecg" is sleepecg's `detect_heartbeats` (a Pan-Tompkins variant with
# compiled thresholding; it band-passes 5-30 Hz itself, so it gets the raw ECG). The others are neurokit2
# `ecg_findpeaks` methods, each mapped to its matching `ecg_clean` method.
# "sleepecg" is the default (issue 5): on MIT-BIH record 100 (30-s windows at 300 Hz, edge beats excluded,
# +-150 ms) it found 100% of the annotated beats with 100% precision at ~0.3 ms CPU per window, filter
# included; neurokit2's "neurokit" found 99.4% / 100% at ~1.5-2.7 ms with its cleaning. On 1997 ICU windows
# (PhysioNet 2015) the two rrSQIs differ by 0.002 (median; mean 0.05) and agree on the class in 83%: each
# fails somewhere (neurokit on some wide-QRS rhythms, sleepecg on small beats after a large artifact).
# Pan-Tompkins is less precise (99.4% / 98.7%), Hamilton (the reference code's biosppy detector) less
# accurate (93% / 90%); see benchmarks/bench_quality.py --detectors --agreement.
DEFAULT_ECG_METHOD = "sleepecg"
ECG_METHODS = {
    "sleepecg": None,
    "neurokit": "neurokit",
    "pantompkins1985": "pantompkins1985",
    "kalidas2017": "neurokit",
    "martinez2004": "neurokit",
    "elgendi2010": "elgendi2010",
    "hamilton2002": "hamilton2002",
}

# =============================================================================
# ECG: rrSQI
# =============================================================================
def rr_sqi(peaks: np.ndarray, sampling_rate: float, n_samples: int) -> float:
    """rrSQI from R-peak positions: fraction of good beats over the number of QRS complexes (§2.1).

    A beat (RR interval) is bad when its HR is outside 40-120 bpm, when its RR differs from the previous one
    by more than 0.5 s, or when its HR differs from the previous one by more than 30 %; a good beat between
    two bad ones is made bad. The score is #good / #QRS, so a perfect train of N peaks scores (N - 1) / N,
    as in the reference. Fewer than 20 QRS complexes, or fewer than 200 samples, score 0.

    Args:
        peaks (`np.ndarray` of shape `(n_peaks,)`): R-peak sample indices, increasing.
        sampling_rate (`float`): Hz.
        n_samples (`int`): Length of the ECG the peaks come from.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    if peaks.size < RRSQI_MIN_QRS or n_samples < RRSQI_MIN_SAMPLES:
        return 0.0
    rr = np.diff(peaks) / sampling_rate  # seconds, one per beat
    hr = 60.0 / rr
    bad = (hr < RRSQI_HR_RANGE[0]) | (hr > RRSQI_HR_RANGE[1])
    bad[1:] |= np.abs(np.diff(rr)) > RRSQI_MAX_DELTA_RR
    bad[1:] |= np.abs(np.diff(hr)) / hr[:-1] > RRSQI_MAX_DELTA_HR
    # "...101..." -> "...111...", decided on the pattern before any flip, as the reference does.
    isolated = np.zeros_like(bad)
    isolated[1:-1] = bad[:-2] & ~bad[1:-1] & bad[2:]
    bad |= isolated
    return float((~bad).sum() / peaks.size)


def _ecg_clean_batch(ecg: np.ndarray, sampling_rate: float, method: str) -> np.ndarray:
    """The cleaning `method`'s detector expects, over the rows of `ecg` `(n, time)`: neurokit2's `ecg_clean`
    (vectorised for `"neurokit"`), or `ecg` itself for `"sleepecg"`, which filters internally."""
    clean_method = ECG_METHODS[method]
    if clean_method is None:
        return ecg
    if clean_method == "neurokit":
        # Same filters as nk.ecg_clean(method="neurokit"), applied to all rows at once (a test checks
        # equality): 5th-order Butterworth high-pass at 0.5 Hz, then a moving average one 50-Hz period long.
        sos = scipy.signal.butter(5, 0.5, btype="highpass", output="sos", fs=sampling_rate)
        clean = scipy.signal.sosfiltfilt(sos, ecg, axis=-1)
        taps = int(sampling_rate / 50) if sampling_rate >= 100 else 2
        return scipy.signal.filtfilt(np.ones(taps), [taps], clean, axis=-1, method="pad")
    import neurokit2 as nk

    return np.stack([nk.ecg_clean(row, sampling_rate=sampling_rate, method=clean_method) for row in ecg])


_ECG_BLOCK_ROWS = 16


def _sleepecg_rows(ecg: np.ndarray, sampling_rate: float) -> list[np.ndarray]:
    """`sleepecg.detect_heartbeats` of each row of `ecg` `(n, time)` (non-flat rows), as a list of peak arrays.

    detect_heartbeats band-passes its input (2nd-order Butterworth 5-30 Hz, forward-backward), takes a
    5-point derivative, then runs its compiled squared-moving-integration and adaptive thresholding. Per
    row, scipy's filter set-up costs more than the detection; here the same filter runs once over all rows
    and each row then goes through the same two compiled steps, so the peaks are identical (a test checks
    it). Rows that start flat (the library then skips the flat start), or a sleepecg without those compiled
    steps, take the public function.
    """
    try:
        import sleepecg
    except ImportError as error:
        raise ImportError(
            "ecg_method='sleepecg' (the default) needs the sleepecg package: `pip install sleepecg`, or pass "
            "ecg_method='neurokit'."
        ) from error
    try:
        from sleepecg.heartbeats import _squared_moving_integration, _thresholding
    except ImportError:  # no compiled backend: the public function picks a fallback itself
        return [sleepecg.detect_heartbeats(np.asarray(row, dtype=np.float64), sampling_rate) for row in ecg]
    sos = scipy.signal.butter(N=2, Wn=(5, 30), btype="bandpass", output="sos", fs=sampling_rate)
    derivative_kernel = np.array([-1, -2, 0, 2, 1])
    width = int(0.15 * sampling_rate)
    peaks = []
    for start in range(0, len(ecg), _ECG_BLOCK_ROWS):  # blocks: the filter's copies then stay in cache
        block = np.asarray(ecg[start: start + _ECG_BLOCK_ROWS], dtype=np.float64)
        for raw, row in zip(block, scipy.signal.sosfiltfilt(sos, block, axis=-1)):
            if raw[1] == raw[0]:
                peaks.append(sleepecg.detect_heartbeats(raw, sampling_rate))
                continue
            row = np.ascontiguousarray(row)
            derivative = np.correlate(row, derivative_kernel, mode="same")
            peaks.append(np.flatnonzero(_thresholding(row, _squared_moving_integration(derivative, width),
                                                      sampling_rate)))
    return peaks


def _ecg_quality_batch(ecg: np.ndarray, sampling_rate: float, method: str) -> np.ndarray:
    scores = np.zeros(len(ecg))
    live = np.flatnonzero(np.ptp(ecg, axis=-1) > 0)  # a flat ECG scores 0 (and sleepecg rejects it)
    if live.size == 0:
        return scores
    ecg = ecg if live.size == len(ecg) else ecg[live]
    if method == "sleepecg":
        found = _sleepecg_rows(ecg, sampling_rate)
    else:
        import neurokit2 as nk

        found = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # detectors warn on noise-only windows; those score 0 anyway
            for row in _ecg_clean_batch(np.asarray(ecg, dtype=np.float64), sampling_rate, method):
                try:
                    found.append(nk.ecg_findpeaks(row, sampling_rate=sampling_rate, method=method)["ECG_R_Peaks"])
                except (ValueError, IndexError):  # some detectors fail on windows without any QRS
                    found.append(np.array([], dtype=np.int64))
    for i, peaks in zip(live, found):
        scores[i] = rr_sqi(np.asarray(peaks), sampling_rate, ecg.shape[-1])
    return scores


def ecg_quality(signal: np.ndarray, sampling_rate: float, method: str = DEFAULT_ECG_METHOD) -> float:
    """rrSQI of one ECG segment (§2.1), in [0, 1].

    Args:
        signal (`np.ndarray` of shape `(samples,)`): ECG (lead II for QualityFM) in physical units. NaNs are
            interpolated, with a warning.
        sampling_rate (`float`): Hz. No default: monitors record at 125-500 Hz.
        method (`str`, defaults to `"sleepecg"`): R-peak detector, one of `ECG_METHODS` (`"neurokit"` for
            neurokit2's default detector).

    Examples:
        >>> t = np.arange(30 * 300) / 300
        >>> ecg = np.exp(-(((t % 1.0) - 0.5) ** 2) / (2 * 0.01**2))  # one narrow "R wave" per second
        >>> round(ecg_quality(ecg, sampling_rate=300), 2)
        0.97
    """
    if method not in ECG_METHODS:
        raise ValueError(f"`method` is {method!r}, but has to be one of {list(ECG_METHODS)}.")
    rate = _check_rate(sampling_rate)
    signal = _as_signal(signal, "ECG signal")
    return float(_ecg_quality_batch(signal[None], rate, method)[0])


# =============================================================================
# R peaks for rhythm statistics (the AF baseline and the pretraining rhythm target)
# =============================================================================
def r_peaks(ecg: np.ndarray, sampling_rate: float) -> np.ndarray:
    """R-peak sample indices from `sleepecg.detect_heartbeats` (Pan-Tompkins variant), empty when the ECG is
    unusable (mostly NaN, flat) or the detector rejects it.

    NaN gaps are interpolated first and the polarity is fixed (`ecg_polarity`). Detections whose QRS-band
    amplitude is below `MIN_QRS_AMPLITUDE_RATIO` of the typical beat's are dropped: after a large start
    transient (common on handheld ECGs) sleepecg's searchback keeps accepting T waves and baseline wiggles as
    beats, which would look exactly like the irregular RR of AF."""
    import sleepecg

    filled = fill_gaps(ecg)
    if filled is None or filled.size < 2 * sampling_rate:  # sleepecg learns its thresholds on the first 2 s
        return np.array([], dtype=np.int64)
    filtered = bandpass(filled, sampling_rate, 5.0, 30.0)
    sign = ecg_polarity(filtered, sampling_rate)
    try:
        peaks = np.asarray(sleepecg.detect_heartbeats(sign * filled, float(sampling_rate)), dtype=np.int64)
    except (ValueError, IndexError):  # "ECG signal is flat" and similar: no beats to report
        return np.array([], dtype=np.int64)
    return keep_full_size_beats(peaks, filtered, sampling_rate)


def sleepecg_rhythm_statistics(ecg: np.ndarray | None, sampling_rate: float) -> np.ndarray:
    """`rhythm_qualityfm.rhythm_statistics` of `ecg` on `r_peaks` (sleepecg) rather than the model's scipy detector:
    what the AF baseline and the pretraining rhythm target compute. NaN where undefined (no ECG, < 4 beats)."""
    if ecg is None:
        return rhythm_statistics(None, float(sampling_rate))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        peaks = r_peaks(ecg, float(sampling_rate))
    return rhythm_statistics(ecg, float(sampling_rate), peaks=peaks)
