"""Signal-quality scores for 30-s PPG + ECG windows, used to form the quality-divergent pretraining pairs.

Implements paper notes §2.1 (the pretraining code's rules): q = (q_ECG + q_PPG) / 2 with

- q_ECG: rrSQI, the fraction of beats whose RR interval is plausible (Ferrario's `rrSQI.m`), on R peaks from
  a maintained detector (sleepecg's compiled `detect_heartbeats` by default, or one of neurokit2's);
- q_PPG: a five-component handcrafted SQI, rescaled by clip((q - 0.5) / 0.3, 0, 1);

and five classes, Bad < Poor < Acceptable < Good < Excellent (`QUALITY_CLASSES`, index order = better).
Functions follow NeuroKit's shape, `(signal, sampling_rate, method=...)`. `score_windows` scores a batch
`(n, 2, time)` in [PPG, ECG_II] order: the PPG part is vectorised over cache-sized blocks of windows, the
R-peak detection runs per window, and windows are spread over forked worker processes (issue 5 target:
>= 500 windows/s per core; see benchmarks/bench_quality.py).

References:
    Ferrario M. et al., rrSQI (MATLAB, 2014), as ported in the QualityFM pretraining code.
    Makowski D. et al., "NeuroKit2: A Python toolbox for neurophysiological signal processing",
    Behavior Research Methods 53, 2021 (R-peak detectors).
    Hofer F., Brunner C., sleepecg (2022), `detect_heartbeats` (Pan-Tompkins variant, compiled).
"""

from __future__ import annotations

import functools
import itertools
import os
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.signal

from .processes import worker_pool

QUALITY_CLASSES = ("Bad", "Poor", "Acceptable", "Good", "Excellent")  # index grows with quality
# Lower bounds of Poor, Acceptable, Good, Excellent (§2.1): [0.3, 0.5), [0.5, 0.7), [0.7, 0.9), >= 0.9.
QUALITY_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
UNSCORED = -1  # class index of a window with no usable channel

# rrSQI thresholds (§2.1).
RRSQI_HR_RANGE = (40.0, 120.0)  # bpm
RRSQI_MAX_DELTA_RR = 0.5  # seconds between consecutive RR intervals
RRSQI_MAX_DELTA_HR = 0.30  # relative change of HR between consecutive beats
RRSQI_MIN_QRS = 20  # fewer detected QRS -> score 0
RRSQI_MIN_SAMPLES = 200

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
PPG_METHODS = ("qualityfm",)


def _warn(message: str) -> None:
    # Imported lazily: the feature-extractor module pulls in transformers, which the CLI should not pay for.
    from .modeling.feature_extraction_qualityfm import QualityFMWarning

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
# PPG: five-component SQI
# =============================================================================
# Rows per block of the PPG SQI: (16, 9000) float64 is 1.1 MB, so the dozen passes over a block stay in the
# L2 cache instead of streaming the whole batch from memory for each (2.5x faster than whole-batch passes).
_PPG_BLOCK_ROWS = 16
_WELCH_NPERSEG = 256
# Welch bands of the SQI (Hz, open intervals): pulse band, noise band, total.
_BAND, _NOISE, _TOTAL = (0.5, 5.0), (5.0, 25.0), (0.1, 50.0)


@functools.lru_cache(maxsize=16)
def _welch_setup(nperseg: int, sampling_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scipy.signal.welch's defaults for `nperseg`: periodic Hann window `(nperseg,)`, the rfft bins the SQI
    sums (0.1-50 Hz), their one-sided density scale and their frequencies in Hz, each `(bins,)`."""
    window = scipy.signal.get_window("hann", nperseg)
    freqs = np.fft.rfftfreq(nperseg, d=1.0 / sampling_rate)
    bins = np.flatnonzero((freqs > _TOTAL[0]) & (freqs < _TOTAL[1]))  # the union of the three bands
    onesided = np.where((bins == 0) | (2 * bins == nperseg), 1.0, 2.0)  # doubled except DC and Nyquist
    return window, bins, onesided / (sampling_rate * (window**2).sum()), freqs[bins]


def _welch_bands(z: np.ndarray, sampling_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Summed Welch PSD of each row of `z` `(n, time)` in the pulse, noise and total bands, each `(n,)`.

    Equals summing `scipy.signal.welch(z, fs, nperseg=min(time, 256))` (Hann, 50 % overlap, constant
    detrend) over the bands, to ~1e-15 relative (a test checks it), at a third of its cost: scipy's
    short-time-FFT machinery detrends segment by segment and keeps all bins; here the segments of all rows
    are one strided view, detrended and windowed in two array passes, and only bins below 50 Hz are kept.
    """
    length = z.shape[-1]
    nperseg = min(length, _WELCH_NPERSEG)
    window, bins, scale, freqs = _welch_setup(nperseg, float(sampling_rate))
    step = nperseg - nperseg // 2
    segments = np.lib.stride_tricks.sliding_window_view(z, nperseg, axis=-1)[:, ::step]  # (n, segments, nperseg)
    segments = segments - segments.mean(axis=-1, keepdims=True)
    segments *= window
    spectrum = scipy.fft.rfft(segments, axis=-1)[..., bins]
    psd = (spectrum.real**2 + spectrum.imag**2).mean(axis=1) * scale  # (n, bins)
    return tuple(psd[:, (freqs > lo) & (freqs < hi)].sum(axis=-1) for lo, hi in (_BAND, _NOISE, _TOTAL))


def _ppg_quality_block(raw: np.ndarray, sampling_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Rescaled PPG SQI `(b,)` of a block `(b, time)` of raw, finite float64 rows, and which rows lack a DC.

    Flat rows are scored like the others (no division by zero) and set to 0 by the caller.
    """
    b, length = raw.shape
    # Linear detrend in closed form (least-squares line on centred time), as scipy.signal.detrend does but
    # as one matrix-vector product: scipy's lstsq on the stacked rows was the slowest step of this function.
    t = np.arange(length) - (length - 1) / 2
    # (einsum, not BLAS: multithreaded BLAS stalls on small products when the cores are busy)
    slope = np.einsum("ij,j->i", raw, t) / (t @ t)
    dc = raw.mean(axis=-1)
    detrended = raw - dc[:, None]
    detrended -= slope[:, None] * t
    squared = detrended * detrended
    std = np.sqrt(squared.mean(axis=-1))  # the detrended mean is 0 up to rounding
    std[std == 0] = 1.0  # a pure ramp detrends to zeros; it then has no peaks and scores 0 below
    z = detrended / std[:, None]

    # 1. SNR: Welch PSD (256-sample segments), 0.5-5 Hz over 5-25 Hz, in dB.
    band, noise, total = _welch_bands(z, sampling_rate)
    snr_db = 10 * np.log10(band / (noise + 1e-10) + 1e-300)
    with np.errstate(over="ignore"):  # flat rows: -3000 dB -> exp overflows to inf -> score 0, as wanted
        snr_score = 1 / (1 + np.exp(-0.5 * (snr_db - 5)))

    # 2. Histogram entropy over 20 bins spanning each row's range (np.histogram's bins, last edge inclusive),
    # one bincount for the block: row r owns bins 20r..20r+19.
    low, high = z.min(axis=-1, keepdims=True), z.max(axis=-1, keepdims=True)
    position = np.subtract(z, low, out=detrended)  # detrended is not needed any more
    position /= np.maximum(high - low, 1e-12)
    position *= 20
    bins = position.astype(np.intp)
    np.minimum(bins, 19, out=bins)
    bins += 20 * np.arange(b)[:, None]
    prob = np.bincount(bins.ravel(), minlength=20 * b).reshape(b, 20) / length
    entropy = -(prob * np.log(np.where(prob > 0, prob, 1))).sum(axis=-1)
    entropy_score = 1 - entropy / np.log(20)

    # 3. Perfusion index from the RAW signal, AC / DC = (max - min) / mean. Departure from the reference
    # code, which divides by the mean of the *detrended* signal (~0, random sign) and so scores noise.
    # A non-positive mean means the PPG was already centred or normalised: the index is undefined and
    # the component scores 0.
    ac = raw.max(axis=-1) - raw.min(axis=-1)
    no_dc = ~(dc > 0)
    perfusion_score = np.where(no_dc, 0.0, np.clip(10 * ac / np.where(no_dc, 1.0, dc), 0, 1))

    # 4. Skewness of the z-scored PPG (a pulse wave is skewed; white noise is not): z has mean 0 and
    # (population) std 1, so mean(z**3) = mean(detrended**3) / std**3 equals scipy.stats.skew(z) (bias=True).
    skew = np.einsum("ij,ij->i", squared, z) / (length * std**2)
    skew_score = 1 / (1 + np.exp(-5 * (np.abs(skew) - 1)))

    # 5. Relative power: 0.5-5 Hz over 0.1-50 Hz.
    relative_score = np.clip(2 * band / (total + 1e-10), 0, 1)

    # The reference's sample-entropy term is a np.random.random() stub; it is left out, not imitated.
    raw_score = 0.2 * (snr_score + entropy_score + perfusion_score + skew_score + relative_score)
    rescaled = np.clip((raw_score - 0.5) / 0.3, 0, 1)

    # Fewer than 2 pulses (distance fs/2, prominence 0.5 on the z-scored PPG) -> 0, as in the reference.
    # Only rows that would score above 0 need the (per-row, slowest) peak search.
    distance = max(int(sampling_rate // 2), 1)
    for j in np.flatnonzero(rescaled > 0):
        if len(scipy.signal.find_peaks(z[j], distance=distance, prominence=0.5)[0]) < 2:
            rescaled[j] = 0.0
    rescaled[ac == 0] = 0.0  # a flat PPG scores 0
    return rescaled, no_dc & (ac > 0)


def _ppg_quality_batch(ppg: np.ndarray, sampling_rate: float) -> tuple[np.ndarray, int]:
    """Rescaled PPG SQI of each row of `ppg` `(n, time)` (raw, physical units, finite).

    Returns the scores `(n,)` and the number of non-flat rows whose perfusion index could not be computed.
    Rows are scored in blocks of `_PPG_BLOCK_ROWS`; float32 input is converted one block at a time.
    """
    scores = np.zeros(len(ppg))
    no_dc = 0
    for start in range(0, len(ppg), _PPG_BLOCK_ROWS):
        block = np.asarray(ppg[start: start + _PPG_BLOCK_ROWS], dtype=np.float64)
        scores[start: start + len(block)], missing_dc = _ppg_quality_block(block, sampling_rate)
        no_dc += int(missing_dc.sum())
    return scores, no_dc


def ppg_quality(signal: np.ndarray, sampling_rate: float, method: str = "qualityfm") -> float:
    """Handcrafted PPG SQI of one segment (§2.1), rescaled to [0, 1].

    Five components, each in [0, 1], summed with weight 0.2: SNR (Welch, 0.5-5 Hz vs 5-25 Hz), histogram
    entropy (20 bins), perfusion index, skewness, relative power (0.5-5 Hz vs 0.1-50 Hz); then
    clip((q - 0.5) / 0.3, 0, 1). Fewer than two detected pulses, or a flat signal, score 0.

    Two departures from the reference code: the perfusion index is AC/DC of the raw signal (the reference
    divides by the mean of the detrended signal, which is ~0 with random sign), so pass raw, un-normalised
    PPG (a non-positive mean scores that component 0); and the reference's random sample-entropy stub is
    left out.

    Args:
        signal (`np.ndarray` of shape `(samples,)`): PPG in physical units (not min-max normalised).
        sampling_rate (`float`): Hz.
        method (`str`, defaults to `"qualityfm"`): Only `"qualityfm"` (§2.1).
    """
    if method not in PPG_METHODS:
        raise ValueError(f"`method` is {method!r}, but has to be one of {list(PPG_METHODS)}.")
    rate = _check_rate(sampling_rate)
    signal = _as_signal(signal, "PPG signal")
    scores, no_dc = _ppg_quality_batch(signal[None], rate)
    if no_dc:
        _warn("PPG mean is <= 0, so the perfusion index is undefined; that component scored 0. "
              "Pass the raw PPG, not a centred or normalised one.")
    return float(scores[0])


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
        _warn(f"{no_dc} of {n} windows have a PPG mean <= 0, so the perfusion index is undefined; that "
              "component scored 0. Pass raw PPG windows, not centred or normalised ones.")

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


__all__ = [
    "DEFAULT_ECG_METHOD",
    "ECG_METHODS",
    "QUALITY_CLASSES",
    "QUALITY_THRESHOLDS",
    "UNSCORED",
    "QualityScores",
    "ecg_quality",
    "ppg_quality",
    "quality_class",
    "quality_class_index",
    "rr_sqi",
    "score_windows",
]
