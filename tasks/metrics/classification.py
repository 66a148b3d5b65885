"""Binary classification metrics for the false-VT-alarm and AF tasks (pure numpy / scikit-learn).

Every function takes `y_true` (`(n,)`, values in {0, 1}, 1 = positive class: a *true* alarm or AF) and
`y_score` (`(n,)`, predicted probability of class 1 in [0, 1]). Thresholded metrics predict 1 when
`y_score >= threshold`. A metric that is undefined for the data (a zero denominator, or one class only
for AUROC) returns NaN with a `MetricWarning` instead of raising, so a bootstrap or a small fold does not
crash; `bootstrap_ci` counts and skips those resamples.

The PhysioNet/CinC 2015 score (paper notes §5.1) is `(TP + TN) / (TP + TN + FP + 5·FN)`: a missed true
alarm costs five times a false one. The paper reports it in percent (e.g. 71.29); we return a fraction.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from ._common import as_1d_float, check_same_length, safe_ratio, warn_undefined

THRESHOLD_CRITERIA = ("physionet_score", "youden", "f1")


def _check_binary(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert `(y_true, y_score)`; returns `(int64 labels, float64 probabilities)`."""
    labels = as_1d_float(y_true, "y_true")
    scores = as_1d_float(y_score, "y_score")
    check_same_length(labels, scores, "y_true", "y_score")
    if labels.size == 0:
        raise ValueError("y_true is empty; metrics need at least one sample.")
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"y_true must hold binary labels in {{0, 1}}; found {int(bad.sum())} other values "
            f"(e.g. {labels[bad][:3].tolist()}). Map the classes to 0/1 first (1 = positive)."
        )
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError(
            f"y_score must be probabilities in [0, 1]; found range [{scores.min():.4g}, {scores.max():.4g}]. "
            "Apply a sigmoid to logits first."
        )
    return labels.astype(np.int64), scores


def confusion_counts(y_true, y_score, threshold: float = 0.5) -> dict[str, int]:
    """Counts `tp`, `tn`, `fp`, `fn` when class 1 is predicted for `y_score >= threshold`."""
    labels, scores = _check_binary(y_true, y_score)
    predicted = scores >= threshold
    positive = labels == 1
    return {
        "tp": int(np.sum(predicted & positive)),
        "tn": int(np.sum(~predicted & ~positive)),
        "fp": int(np.sum(predicted & ~positive)),
        "fn": int(np.sum(~predicted & positive)),
    }


def auroc(y_true, y_score) -> float:
    """Area under the ROC curve; NaN with a warning when `y_true` holds one class only."""
    labels, scores = _check_binary(y_true, y_score)
    if np.unique(labels).size < 2:
        return warn_undefined("AUROC", f"y_true holds only class {labels[0]} ({labels.size} samples)")
    # Mann-Whitney form with average ranks (ties count 1/2): equal to sklearn's roc_auc_score, but
    # ~50x faster, which matters inside a 1000-resample bootstrap.
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    rank_sum = float(rankdata(scores)[labels == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auprc(y_true, y_score) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no interpolation).

    NaN with a warning when `y_true` has no positive; chance level is the positive fraction, not 0.5.
    """
    labels, scores = _check_binary(y_true, y_score)
    if labels.sum() == 0:
        return warn_undefined("AUPRC", f"y_true has no positive among {labels.size} samples")
    return float(average_precision_score(labels, scores))


def accuracy(y_true, y_score, threshold: float = 0.5) -> float:
    """(TP + TN) / n."""
    c = confusion_counts(y_true, y_score, threshold)
    return safe_ratio(c["tp"] + c["tn"], sum(c.values()))


def sensitivity(y_true, y_score, threshold: float = 0.5) -> float:
    """TPR = TP / (TP + FN); NaN with a warning when there is no positive."""
    c = confusion_counts(y_true, y_score, threshold)
    if c["tp"] + c["fn"] == 0:
        return warn_undefined("sensitivity", "y_true has no positive")
    return safe_ratio(c["tp"], c["tp"] + c["fn"])


def specificity(y_true, y_score, threshold: float = 0.5) -> float:
    """TNR = TN / (TN + FP); NaN with a warning when there is no negative."""
    c = confusion_counts(y_true, y_score, threshold)
    if c["tn"] + c["fp"] == 0:
        return warn_undefined("specificity", "y_true has no negative")
    return safe_ratio(c["tn"], c["tn"] + c["fp"])


def ppv(y_true, y_score, threshold: float = 0.5) -> float:
    """Precision = TP / (TP + FP); NaN with a warning when nothing is predicted positive."""
    c = confusion_counts(y_true, y_score, threshold)
    if c["tp"] + c["fp"] == 0:
        return warn_undefined("PPV", f"no sample has y_score >= {threshold}")
    return safe_ratio(c["tp"], c["tp"] + c["fp"])


def f1_score(y_true, y_score, threshold: float = 0.5) -> float:
    """F1 = 2·TP / (2·TP + FP + FN); NaN with a warning when there are no positives, true or predicted."""
    c = confusion_counts(y_true, y_score, threshold)
    denominator = 2 * c["tp"] + c["fp"] + c["fn"]
    if denominator == 0:
        return warn_undefined("F1", "no positive in y_true and none predicted")
    return safe_ratio(2 * c["tp"], denominator)


def physionet_score(y_true, y_score, threshold: float = 0.5) -> float:
    """PhysioNet/CinC 2015 score (TP + TN) / (TP + TN + FP + 5·FN), as a fraction in [0, 1]."""
    c = confusion_counts(y_true, y_score, threshold)
    return safe_ratio(c["tp"] + c["tn"], c["tp"] + c["tn"] + c["fp"] + 5 * c["fn"])


def classification_metrics(y_true, y_score, threshold: float = 0.5) -> dict[str, float]:
    """All metrics of the paper's tables at one threshold.

    Returns:
        `dict` with `auroc`, `auprc`, `accuracy`, `sensitivity`, `specificity`, `ppv`, `f1`,
        `physionet_score` (fractions; NaN where undefined), and `threshold`, `tp`, `tn`, `fp`, `fn`, `n`.
    """
    counts = confusion_counts(y_true, y_score, threshold)
    return {
        "auroc": auroc(y_true, y_score),
        "auprc": auprc(y_true, y_score),
        "accuracy": accuracy(y_true, y_score, threshold),
        "sensitivity": sensitivity(y_true, y_score, threshold),
        "specificity": specificity(y_true, y_score, threshold),
        "ppv": ppv(y_true, y_score, threshold),
        "f1": f1_score(y_true, y_score, threshold),
        "physionet_score": physionet_score(y_true, y_score, threshold),
        "threshold": float(threshold),
        **counts,
        "n": sum(counts.values()),
    }


def choose_threshold(y_true, y_score, criterion: str = "physionet_score") -> float:
    """Decision threshold that maximises `criterion` on **validation** data.

    Call this on the validation split only, then report test metrics at the returned threshold; tuning
    on the test split inflates every thresholded metric. (The authors' older eval script tuned the
    threshold on validation to maximise the score; paper notes §5.1.)

    Args:
        y_true (`np.ndarray` of shape `(n,)`): validation labels in {0, 1}; both classes must occur.
        y_score (`np.ndarray` of shape `(n,)`): validation probabilities of class 1.
        criterion (`str`): `"physionet_score"`, `"youden"` (TPR + TNR − 1) or `"f1"`.

    Returns:
        `float`: one of the observed scores; predicting 1 for `y_score >= threshold` reproduces the
        optimum on these data. Among equally good thresholds the lowest (most sensitive) is returned.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(
            f"criterion {criterion!r} not found. Must be one of {', '.join(map(repr, THRESHOLD_CRITERIA))}."
        )
    labels, scores = _check_binary(y_true, y_score)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"choose_threshold needs both classes in the validation labels; found {n_pos} positives and "
            f"{n_neg} negatives. Use a larger or stratified validation split, or a fixed threshold (0.5)."
        )
    candidates = np.unique(scores)  # ascending
    # Samples with score >= t are predicted positive: count them per candidate with one sorted search.
    tp = n_pos - np.searchsorted(np.sort(scores[labels == 1]), candidates, side="left")
    fp = n_neg - np.searchsorted(np.sort(scores[labels == 0]), candidates, side="left")
    fn = n_pos - tp
    tn = n_neg - fp
    if criterion == "physionet_score":
        value = (tp + tn) / (tp + tn + fp + 5 * fn)
    elif criterion == "youden":
        value = tp / n_pos + tn / n_neg - 1.0
    else:  # f1; the denominator is > 0 because n_pos > 0
        value = 2 * tp / (2 * tp + fp + fn)
    return float(candidates[int(np.argmax(value))])
