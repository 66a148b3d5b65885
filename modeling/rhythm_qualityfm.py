"""Heart rhythm statistics of an ECG window: R peaks, RR intervals and how irregular they are.

AF is "irregularly irregular": the RR intervals vary at random while the QRS complexes keep their shape. A
30-s window holds 20-60 beats, and an encoder fine-tuned on a few hundred records does not learn to time them
(benchmarks/CLINICAL.md: AF AUROC about 0.7 from the encoder alone, about 0.9 from these statistics). So the
feature extractor can compute them (`rhythm_features=True`) and a task head can read them beside the pooled
embedding (`config.classifier_rhythm_features`). The handcrafted AF baseline (`qualityfm_hf.baselines`) uses the
same statistics on sleepecg's R peaks.

Ships as Hub remote code beside the feature extractor: numpy and scipy only.
"""

import warnings

import numpy as np
import scipy.signal

# Most NaN a channel may have before its statistics are NaN: interpolating across half a window invents a signal.
MAX_MISSING_FRACTION = 0.5
# Plausible RR intervals (s): 20-300 bpm. Shorter ones are double detections, longer ones gaps.
RR_RANGE_S = (0.2, 3.0)
# A true QRS is rarely below 30 % of the typical one in the QRS band; T waves and baseline wiggles are.
MIN_QRS_AMPLITUDE_RATIO = 0.3
MIN_BEATS = 4  # below this an RR statistic of a 10-30 s window is meaningless
BEAT_HALF_WINDOW_S = 0.12  # +-120 ms around an R peak holds a whole QRS, wide ventricular ones included
QRS_BAND_HZ = (5.0, 30.0)  # where the QRS has its energy and P/T waves and drift have little
# R-peak candidates: maxima of the QRS band at least 0.25 s apart (240 bpm) and above this fraction of the median
# per-second maximum. Chosen on the development folds of CLINICAL.md (0.3 / 0.4 / 0.5 gave AF baseline AUROC
# 0.946 / 0.943 / 0.931 with seed 1000, 0.942 / 0.939 / 0.938 with seed 2000).
PEAK_HEIGHT_RATIO = 0.3
PEAK_DISTANCE_S = 0.25

RHYTHM_FEATURE_NAMES = (
    "hr_mean_bpm",
    "rr_cv",
    "rmssd_rel",
    "pnn50",
    "median_abs_drr_rel",
    "rr_outlier_fraction",
    "rr_cosen",
    "qrs_template_corr",
)
# Robust centre and scale of each statistic, rounded from their medians and interquartile ranges over 400 windows
# of the PhysioNet 2015 pairs; standardised values are (value - centre) / scale, clipped at +-5, so every statistic
# counts about equally and none can blow up a linear layer.
RHYTHM_CENTER = np.array([90.0, 0.1, 0.1, 0.1, 0.02, 0.05, -2.0, 0.95])
RHYTHM_SCALE = np.array([30.0, 0.2, 0.3, 0.5, 0.1, 0.3, 0.7, 0.1])
RHYTHM_CLIP = 5.0


def fill_gaps(x: np.ndarray, max_missing: float = MAX_MISSING_FRACTION) -> np.ndarray | None:
    """`x` with NaN/inf bridged by linear interpolation (edges hold the nearest value), or None when more than
    `max_missing` of it is missing or the finite part is flat. Filters and detectors cannot take NaN, and a
    flat signal has no beats."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if x.size < 2 or finite.mean() <= 1.0 - max_missing or np.ptp(x[finite]) == 0:
        return None
    if finite.all():
        return x.copy()
    t = np.arange(x.size)
    out = x.copy()
    out[~finite] = np.interp(t[~finite], t[finite], x[finite])
    return out


def bandpass(x: np.ndarray, sampling_rate: float, low: float, high: float, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass (Hz); zero phase keeps beat timings unbiased. `high` is clipped below
    Nyquist so 125-Hz records work too."""
    high = min(high, 0.45 * sampling_rate)
    if not low < high:  # a rate too low for the band: nothing of it can be measured
        return np.zeros_like(x)
    sos = scipy.signal.butter(order, (low, high), btype="bandpass", output="sos", fs=sampling_rate)
    if x.size <= 3 * (2 * sos.shape[0] + 1):  # shorter than filtfilt's padding
        return np.zeros_like(x)
    return scipy.signal.sosfiltfilt(sos, x)


def ecg_polarity(filtered: np.ndarray, sampling_rate: float) -> int:
    """+1 when the QRS complexes of the QRS-band ECG `filtered` point up, -1 when they point down.

    A detector that picks local maxima would time the beats of an inverted lead (handheld devices held the wrong
    way round, aVR) on a smaller positive lobe. The median over 1-s segments of the largest upward and downward
    deflection says which way the QRS goes; a median, because one electrode-motion spike must not flip a whole
    window."""
    size = max(1, int(sampling_rate))
    segments = filtered[: filtered.size // size * size].reshape(-1, size)
    if segments.size == 0:
        return 1
    up, down = np.median(segments.max(axis=1)), np.median(-segments.min(axis=1))
    return -1 if down > 1.2 * up else 1  # 1.2: only flip when clearly negative (biphasic QRS stays as is)


def keep_full_size_beats(peaks: np.ndarray, filtered: np.ndarray, sampling_rate: float) -> np.ndarray:
    """Drop detections whose QRS-band amplitude is below `MIN_QRS_AMPLITUDE_RATIO` of the typical beat's (the 75th
    percentile, the typical QRS even when up to half the detections are spurious): T waves and baseline wiggles
    accepted as beats look exactly like the irregular RR of AF."""
    if peaks.size < 2:
        return peaks
    half = max(1, int(0.04 * sampling_rate))  # +-40 ms covers the QRS around the detected sample
    amplitude = np.array([np.abs(filtered[max(0, p - half): p + half + 1]).max() for p in peaks])
    return peaks[amplitude >= MIN_QRS_AMPLITUDE_RATIO * np.percentile(amplitude, 75)]


def detect_r_peaks(ecg: np.ndarray, sampling_rate: float) -> np.ndarray:
    """R-peak sample indices of one ECG window (any units, NaN for missing samples); empty when it is unusable.

    The whole window is known, so one threshold serves it: maxima of the polarity-corrected QRS band at least
    `PEAK_DISTANCE_S` apart and above `PEAK_HEIGHT_RATIO` of the median per-second maximum (a median, so one
    artefact spike cannot raise the threshold above every beat), then `keep_full_size_beats`."""
    filled = fill_gaps(ecg)
    if filled is None or filled.size < 2 * sampling_rate:
        return np.array([], dtype=np.int64)
    filtered = bandpass(filled, sampling_rate, *QRS_BAND_HZ)
    filtered = ecg_polarity(filtered, sampling_rate) * filtered
    size = max(1, int(sampling_rate))
    reference = np.median(filtered[: filtered.size // size * size].reshape(-1, size).max(axis=1))
    if not reference > 0:
        return np.array([], dtype=np.int64)
    peaks, _ = scipy.signal.find_peaks(filtered, height=PEAK_HEIGHT_RATIO * reference,
                                       distance=max(1, int(PEAK_DISTANCE_S * sampling_rate)))
    return keep_full_size_beats(peaks.astype(np.int64), filtered, sampling_rate)


def rr_intervals(peaks: np.ndarray, sampling_rate: float) -> np.ndarray:
    """RR intervals (s) between consecutive peaks, dropping implausible ones (`RR_RANGE_S`): those are missed
    or double detections and NaN gaps, which would dominate every variability statistic."""
    rr = np.diff(np.asarray(peaks, dtype=np.float64)) / sampling_rate
    return rr[(rr >= RR_RANGE_S[0]) & (rr <= RR_RANGE_S[1])]


def coefficient_of_variation(values: np.ndarray) -> float:
    """std / mean (dimensionless), NaN with fewer than 3 values or a non-positive mean."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 3 or values.mean() <= 0:
        return np.nan
    return float(values.std() / values.mean())


def beat_correlations(ecg: np.ndarray, peaks: np.ndarray, sampling_rate: float) -> np.ndarray:
    """Pearson correlation (-1..1) of each beat (+-`BEAT_HALF_WINDOW_S` of 1-40 Hz ECG around its R peak) with
    the median beat of the window; empty with fewer than `MIN_BEATS` complete beats.

    The median beat is the dominant morphology. Ventricular beats (a VT run) and noise detections correlate
    poorly with it; AF keeps normal QRS complexes, so its beats correlate well although their timing is
    random."""
    filled = fill_gaps(ecg)
    half = int(round(BEAT_HALF_WINDOW_S * sampling_rate))
    if filled is None or filled.size <= 2 * half + 1:
        return np.array([])
    peaks = np.asarray(peaks)
    peaks = peaks[(peaks >= half) & (peaks < filled.size - half)]
    if peaks.size < MIN_BEATS:
        return np.array([])
    clean = bandpass(filled, sampling_rate, 1.0, 40.0)
    beats = np.stack([clean[p - half: p + half + 1] for p in peaks])
    beats = beats - beats.mean(axis=1, keepdims=True)
    template = np.median(beats, axis=0)
    template = template - template.mean()
    norms = np.linalg.norm(beats, axis=1) * np.linalg.norm(template)
    with np.errstate(all="ignore"):
        return np.where(norms > 0, beats @ template / norms, np.nan)


def cosen(rr: np.ndarray, tolerance_s: float = 0.03) -> float:
    """Coefficient of sample entropy of RR intervals (Lake & Moorman 2011), m = 1, fixed tolerance 30 ms.

    SampEn with an absolute tolerance, corrected by ln(2r) and by -ln(mean RR), so it is comparable across
    heart rates and does not rise for a regular rhythm whose tiny RR jitter is all noise (the
    relative-tolerance SampEn does). AF runs about -1 and above, sinus rhythm about -2 and below. With no
    length-2 match, one match is assumed (the entropy's upper bound for this series) instead of inf."""
    rr = np.asarray(rr, dtype=np.float64)
    if rr.size < MIN_BEATS or rr.mean() <= 0:
        return np.nan
    # Pairs i < j of templates of length 1 (B) and 2 (A) within the tolerance (Chebyshev distance).
    close = np.abs(rr[:-1, None] - rr[None, :-1]) <= tolerance_s
    close2 = close & (np.abs(rr[1:, None] - rr[None, 1:]) <= tolerance_s)
    upper = np.triu_indices(rr.size - 1, k=1)
    matches_1, matches_2 = close[upper].sum(), close2[upper].sum()
    if matches_1 == 0:
        return np.nan
    sampen = -np.log(max(matches_2, 1) / matches_1)
    return float(sampen + np.log(2 * tolerance_s) - np.log(rr.mean()))


def rr_irregularity(rr: np.ndarray) -> list[float]:
    """Mean HR (bpm), RR CV, RMSSD / mean RR, pNN50 (fraction of |dRR| > 50 ms), median |dRR| / median RR,
    fraction of RR off the median by > 15 %, and COSEn. AF is "irregularly irregular": successive differences
    are large (RMSSD, pNN50, median |dRR|) and many beats are far from the typical interval, unlike
    ectopy-free sinus."""
    if rr.size < MIN_BEATS - 1:
        return [np.nan] * 7
    mean, median = float(rr.mean()), float(np.median(rr))
    drr = np.diff(rr)
    return [
        60.0 / mean,
        coefficient_of_variation(rr),
        float(np.sqrt(np.mean(drr**2))) / mean,
        float(np.mean(np.abs(drr) > 0.05)),
        float(np.median(np.abs(drr))) / median,
        float(np.mean(np.abs(rr - median) > 0.15 * median)),
        cosen(rr),
    ]


def rhythm_statistics(ecg: np.ndarray | None, sampling_rate: float, peaks: np.ndarray | None = None) -> np.ndarray:
    """`RHYTHM_FEATURE_NAMES` of one ECG window, float64 `(8,)`: seven RR-irregularity statistics and the median
    beat-to-template correlation, which tells AF (irregular timing, consistent QRS) from noise (irregular "beats"
    that are artefacts). R peaks from `detect_r_peaks` unless given. NaN where undefined (no ECG, fewer than
    `MIN_BEATS` beats); never inf, never raises on a bad window."""
    out = np.full(len(RHYTHM_FEATURE_NAMES), np.nan)
    if ecg is None:
        return out
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fs = float(sampling_rate)
        peaks = detect_r_peaks(ecg, fs) if peaks is None else np.asarray(peaks, dtype=np.int64)
        if peaks.size < MIN_BEATS:
            return out
        correlations = beat_correlations(ecg, peaks, fs)
        correlations = correlations[np.isfinite(correlations)]
        out[:] = [*rr_irregularity(rr_intervals(peaks, fs)),
                  float(np.median(correlations)) if correlations.size else np.nan]
    out[~np.isfinite(out)] = np.nan
    return out


def scale_rhythm(values: np.ndarray) -> np.ndarray:
    """`(value - RHYTHM_CENTER) / RHYTHM_SCALE` clipped at +-`RHYTHM_CLIP`, float64, NaN kept where a statistic is
    undefined (a pretraining target masks it out of the loss)."""
    return np.clip((np.asarray(values, dtype=np.float64) - RHYTHM_CENTER) / RHYTHM_SCALE, -RHYTHM_CLIP, RHYTHM_CLIP)


def standardize_rhythm(values: np.ndarray) -> np.ndarray:
    """`scale_rhythm` as float32 with an undefined statistic at 0 (the centre): a linear layer then reads "unknown"
    as "typical" instead of NaN."""
    return np.nan_to_num(scale_rhythm(values), nan=0.0).astype(np.float32)


__all__ = [
    "RHYTHM_FEATURE_NAMES",
    "detect_r_peaks",
    "rhythm_statistics",
    "scale_rhythm",
    "standardize_rhythm",
]
