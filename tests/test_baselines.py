"""Handcrafted-feature baselines (`qualityfm_hf.finetuning.baselines`) on real records: feature shapes and the
finite-or-NaN contract, absent and unusable channels, AF vs normal RR irregularity, physiological pulse
arrival time, the sklearn baselines and their errors. Records come from the test fixtures and the package's
bundled VT records, so the file runs without the shared data folder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import FIXTURES, REPO_ROOT, copy_records

from qualityfm_hf.finetuning import baselines
from qualityfm_hf.finetuning.baselines import (
    ABP_FEATURE_NAMES,
    AF_FEATURE_NAMES,
    BASELINES,
    FEATURE_NAMES,
    TASK_FEATURES,
    VT_FEATURE_NAMES,
    abp_features,
    af_features,
    feature_matrix,
    fit_predict,
    make_baseline,
    vt_features,
)
from qualityfm_hf.finetuning.task_data import build_task_table

BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"
AF_2017 = FIXTURES / "physionet2017_af"  # REFERENCE.csv: A00009/A00015/A00067 AF, A00002/A00006/A00011 normal
PPG_DERIVED = [i for i, name in enumerate(VT_FEATURE_NAMES) if name.startswith(("ppg_", "hr_pr_"))]
ECG_DERIVED = [i for i, name in enumerate(VT_FEATURE_NAMES) if name.startswith("ecg_")]


def build(task, data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped-record warnings of the builders are not under test here
        return build_task_table(task, data_dir).with_format("numpy")


def by_record(dataset) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in dataset:
        rows.setdefault(str(row["record"]), []).append(row)
    return rows


def features(function, row, **changes):
    values = {key: row[key] for key in ("signals", "channel_mask", "sampling_rate")} | changes
    return function(values["signals"], values["channel_mask"], values["sampling_rate"])


@pytest.fixture(scope="module")
def vt_rows(tmp_path_factory):
    # v176s: II + PLETH + ABP; v290s: leads I and V, no PLETH (PPG absent); v221l/v254s: bundled true alarms.
    data = copy_records(["v100s", "v176s", "v290s"], FIXTURES, tmp_path_factory.mktemp("vt"))
    copy_records(["v221l", "v254s"], BUNDLED_VT, data)
    return {name: rows[0] for name, rows in by_record(build("vt-false-alarm", data)).items()}


@pytest.fixture(scope="module")
def af_rows():
    return by_record(build("af", AF_2017))


@pytest.fixture(scope="module")
def abp_rows(tmp_path_factory):
    return build("abp", copy_records(["v176s"], FIXTURES, tmp_path_factory.mktemp("abp")))


def test_registries_and_feature_names_line_up():
    assert set(TASK_FEATURES) == set(FEATURE_NAMES) == set(BASELINES) == {"vt-false-alarm", "af", "abp"}
    assert FEATURE_NAMES["vt-false-alarm"] is VT_FEATURE_NAMES and len(AF_FEATURE_NAMES) == 8
    for names in (VT_FEATURE_NAMES, AF_FEATURE_NAMES, ABP_FEATURE_NAMES):
        assert len(set(names)) == len(names) and all(isinstance(name, str) for name in names)
    assert PPG_DERIVED and ECG_DERIVED and len(PPG_DERIVED) + len(ECG_DERIVED) == len(VT_FEATURE_NAMES)


def test_vt_features_on_real_records_are_finite_or_nan(vt_rows):
    assert set(vt_rows) == {"v100s", "v176s", "v290s", "v221l", "v254s"}
    for name, row in vt_rows.items():
        values = features(vt_features, row)
        assert values.shape == (len(VT_FEATURE_NAMES),) and values.dtype == np.float64
        assert not np.isinf(values).any(), name
        assert np.isfinite(values[ECG_DERIVED]).all(), (name, dict(zip(VT_FEATURE_NAMES, values)))
        named = dict(zip(VT_FEATURE_NAMES, values))
        band_sum = sum(v for k, v in named.items() if k.startswith("ecg_rel_power_"))
        assert 0.9 < band_sum <= 1.0 + 1e-9  # the bands tile 0.5-40 Hz
        assert 30 < named["ecg_hr_bpm"] < 250 and 0 <= named["ecg_abnormal_beat_fraction"] <= 1
    # Records with PLETH: every PPG feature is defined and the pulse rate is physiological.
    for name in ("v100s", "v176s", "v221l", "v254s"):
        named = dict(zip(VT_FEATURE_NAMES, features(vt_features, vt_rows[name])))
        assert np.isfinite([named[VT_FEATURE_NAMES[i]] for i in PPG_DERIVED]).all(), name
        assert 30 <= named["ppg_pulse_rate_bpm"] <= 210 and 0 < named["ppg_pulsatility"] <= 1


def test_absent_ppg_gives_nan_ppg_features_and_finite_ecg_features(vt_rows):
    row = vt_rows["v290s"]
    assert list(row["channel_mask"]) == [0, 1] and np.isnan(row["signals"][0]).all()
    values = features(vt_features, row)
    assert np.isnan(values[PPG_DERIVED]).all()
    assert np.isfinite(values[ECG_DERIVED]).all()
    # The mask decides, not the samples: a masked-out PPG full of numbers is still absent.
    masked = features(vt_features, vt_rows["v176s"], channel_mask=np.array([0, 1]))
    assert np.isnan(masked[PPG_DERIVED]).all() and np.isfinite(masked[ECG_DERIVED]).all()


@pytest.mark.parametrize("ecg_kind", ["all_nan", "flat", "mostly_nan", "absent"])
def test_unusable_ecg_gives_nan_features_without_raising_or_warning(vt_rows, ecg_kind):
    row = vt_rows["v176s"]
    signals = np.array(row["signals"], dtype=np.float64)
    mask = np.array([1, 1])
    if ecg_kind == "all_nan":
        signals[1] = np.nan
    elif ecg_kind == "flat":
        signals[1] = 0.25
    elif ecg_kind == "mostly_nan":
        signals[1, : int(0.9 * signals.shape[1])] = np.nan
    else:
        signals[1], mask = np.nan, np.array([1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (mean of empty slice, divide by zero) may leak out
        vt = features(vt_features, row, signals=signals, channel_mask=mask)
        af = features(af_features, row, signals=signals, channel_mask=mask)
        abp = features(abp_features, row, signals=signals, channel_mask=mask)
    named = dict(zip(VT_FEATURE_NAMES, vt))
    unusable = named.pop("ecg_unusable_fraction")
    assert np.isnan(unusable) if ecg_kind == "absent" else unusable >= 0.9
    assert np.isnan([v for k, v in named.items() if k.startswith("ecg_") or k.startswith("hr_pr_")]).all()
    assert np.isfinite(vt[PPG_DERIVED[:-2]]).all()  # the PPG alone is still described
    assert np.isnan(af).all()
    abp_named = dict(zip(ABP_FEATURE_NAMES, abp))
    assert np.isnan([abp_named[k] for k in ("pat_foot_s", "pat_peak_s", "hr_bpm", "rise_time_over_rr")]).all()
    assert np.isfinite(abp_named["ppg_amplitude"])
    for values in (vt, af, abp):
        assert not np.isinf(values).any()


def test_degenerate_windows_never_raise():
    rng = np.random.default_rng(0)
    for rate in (125.0, 300.0):
        for length in (0, 1, 50, int(3 * rate)):
            for signal in (np.full(length, np.nan), np.zeros(length), rng.normal(size=length),
                           np.where(rng.random(length) < 0.2, np.inf, 1.0)):
                signals = np.stack([signal, signal])
                for mask in ([1, 1], [0, 1], [0, 0]):
                    for task, function in TASK_FEATURES.items():
                        values = function(signals, np.array(mask), rate)
                        assert values.shape == (len(FEATURE_NAMES[task]),) and not np.isinf(values).any()


def test_af_record_is_more_irregular_than_normal_records(af_rows):
    def record_features(name):
        windows = [features(af_features, row) for row in af_rows[name]]
        return dict(zip(AF_FEATURE_NAMES, np.nanmean(windows, axis=0)))

    af = record_features("A00009")
    for name in ("A00006", "A00011"):
        normal = record_features(name)
        assert af["median_abs_drr_rel"] > 3 * normal["median_abs_drr_rel"], (af, normal)
        assert af["pnn50"] > normal["pnn50"] + 0.3 and af["rr_cosen"] > normal["rr_cosen"] + 1.0
        assert 40 < normal["hr_mean_bpm"] < 100 and normal["qrs_template_corr"] > 0.9
    assert 60 < af["hr_mean_bpm"] < 150 and af["qrs_template_corr"] > 0.9


def test_inverted_ecg_gives_the_same_rhythm(af_rows):
    # A00006 has downward QRS complexes (handheld lead); the negated signal must give the same beats.
    row = af_rows["A00006"][0]
    upright = features(af_features, row)
    inverted = features(af_features, row, signals=-np.asarray(row["signals"]))
    np.testing.assert_allclose(inverted, upright, rtol=0.05, atol=0.02)


def test_r_peaks_keep_their_timing_on_an_inverted_lead(vt_rows):
    # sleepecg on the negated lead times beats 30-60 ms off (another QRS lobe), which would shift every PAT.
    for name in ("v100s", "v176s", "v221l"):
        ecg = np.asarray(vt_rows[name]["signals"][1], dtype=np.float64)
        upright, inverted = baselines.r_peaks(ecg, 250.0), baselines.r_peaks(-ecg, 250.0)
        assert upright.size >= 10 and inverted.size == upright.size, name
        assert np.abs(inverted - upright).max() <= 2, name  # samples at 250 Hz


def test_spurious_beats_after_a_start_transient_are_dropped(shared_data, tmp_path):
    # A00226 (normal sinus rhythm) opens with a large transient; sleepecg's searchback then accepts ~14 T
    # waves and baseline wiggles as beats, which made the RR series look like AF (median |dRR| / RR 0.26).
    data = copy_records(["A00226"], shared_data / "physionet2017_af", tmp_path)
    (data / "REFERENCE.csv").write_text("A00226,N\n")
    dataset = build("af", data)
    named = dict(zip(AF_FEATURE_NAMES, features(af_features, dataset[0])))
    assert named["median_abs_drr_rel"] < 0.05 and named["rr_outlier_fraction"] < 0.1, named
    assert 70 < named["hr_mean_bpm"] < 90


def test_abp_pulse_arrival_time_is_physiological(abp_rows):
    assert len(abp_rows) >= 3 and set(abp_rows["record"]) == {"v176s"}
    matrix = feature_matrix("abp", abp_rows)
    assert matrix.shape == (len(abp_rows), len(ABP_FEATURE_NAMES))
    named = {name: matrix[:, i] for i, name in enumerate(ABP_FEATURE_NAMES)}
    assert ((named["pat_foot_s"] > 0.1) & (named["pat_foot_s"] < 0.5)).all(), named["pat_foot_s"]
    assert (named["pat_peak_s"] > named["pat_foot_s"]).all() and (named["pat_foot_iqr_s"] < 0.1).all()
    assert ((named["hr_bpm"] > 40) & (named["hr_bpm"] < 150)).all()
    assert ((named["ppg_rise_time_s"] > 0.03) & (named["ppg_rise_time_s"] < 0.5)).all()
    assert (named["ppg_amplitude"] > 0).all() and np.isfinite(matrix).all()


def test_feature_matrix_over_a_dataset_with_and_without_progress(af_rows, capsys):
    dataset = build("af", AF_2017)
    capsys.readouterr()  # reading the records shows its own bar
    matrix = feature_matrix("af", dataset)
    assert matrix.shape == (len(dataset), 8) and matrix.dtype == np.float64 and not np.isinf(matrix).any()
    assert capsys.readouterr().err == ""  # no bar unless asked
    shown = feature_matrix("af", dataset, progress=True)
    np.testing.assert_array_equal(shown, matrix)
    assert feature_matrix("abp", []).shape == (0, len(ABP_FEATURE_NAMES))
    with pytest.raises(ValueError, match="has to be one of"):
        feature_matrix("sleep-staging", dataset)


def test_make_baseline_builds_each_kind_and_rejects_unknown_ones():
    for task, kinds in BASELINES.items():
        for kind in kinds:
            assert hasattr(make_baseline(task, kind), "fit")
    with pytest.raises(ValueError, match=r"'svm'.*\['logistic', 'gradient_boosting'\]"):
        make_baseline("vt-false-alarm", "svm")
    with pytest.raises(ValueError, match=r"\['logistic'\]"):
        make_baseline("af", "gradient_boosting")
    with pytest.raises(ValueError, match="has to be one of"):
        make_baseline("sleep", "logistic")


def test_fit_predict_shapes_ranges_and_all_nan_columns():
    rng = np.random.default_rng(0)
    n = 120
    y = np.arange(n) % 2
    signal = y + rng.normal(scale=0.5, size=n)
    # Column 0 is all NaN in training: it must not shift column 1 (the informative one) onto the noise column.
    X = np.column_stack([np.full(n, np.nan), signal, rng.normal(size=n)])
    X[rng.random(n) < 0.1, 2] = np.nan
    train, test = np.arange(n) < 80, np.arange(n) >= 80
    X_test = X[test].copy()
    X_test[:, 0] = 1e3  # values where training had none are imputed away, not extrapolated
    for kind in BASELINES["vt-false-alarm"]:
        p = fit_predict("vt-false-alarm", kind, X[train], y[train], X_test, seed=0)
        assert p.shape == (test.sum(),) and ((p >= 0) & (p <= 1)).all()
        assert p[y[test] == 1].mean() > p[y[test] == 0].mean() + 0.2, kind
    with pytest.raises(ValueError, match="one class"):
        fit_predict("af", "logistic", X[train], np.zeros(train.sum()), X_test)

    bp = np.column_stack([120 + 10 * signal, 70 + 5 * signal])
    mean = fit_predict("abp", "training_mean", X[train], bp[train], X_test)
    assert mean.shape == (test.sum(), 2)
    np.testing.assert_allclose(mean, np.broadcast_to(bp[train].mean(axis=0), mean.shape))
    ridge = fit_predict("abp", "ridge", X[train], bp[train], X_test)
    assert ridge.shape == (test.sum(), 2) and np.isfinite(ridge).all()
    assert np.abs(ridge - bp[test]).mean() < np.abs(mean - bp[test]).mean()
    assert (ridge[:, 0] > ridge[:, 1]).all()


def test_public_api_is_exported():
    for name in ("VT_FEATURE_NAMES", "AF_FEATURE_NAMES", "ABP_FEATURE_NAMES", "TASK_FEATURES",
                 "FEATURE_NAMES", "BASELINES", "vt_features", "af_features", "abp_features", "feature_matrix",
                 "make_baseline", "fit_predict"):
        assert name in baselines.__all__ and hasattr(baselines, name)
