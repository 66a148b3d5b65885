"""Transparent handcrafted-feature baselines for the three clinical tasks (false VT alarm, AF, ABP).

Each feature function takes ONE task window exactly as `task_data.build_task_table` builds it:
`signals` `(2, T)` in physical units, channel order [PPG, ECG] (`tasks.common.CHANNEL_ORDER`), NaN for missing
samples and for an absent channel, `channel_mask` `(2,)` with 1 = present, and `sampling_rate` in Hz (the
ECG's rate; the PPG is already resampled onto it). So a baseline and the neural model see the same windows.

The features are the textbook ones a clinician-engineer would reach for first:

- VT alarm: ECG spectrum and shape (a true VT is a fast, wide, sinusoid-like rhythm with power at 3-6 Hz; a
  false alarm is mostly noise or motion artefact) and whether the finger pulse keeps going at the ECG's rate
  (a true VT usually loses the pulse).
- AF: irregularity of the RR intervals of sleepecg's R peaks ("irregularly irregular" rhythm), plus how alike
  the QRS complexes are (AF keeps them alike; noise that fakes irregular "beats" does not).
- ABP: pulse arrival time (ECG R peak to the PPG upstroke; on monitor data it includes the monitor's PLETH
  delay) and PPG pulse shape, the classic cuff-less BP surrogates.

A feature that is undefined on a window (absent PPG, too few beats, unusable signal) is NaN; the functions
never raise on a bad window and never return inf. `make_baseline` / `fit_predict` wrap small sklearn models on
top: median imputation + scaling + logistic regression or ridge, a histogram gradient-boosting classifier
(which takes NaN natively), and a training-mean regressor as the floor for BP.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import scipy.signal
import scipy.stats

# The ECG rhythm statistics are the model's own (`modeling/rhythm_qualityfm.py`, which the feature extractor uses
# with `rhythm_features=True`); the AF baseline differs only in where its R peaks come from (sleepecg, `quality.ecg`).
from ..modeling.rhythm_qualityfm import (
    MIN_BEATS,
    RHYTHM_FEATURE_NAMES,
    bandpass,
    beat_correlations,
    coefficient_of_variation,
    fill_gaps,
    rr_intervals,
)
from ..quality.ecg import r_peaks, sleepecg_rhythm_statistics

PPG, ECG = 0, 1  # row of each channel in a task window, as tasks.common.CHANNEL_ORDER = ("PPG", "ECG_II")

# ECG bands (Hz) of the VT features: baseline/T waves, the VT band (broad ventricular complexes and the
# harmonics of fast VT), narrow-QRS energy, high-frequency QRS content and muscle/electrode noise.
ECG_BANDS_HZ = ((0.5, 3.0), (3.0, 6.0), (6.0, 12.0), (12.0, 25.0), (25.0, 40.0))
ECG_SPECTRUM_HZ = (0.5, 40.0)  # the diagnostic ECG band; power outside it is drift or mains
PULSE_RATE_HZ = (0.5, 3.5)  # 30-210 bpm, where the PPG fundamental is searched
PPG_BAND_HZ = (0.4, 10.0)  # keeps the pulse shape (upstroke, notch), drops respiration drift and noise
# Half-width (Hz) of the spectral peak counted as "pulse" power: the rate drifts a little within 10 s.
PPG_PULSATILITY_HALF_WIDTH_HZ = 0.25
# R peak to PPG foot (s). Pre-ejection period plus finger transit is >= ~0.12 s; bedside monitors delay PLETH
# by their own filtering, so on the 2015 Challenge records delays reach ~0.65 s, i.e. a whole RR interval at
# 100 bpm.
PAT_RANGE_S = (0.12, 0.8)
PAT_CLUSTER_S = 0.04  # candidate delays within +-40 ms support the same window-wide PAT
PAT_MATCH_S = 0.1  # a beat's PAT may differ this much from the window's (respiration, beat-to-beat changes)
# A beat correlating less than this with the window's median beat is "abnormal" (ectopic, ventricular, noise).
ABNORMAL_BEAT_CORR = 0.8

_BAND_NAMES = tuple(f"ecg_rel_power_{lo:g}_{hi:g}hz" for lo, hi in ECG_BANDS_HZ)
VT_FEATURE_NAMES = (
    *_BAND_NAMES,
    "ecg_dominant_freq_hz",
    "ecg_spectral_entropy",
    "ecg_kurtosis",
    "ecg_skewness",
    "ecg_unusable_fraction",
    "ecg_hr_bpm",
    "ecg_rr_cv",
    "ecg_max_hr_4rr_bpm",
    "ecg_beat_corr_median",
    "ecg_abnormal_beat_fraction",
    "ppg_unusable_fraction",
    "ppg_pulse_rate_bpm",
    "ppg_pulsatility",
    "ppg_amplitude_cv",
    "ppg_end_amplitude_ratio",
    "hr_pr_abs_diff_bpm",
    "hr_pr_log_ratio",
)
AF_FEATURE_NAMES = RHYTHM_FEATURE_NAMES
ABP_FEATURE_NAMES = (
    "pat_foot_s",
    "pat_peak_s",
    "pat_foot_iqr_s",
    "inv_pat_foot_per_s",
    "hr_bpm",
    "ppg_rise_time_s",
    "ppg_pulse_width_s",
    "ppg_amplitude",
    "ppg_amplitude_cv",
    "rise_time_over_rr",
    "pulse_width_over_rr",
)


# =============================================================================
# Signal helpers
# =============================================================================
def channel(signals: np.ndarray, channel_mask: np.ndarray, index: int) -> np.ndarray | None:
    """Row `index` of a task window as float64, or None when the mask says the channel is absent."""
    if not int(np.asarray(channel_mask)[index]):
        return None
    return np.asarray(signals, dtype=np.float64)[index]


def unusable_fraction(x: np.ndarray, sampling_rate: float, segment_seconds: float = 1.0) -> float:
    """Fraction of samples (0-1) that are NaN or lie in a flat `segment_seconds` segment (peak-to-peak 0).

    Leads off, saturated amplifiers and dropped PPG all read as NaN or a constant; the fraction says how much
    of the window a feature had to be computed without."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return 1.0
    bad = ~np.isfinite(x)
    size = max(2, int(round(segment_seconds * sampling_rate)))
    for start in range(0, x.size, size):
        segment = x[start: start + size]
        live = segment[np.isfinite(segment)]
        if live.size >= 2 and np.ptp(live) == 0:
            bad[start: start + size] = True
    return float(bad.mean())


def welch_psd(x: np.ndarray, sampling_rate: float,
              segment_seconds: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density (frequencies in Hz, power in unit^2/Hz) with linear detrending per
    segment.

    4-s segments give 0.25-Hz resolution, enough to separate the VT band from sinus-rate harmonics while
    averaging a few segments over a 10-s window."""
    nperseg = min(x.size, int(round(segment_seconds * sampling_rate)))
    return scipy.signal.welch(x, fs=sampling_rate, nperseg=nperseg, detrend="linear")


def band_power(freqs: np.ndarray, psd: np.ndarray, low: float, high: float) -> float:
    """Power (unit^2) of `psd` in [low, high) Hz, by the rectangle rule."""
    df = freqs[1] - freqs[0] if freqs.size > 1 else 1.0
    return float(psd[(freqs >= low) & (freqs < high)].sum() * df)


def spectral_entropy(psd: np.ndarray) -> float:
    """Shannon entropy of the normalised spectrum, divided by log(number of bins): 0 for a pure tone (e.g. a
    sinusoidal VT), 1 for white noise (e.g. muscle artefact); a normal ECG lies in between."""
    total = psd.sum()
    if psd.size < 2 or total <= 0:
        return np.nan
    p = psd / total
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(psd.size))


def dominant_frequency(freqs: np.ndarray, psd: np.ndarray, low: float, high: float) -> float:
    """Frequency (Hz) of the largest PSD bin in [low, high]; NaN when the band has no power."""
    band = (freqs >= low) & (freqs <= high)
    if not band.any() or psd[band].max() <= 0:
        return np.nan
    return float(freqs[band][np.argmax(psd[band])])


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN instead of inf or a warning when the denominator is 0 or NaN."""
    if not np.isfinite(numerator) or not np.isfinite(denominator) or denominator == 0:
        return np.nan
    return float(numerator / denominator)


# =============================================================================
# Beats
# =============================================================================
def ppg_beats(ppg: np.ndarray, sampling_rate: float) -> dict[str, np.ndarray] | None:
    """Beat fiducials of a PPG window, or None when it is unusable.

    Returns sample positions `peaks` (systolic maxima, int), `feet` (float, intersecting-tangent foot of each
    peak's upstroke, the standard PAT/PTT fiducial because it is less affected by wave reflection than the
    peak), `amplitudes` (peak - preceding minimum of the 10-Hz low-passed signal, raw PPG units) and `widths`
    (s, pulse width at half amplitude on the band-passed signal). Beats without a complete upstroke get NaN
    feet/widths.
    """
    filled = fill_gaps(ppg)
    if filled is None or filled.size < 2 * sampling_rate:
        return None
    shaped = bandpass(filled, sampling_rate, *PPG_BAND_HZ)
    spread = np.percentile(shaped, 95) - np.percentile(shaped, 5)
    if spread <= 0:
        return None
    # At most 220 bpm; a prominence of a quarter of the pulse spread skips dicrotic notches and small
    # artefacts.
    distance = max(1, int(0.27 * sampling_rate))
    peaks, _ = scipy.signal.find_peaks(shaped, distance=distance, prominence=spread / 4)
    # Raw-unit amplitude: low-pass only, so the pulse height keeps the monitor's scale (high-pass would shrink
    # it).
    cutoff = min(10.0, 0.45 * sampling_rate)
    sos = scipy.signal.butter(2, cutoff, btype="lowpass", output="sos", fs=sampling_rate)
    smooth = scipy.signal.sosfiltfilt(sos, filled)
    slope = np.gradient(shaped)
    feet, amplitudes, widths = (np.full(peaks.size, np.nan) for _ in range(3))
    for k, peak in enumerate(peaks):
        start = peaks[k - 1] if k > 0 else max(0, peak - int(1.5 * sampling_rate))
        if peak - start < 3:
            continue
        trough = start + int(np.argmin(shaped[start:peak]))
        amplitudes[k] = smooth[peak] - smooth[start + int(np.argmin(smooth[start:peak]))]
        if k == 0 and trough == start:  # the window cuts the upstroke: no foot for the first beat
            continue
        steepest = trough + int(np.argmax(slope[trough:peak]))
        if slope[steepest] > 0:
            # Tangent at the steepest upstroke meets the horizontal through the trough.
            foot = steepest - (shaped[steepest] - shaped[trough]) / slope[steepest]
            feet[k] = np.clip(foot, trough, steepest)
        stop = peaks[k + 1] if k + 1 < peaks.size else shaped.size
        half = shaped[trough] + 0.5 * (shaped[peak] - shaped[trough])
        below_before = np.flatnonzero(shaped[trough:peak] < half)
        below_after = np.flatnonzero(shaped[peak:stop] < half)
        if below_before.size and below_after.size:
            widths[k] = (peak + below_after[0] - (trough + below_before[-1])) / sampling_rate
    return {"peaks": peaks, "feet": feet, "amplitudes": amplitudes, "widths": widths}


# =============================================================================
# VT false alarm
# =============================================================================
def ecg_spectral_shape(ecg: np.ndarray | None, sampling_rate: float) -> list[float]:
    """Relative band powers (`ECG_BANDS_HZ`, fractions of 0.5-40 Hz power), dominant frequency (Hz), spectral
    entropy (0-1), kurtosis and skewness of the 0.5-40 Hz ECG. Narrow QRS spikes give a high kurtosis and
    broad spectrum; VT is a low-kurtosis, low-entropy 3-6 Hz oscillation; artefact is often broadband or very
    slow."""
    filled = None if ecg is None else fill_gaps(ecg)
    if filled is None or filled.size < sampling_rate:
        return [np.nan] * (len(ECG_BANDS_HZ) + 4)
    freqs, psd = welch_psd(filled, sampling_rate)
    low, high = ECG_SPECTRUM_HZ
    total = band_power(freqs, psd, low, high)
    if total <= 0:
        return [np.nan] * (len(ECG_BANDS_HZ) + 4)
    relative = [band_power(freqs, psd, lo, hi) / total for lo, hi in ECG_BANDS_HZ]
    in_band = (freqs >= low) & (freqs < high)
    clean = bandpass(filled, sampling_rate, low, high)
    return [
        *relative,
        dominant_frequency(freqs, psd, low, high),
        spectral_entropy(psd[in_band]),
        float(scipy.stats.kurtosis(clean)),
        float(scipy.stats.skew(clean)),
    ]


def ecg_rhythm(peaks: np.ndarray, sampling_rate: float) -> tuple[float, float, float]:
    """Heart rate (bpm, from the median RR), RR coefficient of variation and the fastest rate over 4
    consecutive RR intervals (bpm) of R peaks `peaks`; NaN with fewer than `MIN_BEATS` beats. A median keeps
    one missed beat from halving the rate; the 4-RR maximum is the monitor's own VT criterion (>= 5 beats
    above 100 bpm)."""
    rr = rr_intervals(peaks, sampling_rate)
    if rr.size < MIN_BEATS - 1:
        return np.nan, np.nan, np.nan
    fastest = 60.0 / float(np.convolve(rr, np.ones(4) / 4, mode="valid").min()) if rr.size >= 4 else np.nan
    return 60.0 / float(np.median(rr)), coefficient_of_variation(rr), fastest


def ecg_morphology(ecg: np.ndarray | None, peaks: np.ndarray, sampling_rate: float) -> tuple[float, float]:
    """Median beat-to-template correlation and the fraction of beats below `ABNORMAL_BEAT_CORR`: a run of wide
    ventricular beats among sinus beats, or a VT whose beats the detector cannot align, lowers the first and
    raises the second."""
    corr = np.array([]) if ecg is None else beat_correlations(ecg, peaks, sampling_rate)
    corr = corr[np.isfinite(corr)]
    if corr.size < MIN_BEATS:
        return np.nan, np.nan
    return float(np.median(corr)), float(np.mean(corr < ABNORMAL_BEAT_CORR))


def ppg_pulse_features(ppg: np.ndarray | None, sampling_rate: float) -> list[float]:
    """Pulse rate (bpm, PPG spectral peak in 30-210 bpm), pulsatility (0-1: power within +-0.25 Hz of that
    peak and its first harmonic over 0.4-10 Hz power), beat-amplitude CV, and std of the last 3 s over std of
    the whole window. A perfusing rhythm gives a clean periodic pulse; a true VT typically flattens the pulse
    (low pulsatility, end ratio near 0) while a false alarm leaves it intact."""
    filled = None if ppg is None else fill_gaps(ppg)
    if filled is None or filled.size < 2 * sampling_rate:
        return [np.nan] * 4
    shaped = bandpass(filled, sampling_rate, *PPG_BAND_HZ)
    # 8-s segments: finer frequency resolution for the pulse peak (0.125 Hz = 7.5 bpm) on a 10-s window.
    freqs, psd = welch_psd(shaped, sampling_rate, segment_seconds=8.0)
    total = band_power(freqs, psd, *PPG_BAND_HZ)
    f0 = dominant_frequency(freqs, psd, *PULSE_RATE_HZ)
    if total <= 0 or not np.isfinite(f0):
        return [np.nan] * 4
    w = PPG_PULSATILITY_HALF_WIDTH_HZ
    pulse = band_power(freqs, psd, f0 - w, f0 + w) + band_power(freqs, psd, 2 * f0 - w, 2 * f0 + w)
    beats = ppg_beats(ppg, sampling_rate)
    amplitude_cv = np.nan if beats is None else coefficient_of_variation(beats["amplitudes"])
    tail = shaped[-int(3 * sampling_rate):]
    end_ratio = safe_ratio(float(tail.std()), float(shaped.std()))
    return [60.0 * f0, min(1.0, pulse / total), amplitude_cv, end_ratio]


def vt_features(signals: np.ndarray, channel_mask: np.ndarray, sampling_rate: float) -> np.ndarray:
    """`VT_FEATURE_NAMES` of one false-VT-alarm window (10 s before the alarm), float64, NaN where undefined.

    ECG: spectral shape, kurtosis/skewness, unusable fraction, R-peak rate, RR variability, fastest 4-RR rate
    and beat morphology (a VT run is wide beats unlike the dominant ones). PPG: unusable fraction, pulse rate,
    pulsatility, amplitude variability and end-of-window amplitude. Agreement: |HR - PR| (bpm) and ln(HR /
    PR): a sustained VT rarely keeps a matching finger pulse. (On the 2015 Challenge records many true alarms
    are short runs with the pulse intact, and many false alarms have a clean lead II with the artefact in
    another lead.)
    """
    fs = float(sampling_rate)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Constant stretches make scipy.stats warn; those values come back NaN and say so themselves.
        warnings.simplefilter("ignore")
        ecg, ppg = channel(signals, channel_mask, ECG), channel(signals, channel_mask, PPG)
        ecg_unusable = np.nan if ecg is None else unusable_fraction(ecg, fs)
        ppg_unusable = np.nan if ppg is None else unusable_fraction(ppg, fs)
        peaks = np.array([], dtype=np.int64) if ecg is None else r_peaks(ecg, fs)
        hr, rr_cv, fastest = ecg_rhythm(peaks, fs)
        beat_corr, abnormal = ecg_morphology(ecg, peaks, fs)
        pulse_rate, pulsatility, amplitude_cv, end_ratio = ppg_pulse_features(ppg, fs)
        values = [
            *ecg_spectral_shape(ecg, fs), ecg_unusable, hr, rr_cv, fastest, beat_corr, abnormal,
            ppg_unusable, pulse_rate, pulsatility, amplitude_cv, end_ratio,
            abs(hr - pulse_rate), np.log(safe_ratio(hr, pulse_rate)),  # log: symmetric, no long tail
        ]
    return finite_or_nan(values, len(VT_FEATURE_NAMES))


# =============================================================================
# AF
# =============================================================================


def af_features(signals: np.ndarray, channel_mask: np.ndarray, sampling_rate: float) -> np.ndarray:
    """`AF_FEATURE_NAMES` of one AF window (ECG only), float64: seven RR-irregularity statistics of sleepecg's
    R peaks and the median beat-to-template correlation. The correlation tells AF (irregular timing,
    consistent QRS) from noise (irregular "beats" that are artefacts, the 2017 "~" class, labelled not-AF);
    without it the noisy records score as the most irregular of all. NaN with < 4 beats."""
    return sleepecg_rhythm_statistics(channel(signals, channel_mask, ECG), float(sampling_rate))


# =============================================================================
# ABP
# =============================================================================
def pulse_arrival_times(r: np.ndarray, beats: dict[str, np.ndarray],
                        sampling_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Per R peak, seconds to its PPG foot and to that beat's systolic peak.

    PAT = pre-ejection period + pulse transit time (+ the monitor's PLETH delay); its transit part shortens as
    arterial pressure stiffens the wall, the basis of cuff-less BP. When PAT is close to an RR interval, "the
    next foot after the R peak" flips between two beats, so the window's PAT is found first: the delay (within
    `PAT_RANGE_S`) that most R-to-foot candidate delays agree with (+-`PAT_CLUSTER_S`), the earliest one when
    several agree about equally (a delay and the same delay plus one RR). Each R peak then takes its candidate
    nearest to it, if within `PAT_MATCH_S`; R peaks without one (missed or artefact beats) are left out."""
    feet, peaks = beats["feet"], beats["peaks"]
    valid = np.isfinite(feet)
    feet, peaks = feet[valid], peaks[valid]
    if feet.size == 0 or np.size(r) == 0:
        return np.array([]), np.array([])
    delays = (feet[None, :] - np.asarray(r, dtype=np.float64)[:, None]) / sampling_rate  # (R peaks, feet)
    in_range = (delays >= PAT_RANGE_S[0]) & (delays <= PAT_RANGE_S[1])
    candidates = delays[in_range]
    if candidates.size == 0:
        return np.array([]), np.array([])
    support = (np.abs(candidates[:, None] - candidates[None, :]) <= PAT_CLUSTER_S).sum(axis=1)
    # 0.8: the delay one RR later is supported by nearly as many beats; the earlier one is the beat's own
    # pulse.
    typical = candidates[support >= 0.8 * support.max()].min()
    distance = np.where(in_range, np.abs(delays - typical), np.inf)
    nearest = np.argmin(distance, axis=1)
    matched = distance[np.arange(len(nearest)), nearest] <= PAT_MATCH_S
    rows, cols = np.flatnonzero(matched), nearest[matched]
    return delays[rows, cols], (peaks[cols] - np.asarray(r)[rows]) / sampling_rate


def abp_features(signals: np.ndarray, channel_mask: np.ndarray, sampling_rate: float) -> np.ndarray:
    """`ABP_FEATURE_NAMES` of one ABP window (ECG + PPG), float64, NaN where undefined.

    Median PAT to the PPG foot and peak (s), its IQR (s, how consistent the pairing is), 1 / PAT (1/s, the
    usual linear regressor for BP), HR (bpm), PPG rise time and half-amplitude width (s), pulse amplitude (raw
    PPG units) and its CV, and rise time and width as fractions of the RR interval (shape independent of
    rate)."""
    fs = float(sampling_rate)
    named = dict.fromkeys(ABP_FEATURE_NAMES, np.nan)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ecg, ppg = channel(signals, channel_mask, ECG), channel(signals, channel_mask, PPG)
        r = np.array([], dtype=np.int64) if ecg is None else r_peaks(ecg, fs)
        rr = rr_intervals(r, fs)
        median_rr = float(np.median(rr)) if rr.size >= MIN_BEATS - 1 else np.nan
        beats = None if ppg is None else ppg_beats(ppg, fs)
        if beats is not None and beats["peaks"].size >= MIN_BEATS:
            named["ppg_rise_time_s"] = nan_median((beats["peaks"] - beats["feet"]) / fs)
            named["ppg_pulse_width_s"] = nan_median(beats["widths"])
            named["ppg_amplitude"] = nan_median(beats["amplitudes"])
            named["ppg_amplitude_cv"] = coefficient_of_variation(beats["amplitudes"])
            to_foot, to_peak = pulse_arrival_times(r, beats, fs)
            if to_foot.size >= MIN_BEATS:
                named["pat_foot_s"] = float(np.median(to_foot))
                named["pat_peak_s"] = float(np.median(to_peak))
                named["pat_foot_iqr_s"] = float(np.subtract(*np.percentile(to_foot, [75, 25])))
                named["inv_pat_foot_per_s"] = safe_ratio(1.0, named["pat_foot_s"])
        named["hr_bpm"] = safe_ratio(60.0, median_rr)
        named["rise_time_over_rr"] = safe_ratio(named["ppg_rise_time_s"], median_rr)
        named["pulse_width_over_rr"] = safe_ratio(named["ppg_pulse_width_s"], median_rr)
    values = [named[name] for name in ABP_FEATURE_NAMES]
    return finite_or_nan(values, len(ABP_FEATURE_NAMES))


def nan_median(values: np.ndarray) -> float:
    """Median of the finite values, NaN when there are none (without numpy's all-NaN warning)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else np.nan


def finite_or_nan(values: Iterable[float], size: int) -> np.ndarray:
    """float64 vector of `size` values with inf replaced by NaN: the contract is 'finite or NaN', never inf.
    """
    out = np.asarray(list(values), dtype=np.float64)
    if out.shape != (size,):
        # A bug in this module, not bad data: bad data gives NaN.
        raise AssertionError(f"feature vector has shape {out.shape}, expected ({size},)")
    out[~np.isfinite(out)] = np.nan
    return out


# =============================================================================
# Registry, feature matrix, models
# =============================================================================
TASK_FEATURES: dict[str, Callable[..., np.ndarray]] = {
    "vt-false-alarm": vt_features,
    "af": af_features,
    "abp": abp_features,
}
FEATURE_NAMES: dict[str, tuple[str, ...]] = {
    "vt-false-alarm": VT_FEATURE_NAMES,
    "af": AF_FEATURE_NAMES,
    "abp": ABP_FEATURE_NAMES,
}
BASELINES: dict[str, tuple[str, ...]] = {
    "vt-false-alarm": ("logistic", "gradient_boosting"),
    "af": ("logistic",),
    "abp": ("training_mean", "ridge"),
}
REGRESSION_TASKS = ("abp",)


def _check_task(task: str) -> None:
    if task not in TASK_FEATURES:
        raise ValueError(f"task is {task!r}, but has to be one of {list(TASK_FEATURES)}.")


def feature_matrix(task: str, rows: Iterable[Mapping], *, progress: bool = False) -> np.ndarray:
    """Features of every window in `rows` as an `(n, len(FEATURE_NAMES[task]))` float64 array (NaN =
    undefined).

    `rows` yields dicts with `signals`, `channel_mask` and `sampling_rate`, e.g. a task dataset in numpy
    format. `progress=True` shows a tqdm bar."""
    _check_task(task)
    function, width = TASK_FEATURES[task], len(FEATURE_NAMES[task])
    if progress:
        from ..utils.progress import progress_bar

        rows = progress_bar(rows, desc=f"{task} features", leave=True)
    features = [function(row["signals"], row["channel_mask"], row["sampling_rate"]) for row in rows]
    return np.asarray(features, dtype=np.float64).reshape(len(features), width)


def make_baseline(task: str, kind: str, seed: int = 0):
    """An unfitted sklearn estimator for `kind` in `BASELINES[task]`.

    Imputation keeps all-NaN columns (`keep_empty_features=True`, filled with 0) so column positions never
    shift between folds; gradient boosting takes NaN natively but not an all-NaN training column
    (`fit_predict` drops those). Class weights are balanced because true VT alarms and AF are the minority
    class."""
    _check_task(task)
    if kind not in BASELINES[task]:
        raise ValueError(
            f"baseline kind is {kind!r}, but for task {task!r} has to be one of {list(BASELINES[task])}."
        )
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def imputer():
        return SimpleImputer(strategy="median", add_indicator=False, keep_empty_features=True)

    if kind == "logistic":
        return make_pipeline(imputer(), StandardScaler(),
                             LogisticRegression(class_weight="balanced", C=1.0, max_iter=2000))
    if kind == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=8,
                                              min_samples_leaf=10, class_weight="balanced", random_state=seed)
    if kind == "training_mean":
        return DummyRegressor(strategy="mean")
    return make_pipeline(imputer(), StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))  # "ridge"


def fit_predict(task: str, kind: str, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                seed: int = 0) -> np.ndarray:
    """Fit `make_baseline(task, kind, seed)` on the training windows and predict the test windows.

    Columns that are NaN in every training row are dropped from both matrices first (positions stay aligned).

    Returns P(class 1) `(n_test,)` for the classification tasks, `[SBP, DBP]` mmHg `(n_test, 2)` for "abp"."""
    estimator = make_baseline(task, kind, seed)
    X_train, X_test = np.asarray(X_train, dtype=np.float64), np.asarray(X_test, dtype=np.float64)
    if X_train.ndim != 2 or X_test.ndim != 2 or X_train.shape[1] != X_test.shape[1]:
        raise ValueError(
            f"X_train and X_test must be 2-D with the same columns; got {X_train.shape}, {X_test.shape}."
        )
    # inf would break the scaler; the feature functions never emit it, but a caller's own columns might.
    X_train, X_test = np.where(np.isinf(X_train), np.nan, X_train), np.where(np.isinf(X_test), np.nan, X_test)
    # A feature undefined on every training window (e.g. all PPG features when no training record has PLETH)
    # carries nothing to learn; gradient boosting's binning raises on it, so it goes from train and test
    # alike.
    informative = ~np.isnan(X_train).all(axis=0)
    X_train, X_test = X_train[:, informative], X_test[:, informative]
    if not informative.any():  # nothing at all to learn from: one constant column gives the prior / the mean
        X_train, X_test = np.zeros((len(X_train), 1)), np.zeros((len(X_test), 1))
    y_train = np.asarray(y_train)
    if task in REGRESSION_TASKS:
        estimator.fit(X_train, y_train.astype(np.float64))
        return np.asarray(estimator.predict(X_test), dtype=np.float64).reshape(len(X_test), -1)
    y_train = y_train.astype(int).ravel()
    if np.unique(y_train).size < 2:
        raise ValueError(
            f"{task}: the training labels hold one class only ({np.unique(y_train)}); "
            "a classifier needs both."
        )
    # One OpenMP thread: with a few hundred rows, HistGradientBoosting's threads only wait on each other, and
    # on a busy 2-core machine they spin (measured: 27 s per fit with the default threads, 0.14 s with one).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        estimator.fit(X_train, y_train)
        return estimator.predict_proba(X_test)[:, list(estimator.classes_).index(1)]


__all__ = [
    "ABP_FEATURE_NAMES",
    "AF_FEATURE_NAMES",
    "BASELINES",
    "FEATURE_NAMES",
    "TASK_FEATURES",
    "VT_FEATURE_NAMES",
    "abp_features",
    "af_features",
    "feature_matrix",
    "fit_predict",
    "make_baseline",
    "vt_features",
]
