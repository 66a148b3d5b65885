"""Repeated record-level K-fold cross-validation of the fine-tuning recipe and of the transparent baselines, on the
same folds, windows and metrics.

A fold's test records are never seen while training or choosing anything in that fold: the model's early stopping
and decision threshold use an inner validation split carved from the fold's training records. Classification is
scored per record (mean probability of its windows); ABP per window, with MASE scaled by the fold's training labels.

Reported per method: the metric in each fold, mean ± sd over all folds of all repeats, and the pooled out-of-fold
(OOF) metric of each repeat with a 95% interval from a record-level bootstrap.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..tasks.common import split_by_record
from ..tasks.metrics import MetricWarning, regression_metrics
from ..tasks.metrics import classification as cls_metrics
from ..tasks.metrics import regression as reg_metrics
from .evaluation import grouped_bootstrap, per_record
from .task_data import get_task

INNER_VALIDATION_FRACTION = 0.15
CLASSIFICATION_METRICS = ("auroc", "auprc")
REGRESSION_METRICS = ("sbp_mae", "dbp_mae", "sbp_mase", "dbp_mase")


@dataclass(frozen=True)
class Fold:
    """One fold of one repeat: the records trained on and the records scored."""

    repeat: int
    index: int
    train: tuple[str, ...]
    test: tuple[str, ...]


def record_folds(records: list[str], strata: list | None, k: int = 5, repeats: int = 1, seed: int = 0) -> list[Fold]:
    """`repeats` × `k` folds over `records`; each repeat reshuffles, and with `strata` (a label per record) each
    stratum is dealt evenly over the folds so every fold sees every class that has at least `k` records."""
    records = list(records)
    if len(set(records)) != len(records):
        raise ValueError("record_folds got duplicate record names; pass one entry per record.")
    if k < 2 or repeats < 1:
        raise ValueError(f"cross-validation needs k >= 2 folds and repeats >= 1; got k={k}, repeats={repeats}.")
    if len(records) < k:
        raise ValueError(f"{k}-fold cross-validation needs at least {k} records; found {len(records)}.")
    strata = list(strata) if strata is not None else [0] * len(records)
    counts = {s: strata.count(s) for s in set(strata)}
    small = {s: n for s, n in counts.items() if n < k}
    if small and len(counts) <= 10:  # classes, not a continuous target
        raise ValueError(
            f"{k}-fold cross-validation needs at least {k} records of each class; found {small}. Use a smaller "
            "--cv or more records."
        )
    folds = []
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        assignment: dict[str, int] = {}
        offset = 0
        for stratum in sorted(counts, key=str):
            members = sorted(r for r, s in zip(records, strata) if s == stratum)
            rng.shuffle(members)
            for i, record in enumerate(members):  # continue where the last stratum stopped: equal fold sizes
                assignment[record] = (offset + i) % k
            offset += len(members)
        for index in range(k):
            folds.append(Fold(repeat, index, tuple(r for r in records if assignment[r] != index),
                              tuple(r for r in records if assignment[r] == index)))
    return folds


def record_strata(task: str, features: list[dict]) -> tuple[list[str], list | None]:
    """Records in first-seen order and their class (classification) for stratified folds; None for regression."""
    records = list(dict.fromkeys(f["record"] for f in features))
    if get_task(task).PROBLEM == "regression":
        return records, None
    label = {}
    for f in features:
        label.setdefault(f["record"], int(np.asarray(f["labels"]).reshape(-1)[0]))
    return records, [label[r] for r in records]


def inner_split(task: str, train: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """Split a fold's training windows by record into inner train and validation (stratified by class)."""
    records, strata = record_strata(task, train)
    fractions = (1.0 - INNER_VALIDATION_FRACTION, INNER_VALIDATION_FRACTION, 0.0)
    split = split_by_record(records, strata, fractions, seed)
    return ([f for f in train if split[f["record"]] == "train"],
            [f for f in train if split[f["record"]] == "validation"])


# A method is `fit_predict(fold, train_windows, test_windows) -> (scores per test window, info dict)`.
FitPredict = Callable[[Fold, list[dict], list[dict]], "tuple[np.ndarray, dict]"]


def cross_validate(task: str, features: list[dict], folds: list[Fold], fit_predict: FitPredict,
                   progress: Callable[[str], None] | None = None) -> list[dict]:
    """Run `fit_predict` on every fold; returns one entry per fold with its test windows' scores and info."""
    results = []
    for fold in folds:
        train_records, test_records = set(fold.train), set(fold.test)
        train = [f for f in features if f["record"] in train_records]
        test = [f for f in features if f["record"] in test_records]
        if progress:
            progress(f"repeat {fold.repeat + 1}, fold {fold.index + 1}: {len(fold.train)} train / "
                     f"{len(fold.test)} test records")
        scores, info = fit_predict(fold, train, test)
        results.append({"fold": fold, "test": test, "scores": np.asarray(scores), "info": info,
                        "train_labels": np.stack([f["labels"] for f in train])})
    return results


def _mean_sd(values: list[float]) -> dict:
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if not finite.size:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0}
    return {"mean": float(finite.mean()), "sd": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "n": int(finite.size)}


def summarize(task: str, results: list[dict], n_bootstrap: int = 1000) -> dict:
    """Per-fold metrics, mean ± sd over folds, and pooled OOF metrics per repeat with 95% record-bootstrap CIs."""
    regression = get_task(task).PROBLEM == "regression"
    per_fold = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        for r in results:
            row = {"repeat": r["fold"].repeat, "fold": r["fold"].index, "test_records": len(r["fold"].test),
                   **{k: v for k, v in r["info"].items() if isinstance(v, (int, float, str)) or v is None}}
            if regression:
                truth = np.stack([f["labels"] for f in r["test"]]).astype(np.float64)
                naive = np.abs(r["train_labels"] - r["train_labels"].mean(0)).mean(0)
                for i, name in enumerate(("sbp", "dbp")):
                    mae = reg_metrics.mean_absolute_error(truth[:, i], r["scores"][:, i])
                    row[f"{name}_mae"], row[f"{name}_mase"] = mae, mae / naive[i]
            else:
                _, probs, labels = per_record(r["test"], r["scores"])
                labels = (labels == 1).astype(int)
                row["auroc"] = cls_metrics.auroc(labels, probs)
                row["auprc"] = cls_metrics.auprc(labels, probs)
            per_fold.append(row)
    names = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    summary = {"folds": per_fold, "over_folds": {m: _mean_sd([row[m] for row in per_fold]) for m in names}}
    pooled = []
    for repeat in sorted({r["fold"].repeat for r in results}):
        members = [r for r in results if r["fold"].repeat == repeat]
        test = [f for r in members for f in r["test"]]
        scores = np.concatenate([r["scores"] for r in members])
        pooled.append(pooled_metrics(task, test, scores, members, n_bootstrap, seed=repeat))
    summary["pooled_oof"] = pooled
    keys = [k for k, v in pooled[0].items() if isinstance(v, float)]
    summary["pooled_oof_mean"] = {k: _mean_sd([p[k] for p in pooled]) for k in keys}
    return summary


def pooled_metrics(task: str, test: list[dict], scores: np.ndarray, members: list[dict], n_bootstrap: int,
                   seed: int = 0) -> dict:
    """Metrics of one repeat's out-of-fold predictions (every record scored once, by a model that never saw it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        if get_task(task).PROBLEM == "regression":
            truth = np.stack([f["labels"] for f in test]).astype(np.float64)
            # One MASE scale per repeat: the training-mean MAE averaged over its folds' training labels.
            naive = np.mean([np.abs(m["train_labels"] - m["train_labels"].mean(0)).mean(0) for m in members], 0)
            out = regression_metrics(truth, scores, naive_mae=[float(v) for v in naive])
            groups = [f["record"] for f in test]
            for i, name in enumerate(("sbp", "dbp")):
                if n_bootstrap:
                    out[f"{name}_mae_ci95"] = list(grouped_bootstrap(
                        lambda t, p, i=i: reg_metrics.mean_absolute_error(t[:, i], p[:, i]), groups, truth, scores,
                        n_bootstrap, seed)[1:])
            return out
        records, probs, labels = per_record(test, scores)
        labels = (labels == 1).astype(int)
        out = {"records": len(records), "auroc": cls_metrics.auroc(labels, probs),
               "auprc": cls_metrics.auprc(labels, probs)}
        if n_bootstrap:
            out["auroc_ci95"] = list(grouped_bootstrap(cls_metrics.auroc, records, labels, probs, n_bootstrap,
                                                        seed)[1:])
        return out


def oof_predictions(task: str, results: list[dict]) -> list[dict]:
    """Per-record (classification) or per-window (ABP) out-of-fold predictions of every repeat."""
    rows = []
    for r in results:
        if get_task(task).PROBLEM == "regression":
            for f, p in zip(r["test"], r["scores"]):
                rows.append({"repeat": r["fold"].repeat, "fold": r["fold"].index, "record": f["record"],
                             "sbp": float(p[0]), "dbp": float(p[1]), "sbp_true": float(f["labels"][0]),
                             "dbp_true": float(f["labels"][1])})
        else:
            records, probs, labels = per_record(r["test"], r["scores"])
            rows.extend({"repeat": r["fold"].repeat, "fold": r["fold"].index, "record": rec,
                         "probability": float(p), "label": int(y)} for rec, p, y in zip(records, probs, labels))
    return rows


__all__ = ["Fold", "cross_validate", "inner_split", "oof_predictions", "pooled_metrics", "record_folds",
           "record_strata", "summarize"]
