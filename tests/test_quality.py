"""Signal quality (§2.1): rrSQI, PPG SQI, classes and the batch scorer, on hand-checkable signals and v100s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from qualityfm_hf.quality import (
    QUALITY_CLASSES,
    _ecg_clean_batch,
    _ppg_quality_batch,
    _sleepecg_rows,
    _welch_bands,
    ecg_quality,
    ppg_quality,
    quality_class,
    quality_class_index,
    rr_sqi,
    score_windows,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FS = 300
T = np.arange(30 * FS) / FS  # one 30-s window at 300 Hz


def beat_train(period_s: float, width_s: float = 0.01) -> np.ndarray:
    """Narrow Gaussian "R waves", one per `period_s`, on a flat baseline (mV-like amplitude 1)."""
    return np.exp(-(((T % period_s) - period_s / 2) ** 2) / (2 * width_s**2))


def pulse_wave(rate_hz: float = 1.2, dc: float = 2.0) -> np.ndarray:
    """PPG-like pulse: fast upstroke, slow decay, on a positive DC level (perfusion-index-friendly)."""
    phase = (T * rate_hz) % 1.0
    return dc + 0.3 * (np.exp(-phase * 5) * np.clip(phase * 20, 0, 1))


# ----------------------------------------------------------------------------- rrSQI
def test_rr_sqi_of_regular_peaks_is_n_minus_one_over_n():
    peaks = np.arange(0, 9000, 300)  # 30 beats at 60 bpm
    assert rr_sqi(peaks, FS, 9000) == pytest.approx(29 / 30)


def test_rr_sqi_flags_out_of_range_hr_and_jumps():
    assert rr_sqi(np.arange(0, 9000, 120), FS, 9000) == 0.0  # 150 bpm: every beat out of range
    assert rr_sqi(np.arange(0, 19 * 300, 300), FS, 9000) == 0.0  # 19 QRS < 20
    assert rr_sqi(np.arange(0, 9000, 300), FS, 199) == 0.0  # < 200 samples
    # one 1.3-s pause among 1-s beats: that RR jumps by 0.3 s (ok) but HR drops 23% (ok) -> all good
    peaks = np.cumsum([0] + [300] * 10 + [390] + [300] * 18)
    assert rr_sqi(peaks, FS, 9000) == pytest.approx(29 / 30)
    # a 2-s pause: HR 30 bpm (bad), the next beat jumps back by 1 s and +100% HR (bad) -> 2 bad of 29
    peaks = np.cumsum([0] + [300] * 10 + [600] + [300] * 18)
    assert rr_sqi(peaks, FS, 9000) == pytest.approx(27 / 30)


def test_rr_sqi_flips_isolated_good_beat_between_bad_ones():
    rr = [300] * 10 + [600, 300, 600] + [300] * 16  # bad, good-jump, bad ... pattern 1 1 1 1 around the pauses
    peaks = np.cumsum([0] + rr)
    # beats 10 (30 bpm), 11 (jump back), 12 (30 bpm), 13 (jump back) are bad on their own; nothing else is
    assert rr_sqi(peaks, FS, int(peaks[-1]) + 1) == pytest.approx((len(rr) - 4) / (len(rr) + 1))
    # RR 0.52 s (115 bpm, good) with two 0.48-s beats (125 bpm, bad) around one good 0.52-s beat; HR changes
    # stay under 30% and RR changes under 0.5 s, so only the range rule fires: pattern 1 0 1 -> 1 1 1.
    rr = [156] * 10 + [144, 156, 144] + [156] * 16
    assert rr_sqi(np.cumsum([0] + rr), FS, 9000) == pytest.approx((29 - 3) / 30)  # not (29 - 2) / 30


@pytest.mark.parametrize("method", ["sleepecg", "neurokit"])
def test_ecg_quality_clean_60_bpm_near_one_and_150_bpm_zero(method):
    assert ecg_quality(beat_train(1.0), FS, method=method) == pytest.approx(29 / 30, abs=0.04)
    assert ecg_quality(beat_train(0.4), FS, method=method) == 0.0
    assert ecg_quality(beat_train(1.0)[: 15 * FS], FS, method=method) == 0.0  # 15 beats < 20 QRS
    assert ecg_quality(np.zeros(9000), FS, method=method) == 0.0  # flat


def test_batched_sleepecg_equals_detect_heartbeats_on_real_ecg():
    sleepecg = pytest.importorskip("sleepecg")
    ecg = v100s_windows()[:, 1]
    ecg[1, :40] = ecg[1, 40]  # a flat start: the library skips it, so that row takes the public function
    for rate in (300, 250):
        ours = _sleepecg_rows(ecg, rate)
        for row, peaks in zip(ecg, ours):
            np.testing.assert_array_equal(peaks, sleepecg.detect_heartbeats(row, rate))
    assert min(len(p) for p in ours) > 20  # real beats were found, so the equality means something


@pytest.mark.skipif(not (SHARED / "wfdb_samples" / "100.atr").exists(), reason="shared MIT-BIH record 100 absent")
def test_default_detector_finds_annotated_beats_of_mitbih_100():
    wfdb = pytest.importorskip("wfdb")
    base = str(SHARED / "wfdb_samples" / "100")
    ecg = resample_poly(wfdb.rdrecord(base, sampto=360 * 120).p_signal[:, 0], 5, 6)  # MLII, 2 min at 300 Hz
    ann = wfdb.rdann(base, "atr", sampto=360 * 120)
    beats = ann.sample[np.isin(ann.symbol, list("NLRBAaJSVFejnE/fQ"))] * 300 / 360
    windows = ecg[: 4 * 9000].reshape(4, 9000)
    hits = found = annotated = 0
    for i, peaks in enumerate(_sleepecg_rows(windows, FS)):
        ref = beats[(beats >= i * 9000 + 45) & (beats < (i + 1) * 9000 - 45)] - i * 9000  # edge beats excluded
        peaks = peaks[(peaks >= 45) & (peaks < 9000 - 45)]
        near = np.abs(peaks[:, None] - ref[None, :]) <= 45  # within 150 ms
        hits, found, annotated = hits + near.any(axis=0).sum(), found + len(peaks), annotated + len(ref)
    assert annotated > 130 and hits / annotated >= 0.99 and near.any(axis=1).all()


def test_batched_clean_equals_neurokit_ecg_clean():
    nk = pytest.importorskip("neurokit2")
    rng = np.random.default_rng(0)
    x = beat_train(0.8) + 0.1 * rng.standard_normal((3, T.size)) + np.linspace(0, 2, T.size)
    for rate in (300, 250):
        ours = _ecg_clean_batch(x, rate, "neurokit")
        theirs = np.stack([nk.ecg_clean(row, sampling_rate=rate, method="neurokit") for row in x])
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


def test_unknown_method_lists_options():
    with pytest.raises(ValueError, match="has to be one of"):
        ecg_quality(beat_train(1.0), FS, method="biosppy")
    with pytest.raises(ValueError, match="has to be one of"):
        ppg_quality(pulse_wave(), FS, method="elgendi")


# ----------------------------------------------------------------------------- PPG SQI
def test_flat_ppg_scores_zero_and_clean_pulse_beats_noise():
    assert ppg_quality(np.full(9000, 2.0), FS) == 0.0
    clean = ppg_quality(pulse_wave(), FS)
    noise = ppg_quality(2.0 + np.random.default_rng(0).standard_normal(9000), FS)
    assert clean > 0.5 and noise < 0.2 and clean > noise


def test_ppg_perfusion_index_uses_raw_dc():
    # Same shape, DC 2 vs DC 200: the perfusion component is clip(10 AC/DC) = 1 vs 10 AC/200, every other
    # component is shift-invariant, so the rescaled score drops by 0.2 * (1 - 10 AC/200) / 0.3.
    ac = np.ptp(pulse_wave())
    high, low = ppg_quality(pulse_wave(dc=2.0), FS), ppg_quality(pulse_wave(dc=200.0), FS)
    assert 10 * ac / 2 > 1 and low > 0  # neither end clipped, so the difference is exact
    # (1e-4: a 100x larger DC moves a few samples across histogram-bin edges in float64)
    assert high - low == pytest.approx(0.2 * (1 - 10 * ac / 200) / 0.3, abs=1e-4)


def reference_ppg_sqi(row: np.ndarray) -> float:
    """The reference code's scalar formulas (scipy detrend/welch/histogram/stats), with the raw-DC perfusion
    index: what the blocked, vectorised `_ppg_quality_batch` must reproduce."""
    from scipy import signal, stats

    z = signal.detrend(row)
    z = (z - z.mean()) / z.std()
    f, p = signal.welch(z, fs=FS, nperseg=256)
    band, noise = p[(f > 0.5) & (f < 5)].sum(), p[(f > 5) & (f < 25)].sum()
    hist = np.histogram(z, bins=20)[0] / z.size
    parts = [
        1 / (1 + np.exp(-0.5 * (10 * np.log10(band / (noise + 1e-10)) - 5))),
        1 - stats.entropy(hist) / np.log(20),
        np.clip(10 * np.ptp(row) / row.mean(), 0, 1) if row.mean() > 0 else 0.0,
        1 / (1 + np.exp(-5 * (abs(stats.skew(z)) - 1))),
        np.clip(2 * band / (p[(f > 0.1) & (f < 50)].sum() + 1e-10), 0, 1),
    ]
    if len(signal.find_peaks(z, distance=FS // 2, prominence=0.5)[0]) < 2:
        return 0.0
    return float(np.clip((0.2 * sum(parts) - 0.5) / 0.3, 0, 1))


def test_ppg_batch_matches_scalar_reference_formulas():
    rng = np.random.default_rng(1)
    real = v100s_windows()[:8, 0]  # real PLETH
    rows = np.concatenate([
        real,
        np.stack([pulse_wave(1.1) + 0.05 * rng.standard_normal(T.size), pulse_wave(1.4, dc=5.0),
                  2.0 + rng.standard_normal(T.size),  # noise: scores 0 before the peak search
                  real[0] - real[0].max()]),  # negative mean: perfusion component 0
    ])
    ours, no_dc = _ppg_quality_batch(rows, FS)
    assert no_dc == 1
    reference = [reference_ppg_sqi(row) for row in rows]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-9)
    assert (ours[:8] > 0).sum() >= 4 and ours[-2] == 0  # the comparison covers non-trivial scores
    # blocks: 40 rows span three blocks of 16, each row scored as alone
    many = np.concatenate([rows, rows, rows, rows[:4]])
    np.testing.assert_allclose(_ppg_quality_batch(many, FS)[0], np.concatenate([ours] * 3 + [ours[:4]]),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", [9000, 3000, 257, 255, 100])
def test_welch_bands_equal_scipy_welch(length):
    from scipy.signal import welch

    rng = np.random.default_rng(length)
    z = rng.standard_normal((3, length)) + np.sin(np.arange(length) / 20)
    f, p = welch(z, fs=FS, nperseg=min(length, 256), axis=-1)
    expected = [p[:, (f > lo) & (f < hi)].sum(axis=-1) for lo, hi in ((0.5, 5), (5, 25), (0.1, 50))]
    for ours, theirs in zip(_welch_bands(z, FS), expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# ----------------------------------------------------------------------------- classes
@pytest.mark.parametrize(
    "score, name",
    [(1.0, "Excellent"), (0.9, "Excellent"), (0.8999, "Good"), (0.7, "Good"), (0.6999, "Acceptable"),
     (0.5, "Acceptable"), (0.4999, "Poor"), (0.3, "Poor"), (0.2999, "Bad"), (0.0, "Bad")],
)
def test_class_boundaries_are_exact(score, name):
    assert quality_class(score) == name
    assert QUALITY_CLASSES[quality_class_index(score)] == name


def test_class_index_grows_with_quality_and_nan_is_unscored():
    assert list(quality_class_index(np.array([0.1, 0.4, 0.6, 0.8, 0.95, np.nan]))) == [0, 1, 2, 3, 4, -1]
    with pytest.raises(ValueError, match="NaN"):
        quality_class(float("nan"))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "signal, match",
    [(np.array([]), "empty"), (np.full(9000, np.nan), "no finite"), (np.zeros((2, 9000)), "1-D")],
)
def test_bad_single_signals_raise(signal, match):
    with pytest.raises(ValueError, match=match):
        ecg_quality(signal, FS)
    with pytest.raises(ValueError, match=match):
        ppg_quality(signal, FS)


def test_bad_batches_raise():
    with pytest.raises(ValueError, match=r"\(n, 2, time\)"):
        score_windows(np.zeros((9000, 2)))
    with pytest.raises(ValueError, match=r"\(n, 2, time\)"):
        score_windows(np.zeros((1, 9000, 2)))
    with pytest.raises(ValueError, match="empty"):
        score_windows(np.zeros((0, 2, 9000)))
    with pytest.raises(ValueError, match="no finite"):
        score_windows(np.full((2, 2, 9000), np.nan))
    with pytest.raises(ValueError, match="channel_mask"):
        score_windows(np.zeros((2, 2, 9000)), channel_mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="sampling_rate"):
        score_windows(np.zeros((1, 2, 9000)), sampling_rate=0)


# ----------------------------------------------------------------------------- batches
def test_score_windows_combines_and_notes_missing_channels():
    good = np.stack([pulse_wave(), beat_train(1.0)])
    windows = np.stack([good, good, good, good])
    windows[2, 1] = np.nan  # ECG all-NaN -> missing
    mask = np.array([[True, True], [False, True], [True, True], [False, False]])
    scores = score_windows(windows, FS, channel_mask=mask, num_workers=1)
    ecg, ppg = ecg_quality(good[1], FS), ppg_quality(good[0], FS)
    np.testing.assert_allclose(scores.ecg, [ecg, ecg, np.nan, np.nan])
    np.testing.assert_allclose(scores.ppg, [ppg, np.nan, ppg, np.nan])
    np.testing.assert_allclose(scores.combined, [(ecg + ppg) / 2, ecg, ppg, np.nan])
    assert scores.notes == ["", "PPG missing: scored from ECG alone", "ECG missing: scored from PPG alone",
                            "PPG and ECG missing: not scored"]
    assert scores.class_index[3] == -1 and scores.classes[3] == "Unscored"
    assert scores.classes[1] == quality_class(ecg)


def v100s_windows() -> np.ndarray:
    from qualityfm_hf.recordings.io import find_channel, read_recording

    recording = read_recording(FIXTURES / "v100s")
    ppg = resample_poly(recording.signals[find_channel(recording, "PPG")], 6, 5)  # 250 -> 300 Hz
    ecg = resample_poly(recording.signals[find_channel(recording, "ECG_II")], 6, 5)
    n = len(ppg) // 9000
    return np.stack([ppg[: n * 9000].reshape(n, 9000), ecg[: n * 9000].reshape(n, 9000)], axis=1)


def test_v100s_scores_are_sane_and_workers_agree():
    windows = v100s_windows()[:6]
    serial = score_windows(windows, FS, num_workers=1)
    parallel = score_windows(windows, FS, num_workers=2)
    for field in ("ecg", "ppg", "combined"):  # chunking changes BLAS summation order: ~1e-16 differences
        np.testing.assert_allclose(getattr(serial, field), getattr(parallel, field), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(serial.class_index, parallel.class_index)
    # v100s (false VT alarm at 300 s) has a regular lead II in its first minutes: rrSQI near 1
    assert np.all(serial.ecg > 0.9)
    assert np.all((serial.ppg >= 0) & (serial.ppg <= 1))
    np.testing.assert_allclose(serial.combined, (serial.ecg + serial.ppg) / 2)
    assert serial.notes == [""] * 6


def test_workers_split_large_batches_into_ordered_chunks():
    windows = v100s_windows()
    tiled = windows[np.arange(130) % len(windows)]  # 130 windows -> 4 chunks over 2 workers
    tiled[5, 1] = np.nan  # one missing ECG inside a chunk
    serial = score_windows(tiled, FS, num_workers=1)
    parallel = score_windows(tiled, FS, num_workers=2)
    for field in ("ecg", "ppg", "combined"):
        np.testing.assert_allclose(getattr(parallel, field), getattr(serial, field), rtol=0, atol=1e-12)
    assert np.isnan(parallel.ecg[5]) and parallel.notes[5] == "ECG missing: scored from PPG alone"
    np.testing.assert_allclose(parallel.ppg[: len(windows)], parallel.ppg[len(windows): 2 * len(windows)])


def test_float32_windows_score_as_their_float64_values():
    windows = v100s_windows()[:3].astype(np.float32)
    for method in ("sleepecg", "neurokit"):
        single = score_windows(windows, FS, num_workers=1, ecg_method=method)
        double = score_windows(windows.astype(np.float64), FS, num_workers=1, ecg_method=method)
        for field in ("ecg", "ppg", "combined"):
            np.testing.assert_allclose(getattr(single, field), getattr(double, field), rtol=0, atol=1e-12)


def test_a_ppg_centred_on_zero_scores_the_same_whatever_the_sign_of_its_mean():
    # Issue 20 item 5.3: many PhysioNet 2015 PLETH channels are exported centred on 0 (AC-coupled), with window means
    # of +-0.01 for a swing of 4. The perfusion component tested the mean's sign alone, so such windows scored 0 or
    # 1 on it at random, and the negative ones warned "Pass raw PPG windows" about a raw record.
    import warnings

    from qualityfm_hf.quality.ppg import _ppg_quality_batch

    real = v100s_windows()[:8, 0]  # real PLETH, offset by the monitor (mean 2.5, swing 5)
    centred = real - real.mean(axis=1, keepdims=True)
    swing = np.ptp(real, axis=1, keepdims=True)
    above, below = centred + 0.005 * swing, centred - 0.005 * swing
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for a centred PPG
        scores_above, no_dc_above = _ppg_quality_batch(above, FS)
        scores_below, no_dc_below = _ppg_quality_batch(below, FS)
    assert no_dc_above == no_dc_below == 0
    np.testing.assert_allclose(scores_below, scores_above, atol=1e-9)
    # The other components do not see the shift, so the centred rows score as the offset ones do.
    np.testing.assert_allclose(scores_above, _ppg_quality_batch(real, FS)[0], atol=1e-9)
    assert (scores_above > 0).sum() >= 4
    # A mean clearly below 0 (offset or inverted) is still undefined: scored 0 on that component and counted.
    assert _ppg_quality_batch(real - real.max(axis=1, keepdims=True), FS)[1] == len(real)
