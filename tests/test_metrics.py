"""Metrics on hand-computed cases; the `evaluate` modules load offline from the installed package."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from qualityfm_hf.tasks.metrics import (
    MetricWarning,
    aami_criterion,
    accuracy,
    auprc,
    auroc,
    bhs_grade,
    bootstrap_ci,
    choose_threshold,
    classification_metrics,
    confusion_counts,
    mase,
    mean_absolute_error,
    mean_error,
    physionet_score,
    regression_metrics,
    sensitivity,
    training_mean_mae,
)

# 5 positives, 5 negatives. At threshold 0.5: TP=3 (.9 .8 .7), FN=2 (.3 .2), FP=1 (.6), TN=4.
Y_TRUE = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
Y_SCORE = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.6, 0.1, 0.1, 0.2, 0.3])


def test_confusion_counts_and_ratios_match_hand_counts():
    assert confusion_counts(Y_TRUE, Y_SCORE, 0.5) == {"tp": 3, "tn": 4, "fp": 1, "fn": 2}
    m = classification_metrics(Y_TRUE, Y_SCORE, 0.5)
    assert m["physionet_score"] == pytest.approx(7 / (7 + 1 + 5 * 2))
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["sensitivity"] == pytest.approx(3 / 5)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["ppv"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(6 / 9)
    assert m["n"] == 10


def test_threshold_is_inclusive():
    # 0.6 is the only negative >= 0.6; >= makes it a false positive, > would not.
    assert confusion_counts(Y_TRUE, Y_SCORE, 0.6)["fp"] == 1


def test_auroc_matches_sklearn_on_tied_scores():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) * 0.5 + 0.3 * y, 1)  # rounding makes many ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auroc_counts_ties_as_half_and_auprc_is_step_average_precision():
    # Pairs (pos > neg) + 0.5 * ties: 5 + 5 + 5 + 3.5 + 2.5 = 21 of 25.
    assert auroc(Y_TRUE, Y_SCORE) == pytest.approx(21 / 25)
    # Recall steps of 0.2 at precisions 1, 1, 1, 4/6, 5/8.
    assert auprc(Y_TRUE, Y_SCORE) == pytest.approx(0.6 + 0.2 * 4 / 6 + 0.2 * 5 / 8)


def test_one_class_gives_nan_with_warning_not_an_error():
    y = np.zeros(6, dtype=int)
    s = np.linspace(0, 1, 6)
    with pytest.warns(MetricWarning, match="AUROC is undefined"):
        assert np.isnan(auroc(y, s))
    with pytest.warns(MetricWarning, match="sensitivity is undefined"):
        assert np.isnan(sensitivity(y, s))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # accuracy and the score stay defined: no warning at all
        assert accuracy(y, s, 0.5) == pytest.approx(3 / 6)
        assert physionet_score(y, s, 0.5) == pytest.approx(3 / 6)


@pytest.mark.parametrize(
    "y_true, y_score, match",
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "binary labels"),
        ([0, 1], [-2.0, 3.0], "sigmoid"),
        ([0, 1], [0.5], "same number"),
    ],
)
def test_bad_classification_inputs_raise_with_the_fix(y_true, y_score, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_score)


@pytest.mark.parametrize("criterion, expected", [("physionet_score", 0.2), ("youden", 0.7), ("f1", 0.2)])
def test_choose_threshold_maximises_the_criterion(criterion, expected):
    # physionet: t=.2 -> TP5 TN2 FP3 FN0 = 0.7, the best; youden: t=.7 -> 0.6 + 1.0 - 1; f1: t=.2 -> 10/13.
    assert choose_threshold(Y_TRUE, Y_SCORE, criterion) == expected


def test_choose_threshold_refuses_one_class_and_unknown_criteria():
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="'youden'"):
        choose_threshold(Y_TRUE, Y_SCORE, "accuracy")


def test_bootstrap_is_seeded_and_brackets_the_point():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)  # a few one-class resamples; counted in the next test
        first = bootstrap_ci(auroc, Y_TRUE, Y_SCORE, n_resamples=300, seed=3)
        assert first == bootstrap_ci(auroc, Y_TRUE, Y_SCORE, n_resamples=300, seed=3)
    point, low, high = first
    assert point == pytest.approx(0.84)
    assert 0.0 <= low < point < high <= 1.0
    # A constant error gives a zero-width interval.
    assert bootstrap_ci(mean_absolute_error, np.full(20, 120.0), np.full(20, 117.0), n_resamples=50) == (
        3.0,
        3.0,
        3.0,
    )


def test_bootstrap_skips_undefined_resamples_and_counts_them():
    y = np.zeros(20, dtype=int)
    y[0] = 1  # one positive: about (19/20)^20 = 36% of resamples miss it
    s = np.linspace(0.05, 0.95, 20)
    with pytest.warns(MetricWarning, match=r"(\d+) of 200 bootstrap resamples") as record:
        _, low, high = bootstrap_ci(auroc, y, s, n_resamples=200)
    n_skipped = int(str(record[0].message).split()[0])
    assert 30 < n_skipped < 120
    assert np.isfinite(low) and np.isfinite(high)
    with pytest.warns(MetricWarning):
        assert np.isnan(
            bootstrap_ci(auroc, np.zeros(10, dtype=int), np.linspace(0, 1, 10), n_resamples=20)[1]
        )


def test_mae_me_sd_use_device_minus_reference():
    y_true, y_pred = [120.0, 130.0, 110.0], [118.0, 134.0, 110.0]  # errors (pred - true) -2, +4, 0
    assert mean_absolute_error(y_true, y_pred) == pytest.approx(2.0)
    me, sd = mean_error(y_true, y_pred)
    assert me == pytest.approx(2 / 3)  # the model over-estimates on average
    assert sd == pytest.approx(np.std([2, -4, 0], ddof=1))
    assert mean_error(y_true, y_pred, ddof=0)[1] == pytest.approx(np.std([2, -4, 0]))


def test_mase_scales_by_the_training_mean_predictor():
    y_train = [100.0, 110.0, 120.0]  # mean 110, naive MAE 20/3
    assert training_mean_mae(y_train) == pytest.approx(20 / 3)
    assert mase([124.0, 96.0], [120.0, 100.0], y_train=y_train) == pytest.approx(4 / (20 / 3))
    assert mase([124.0, 96.0], [120.0, 100.0], naive_mae=8.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="exactly one"):
        mase([1.0], [1.0])
    with pytest.warns(MetricWarning, match="MASE"):
        assert np.isnan(mase([1.0], [2.0], y_train=[5.0, 5.0]))


def _errors_to_bhs(counts):
    """Predictions with `counts` errors of 3, 7, 12 and 20 mmHg, in that order."""
    errors = np.repeat([3.0, 7.0, 12.0, 20.0], counts)
    return np.full(errors.size, 100.0), 100.0 - errors


@pytest.mark.parametrize(
    "counts, grade",
    [
        ((12, 5, 2, 1), "A"),
        ((11, 6, 2, 1), "B"),
        ((8, 5, 4, 3), "C"),
        ((7, 6, 4, 3), "D"),
        ((0, 0, 0, 5), "D"),
    ],
)
def test_bhs_grade_boundaries_are_inclusive(counts, grade):
    # (12, 5, 2, 1) of 20 is exactly 60/85/95 %: the A boundary itself.
    result = bhs_grade(*_errors_to_bhs(counts))
    assert result["grade"] == grade
    n = sum(counts)
    assert result["within_5"] == pytest.approx(100 * counts[0] / n)
    assert result["within_15"] == pytest.approx(100 * sum(counts[:3]) / n)


def test_aami_needs_small_mean_and_small_sd():
    rng = np.random.default_rng(0)
    y_true = rng.normal(120, 15, 200)
    noise = rng.normal(0, 1, 200)
    assert aami_criterion(y_true, y_true - 4 - 3 * noise)["passed"]
    assert not aami_criterion(y_true, y_true - 6 - 3 * noise)["passed"]  # |ME| about 6 > 5
    assert not aami_criterion(y_true, y_true - 12 * noise)["passed"]  # SD about 12 > 8


def test_regression_metrics_prefixes_sbp_and_dbp_columns():
    y_true = np.array([[120.0, 80.0], [130.0, 85.0]])
    y_pred = np.array([[124.0, 79.0], [126.0, 90.0]])
    m = regression_metrics(y_true, y_pred, y_train=[[120.0, 80.0], [140.0, 90.0], [100.0, 70.0]])
    assert m["sbp_mae"] == pytest.approx(4.0) and m["dbp_mae"] == pytest.approx(3.0)
    assert m["sbp_mase"] == pytest.approx(4.0 / (40 / 3))  # SBP train mean 120, naive MAE 40/3
    assert m["dbp_me"] == pytest.approx(2.0)  # DBP predictions 79, 90 vs 80, 85: device minus reference
    with pytest.raises(ValueError, match=r"\[SBP, DBP\]"):
        regression_metrics(y_true, y_pred[:, 0])


def test_evaluate_modules_load_offline_and_match_the_pure_functions(tmp_path):
    """`evaluate.load` of the packaged scripts in a subprocess with the Hub switched off."""
    code = (
        "import json\n"
        "from qualityfm_hf.tasks.metrics import load_metric\n"
        "c = load_metric('qualityfm_classification').compute(\n"
        f"    predictions={Y_SCORE.tolist()}, references={Y_TRUE.tolist()}, threshold=0.5)\n"
        "r = load_metric('qualityfm_regression').compute(\n"
        "    predictions=[[124.0, 79.0], [126.0, 90.0]], references=[[120.0, 80.0], [130.0, 85.0]],\n"
        "    y_train=[[120.0, 80.0], [140.0, 90.0], [100.0, 70.0]])\n"
        "r1 = load_metric('qualityfm_regression').compute(predictions=[118.0, 134.0], references=[120.0, 130.0])\n"
        "print(json.dumps({'c': c, 'r': r, 'r1': r1}))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
    }
    env.pop("HF_ENDPOINT", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["c"] == pytest.approx(classification_metrics(Y_TRUE, Y_SCORE, 0.5))
    assert out["c"]["physionet_score"] == pytest.approx(7 / 18)
    assert out["r"]["sbp_mae"] == pytest.approx(4.0)
    assert out["r"]["sbp_mase"] == pytest.approx(0.3)
    assert out["r"]["dbp_bhs_grade"] == "A"
    assert out["r1"]["mae"] == pytest.approx(3.0) and out["r1"]["me"] == pytest.approx(1.0)


def test_grouped_bootstrap_resamples_whole_groups():
    # Each record holds its window twice: resampling records must give exactly the interval of the record-level
    # arrays (same seed, same draws), where resampling rows would give a narrower one.
    rng = np.random.default_rng(0)
    truth, score = np.tile([0, 1], 15), rng.random(30)
    doubled = (np.repeat(truth, 2), np.repeat(score, 2))
    records = np.repeat(np.arange(30), 2)
    per_record = bootstrap_ci(auroc, truth, score, n_resamples=200, seed=5)
    grouped = bootstrap_ci(auroc, *doubled, n_resamples=200, seed=5, groups=records)
    assert grouped == pytest.approx(per_record)
    rows = bootstrap_ci(auroc, *doubled, n_resamples=200, seed=5)
    assert rows[2] - rows[1] < grouped[2] - grouped[1]
    with pytest.raises(ValueError, match="one id per row"):
        bootstrap_ci(auroc, truth, score, groups=records)
