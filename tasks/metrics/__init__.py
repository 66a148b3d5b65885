"""Task metrics: pure functions plus `evaluate` modules that wrap them.

The pure functions live in `classification.py`, `regression.py` and `bootstrap.py`. The `evaluate`
modules live in sub-directories named after the module (`qualityfm_classification/`,
`qualityfm_regression/`) and ship as package data; `load_metric` loads them from the installed
package, which works offline (`HF_HUB_OFFLINE=1`), because `evaluate.load` of a local script path
never contacts the Hub.
"""

from __future__ import annotations

from pathlib import Path

from ._common import MetricWarning
from .bootstrap import bootstrap_ci
from .classification import (
    THRESHOLD_CRITERIA,
    accuracy,
    auprc,
    auroc,
    choose_threshold,
    classification_metrics,
    confusion_counts,
    f1_score,
    physionet_score,
    ppv,
    sensitivity,
    specificity,
)
from .regression import (
    aami_criterion,
    bhs_grade,
    mase,
    mean_absolute_error,
    mean_error,
    regression_metrics,
    training_mean_mae,
)

METRIC_NAMES = ("qualityfm_classification", "qualityfm_regression")


def metric_script_dir(name: str) -> Path:
    """Directory of the `evaluate` module `name` inside the installed package."""
    if name not in METRIC_NAMES:
        raise ValueError(f"metric {name!r} not found. Must be one of {', '.join(map(repr, METRIC_NAMES))}.")
    path = Path(__file__).resolve().parent / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(
            f"{path / (name + '.py')} is missing from the installed package; reinstall qualityfm-hf "
            "(the metric scripts are package data: tasks/metrics/*/*.py)."
        )
    return path


def load_metric(name: str, **kwargs):
    """`evaluate.load` of one of our metric modules from the installed package (no network).

    Args:
        name (`str`): `"qualityfm_classification"` or `"qualityfm_regression"`.
        **kwargs: passed to `evaluate.load` (e.g. `experiment_id`, `cache_dir`).

    Returns:
        `evaluate.EvaluationModule`; call `.compute(predictions=..., references=..., ...)`.
    """
    import evaluate  # imported lazily: it pulls in `datasets`, which the pure functions do not need

    return evaluate.load(str(metric_script_dir(name)), **kwargs)


__all__ = [
    "METRIC_NAMES",
    "THRESHOLD_CRITERIA",
    "MetricWarning",
    "aami_criterion",
    "accuracy",
    "auprc",
    "auroc",
    "bhs_grade",
    "bootstrap_ci",
    "choose_threshold",
    "classification_metrics",
    "confusion_counts",
    "f1_score",
    "load_metric",
    "mase",
    "mean_absolute_error",
    "mean_error",
    "metric_script_dir",
    "physionet_score",
    "ppv",
    "regression_metrics",
    "sensitivity",
    "specificity",
    "training_mean_mae",
]
