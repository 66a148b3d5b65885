"""PPG quality: the five-component handcrafted SQI, rescaled (paper notes §2.1)."""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
import scipy.signal

from .common import _as_signal, _check_rate, _warn

PPG_METHODS = ("qualityfm",)



# =============================================================================
# PPG: five-component SQI
# =============================================================================
# Rows per block of the PPG SQI: (16, 9000) float64 is 1.1 MB, so the dozen passes over a block stay in the
# L2 cache instead of streaming the whole batch from memory for each (2.5x faster than whole-batch passes).
_PPG_BLOCK_ROWS = 16
# A PPG whose mean lies within this fraction of its pulse swing (max - min) of 0 is centred on 0: the sign of its mean
# is noise. Many PhysioNet 2015 PLETH channels are exported so by the monitor (AC-coupled: means of +-0.01 for a swing
# of 4), where raw DC-coupled PPG has a perfusion index AC/DC below ~20 % (a mean above 5 x the swing).
CENTRED_FRACTION = 0.1
NO_DC_MESSAGE = ("a PPG mean below 0, not merely centred on 0 (offset or inverted, by the monitor or by processing "
                 "before scoring), so the perfusion index AC/DC is undefined and scored 0")
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
    # A PPG centred on 0 (|mean| under CENTRED_FRACTION of its swing) scores 1, the limit of AC/DC as the mean
    # falls to 0 and what a normalised PPG or an offset one (PLETH in normalised units) scores: testing the sign of
    # its mean alone scored it 0 or 1 at random, window by window. A mean below that is undefined and scores 0.
    ac = raw.max(axis=-1) - raw.min(axis=-1)
    centred = np.abs(dc) <= CENTRED_FRACTION * ac
    no_dc = ~(dc > 0) & ~centred
    perfusion_score = np.where(no_dc, 0.0, np.clip(10 * ac / np.where(dc > 0, dc, 1.0), 0, 1))
    perfusion_score[centred] = 1.0

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
    PPG (a PPG centred on 0, |mean| under a tenth of its swing, scores that component 1, a negative mean 0);
    and the reference's random sample-entropy stub is left out.

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
        _warn(f"The PPG has {NO_DC_MESSAGE}.")
    return float(scores[0])


