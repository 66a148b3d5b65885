"""ECG rhythm statistics (`modeling/rhythm_qualityfm.py`) and the heads that read them (`rhythm_features`): the
scipy R-peak detector against sleepecg on real records, the contract on bad windows, the feature extractor
output, the head's input check and its logistic-regression start. Records: test fixtures and the bundled VT
records."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import FIXTURES, REPO_ROOT, copy_records

from qualityfm_hf.finetuning.task_data import build_task_table, collate, extract_features
from qualityfm_hf.finetuning.train import init_rhythm_head, load_model
from qualityfm_hf.modeling.configuration_qualityfm import QualityFMConfig
from qualityfm_hf.modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor
from qualityfm_hf.modeling.heads_qualityfm import QualityFMForAFClassification
from qualityfm_hf.modeling.rhythm_qualityfm import (
    RHYTHM_FEATURE_NAMES,
    detect_r_peaks,
    rhythm_statistics,
    standardize_rhythm,
)
from qualityfm_hf.quality.ecg import r_peaks

AF_2017 = FIXTURES / "physionet2017_af"  # A00009/A00015/A00067 AF, A00002/A00006/A00011 normal
BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"


def rows_of(task, data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(build_task_table(task, data_dir).with_format("numpy"))


@pytest.fixture(scope="module")
def af_rows():
    return rows_of("af", AF_2017)


@pytest.fixture(scope="module")
def vt_rows(tmp_path_factory):
    data = copy_records(["v100s", "v176s"], FIXTURES, tmp_path_factory.mktemp("vt"))
    copy_records(["v221l", "v254s"], BUNDLED_VT, data)
    return rows_of("vt-false-alarm", data)


def matched(found: np.ndarray, reference: np.ndarray, tolerance: int) -> float:
    """Fraction of `reference` beats with a detection within `tolerance` samples."""
    if reference.size == 0:
        return 1.0
    return float(np.mean([np.abs(found - p).min() <= tolerance if found.size else False for p in reference]))


# Records whose ECG is clean: sinus (A00006, A00011, v100s, v176s), AF (A00009, A00067), other rhythm (A00013). On
# the noisy one (A00585, the "~" class) and the VT runs (v221l, v254s) the two detectors pick different artefacts
# and wide complexes (55-100 % agreement); there is no reference to say which is right.
CLEAN = {"A00006", "A00011", "v100s", "v176s", "A00009", "A00067", "A00013"}


def test_r_peaks_agree_with_sleepecg_on_clean_real_ecgs(af_rows, vt_rows):
    agreement = []
    for row in [*af_rows, *vt_rows]:
        if str(row["record"]) not in CLEAN:
            continue
        ecg, fs = np.asarray(row["signals"][1], dtype=np.float64), float(row["sampling_rate"])
        reference, found = r_peaks(ecg, fs), detect_r_peaks(ecg, fs)
        tolerance = int(0.05 * fs)
        # Both ways: the detector misses few of sleepecg's beats and adds few of its own.
        agreement.append((str(row["record"]), matched(found, reference, tolerance),
                          matched(reference, found, tolerance), reference.size))
    assert {name for name, *_ in agreement} == CLEAN
    assert all(beats >= 8 for *_, beats in agreement), agreement
    assert min(min(a, b) for _, a, b, _ in agreement) >= 0.95, agreement


def test_af_windows_are_more_irregular_than_normal_ones(af_rows):
    by_record = {}
    for row in af_rows:
        stats = rhythm_statistics(np.asarray(row["signals"][1], dtype=np.float64), float(row["sampling_rate"]))
        by_record.setdefault(str(row["record"]), []).append(stats)
    named = {name: dict(zip(RHYTHM_FEATURE_NAMES, np.nanmean(v, axis=0))) for name, v in by_record.items()}
    for af in ("A00009", "A00015", "A00067"):
        for normal in ("A00002", "A00006", "A00011"):
            assert named[af]["median_abs_drr_rel"] > 2 * named[normal]["median_abs_drr_rel"], (af, normal)
            assert named[af]["rr_cosen"] > named[normal]["rr_cosen"], (af, normal)


def test_unusable_ecg_gives_nan_statistics_and_standardises_to_the_centre():
    fs = 300.0
    for ecg in (None, np.zeros(9000), np.full(9000, np.nan), np.ones(100)):
        stats = rhythm_statistics(ecg, fs)
        assert stats.shape == (len(RHYTHM_FEATURE_NAMES),) and np.isnan(stats).all()
        scaled = standardize_rhythm(stats)
        assert scaled.dtype == np.float32 and np.array_equal(scaled, np.zeros(len(RHYTHM_FEATURE_NAMES)))
    # A huge artefact cannot blow up the head's input: values are clipped.
    assert np.abs(standardize_rhythm(np.full(len(RHYTHM_FEATURE_NAMES), 1e9))).max() == 5.0


def test_feature_extractor_adds_rhythm_features_only_when_asked(af_rows):
    row = af_rows[0]
    signal = {"ECG_II": np.asarray(row["signals"][1], dtype=np.float64)}
    plain = QualityFMFeatureExtractor()(signal, sampling_rate=float(row["sampling_rate"]))
    assert "rhythm_features" not in plain
    fe = QualityFMFeatureExtractor(rhythm_features=True)
    out = fe(signal, sampling_rate=float(row["sampling_rate"]))
    expected = standardize_rhythm(rhythm_statistics(signal["ECG_II"][: out["input_values"].shape[-1]],
                                                    float(row["sampling_rate"])))
    assert out["rhythm_features"].shape == (1, len(RHYTHM_FEATURE_NAMES))
    np.testing.assert_allclose(out["rhythm_features"][0], expected, atol=1e-6)
    np.testing.assert_array_equal(out["input_values"], plain["input_values"])  # the waveform is untouched
    # Without an ECG (PPG only) every statistic is unknown: zeros, not NaN.
    ppg_only = fe({"PPG": np.sin(np.arange(9000) / 40.0)}, sampling_rate=300.0)
    assert np.array_equal(ppg_only["rhythm_features"], np.zeros((1, len(RHYTHM_FEATURE_NAMES)), np.float32))
    with pytest.raises(ValueError, match="rhythm_features=True needs an ECG channel"):
        QualityFMFeatureExtractor(channel_names=("PPG", "ABP"), rhythm_features=True)


def test_head_with_rhythm_inputs_refuses_inputs_without_them():
    config = QualityFMConfig.from_preset("base", classifier_rhythm_features=8, num_hidden_layers=1)
    head = QualityFMForAFClassification(config).eval()
    values = torch.randn(2, 2, 3000)
    with pytest.raises(ValueError, match=r"needs rhythm_features of shape \(2, 8\); got None"):
        head(values)
    with pytest.raises(ValueError, match=r"got \(2, 7\)"):
        head(values, rhythm_features=torch.zeros(2, 7))
    rhythm = torch.randn(2, 8)
    with torch.no_grad():
        head.classifier.weight.zero_()
        head.classifier.weight[0, -8:] = 1.0
        logits = head(values, rhythm_features=rhythm).logits
    torch.testing.assert_close(logits[:, 0], rhythm.sum(-1) + head.classifier.bias)


def test_init_rhythm_head_starts_as_the_logistic_regression_on_the_statistics(af_rows):
    from sklearn.linear_model import LogisticRegression

    features, _ = extract_features(build_task_table("af", AF_2017),
                                   QualityFMFeatureExtractor(rhythm_features=True))
    config_overrides = dict(classifier_rhythm_features=8, num_hidden_layers=1)
    net = load_model("af", "base", **config_overrides).eval()
    init_rhythm_head(net, features, seed=0)
    X = np.stack([f["rhythm_features"] for f in features]).astype(np.float64)
    y = np.array([int(f["labels"]) for f in features])
    reference = LogisticRegression(class_weight="balanced", C=1.0, max_iter=2000).fit(X, y)
    with torch.no_grad():
        logits = net(**collate(features)).logits[:, 0].numpy()
    # Embedding weights start at 0, so the head's logit is the logistic regression's decision function.
    np.testing.assert_allclose(logits, reference.decision_function(X), rtol=1e-4, atol=1e-4)
    assert float(net.classifier.weight[:, :-8].abs().max()) == 0.0



def test_a_fine_tuned_rhythm_head_keeps_its_weights_when_training_continues(tmp_path):
    # train_head starts the head as the logistic regression only for a backbone or a preset; a fine-tuned head of
    # the task (its config names it) is continued as it is.
    from qualityfm_hf.finetuning.train import train_head, training_arguments

    features, _ = extract_features(build_task_table("af", AF_2017), QualityFMFeatureExtractor(rhythm_features=True))
    head = load_model("af", "base", classifier_rhythm_features=8, num_hidden_layers=1)
    with torch.no_grad():
        head.classifier.weight.fill_(0.5)
    head.config.architectures = ["QualityFMForAFClassification"]
    head.save_pretrained(tmp_path / "head")
    args = training_arguments(tmp_path / "run", max_steps=1, learning_rate=1e-12, disable_tqdm=True,
                              eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
    net, _ = train_head("af", str(tmp_path / "head"), features, [], args)
    torch.testing.assert_close(net.classifier.weight, torch.full_like(net.classifier.weight, 0.5), atol=1e-6, rtol=0)
