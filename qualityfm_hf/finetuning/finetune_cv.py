"""`qualityfm finetune --cv K --repeats R`: cross-validate the fine-tuning recipe and the transparent baselines on the
same record-level folds, then train the final model on all records.

The final model is trained exactly as in each fold (inner validation split for early stopping), on all records; its
decision threshold is chosen on the pooled out-of-fold predictions of the cross-validation, which no model saw
while training, instead of on the few records of one validation split.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from ..pretrained import resolve_model
from ..reports.cards import write_model_card
from ..tasks.common import dataset_metadata
from ..tasks.metrics import choose_threshold as select_threshold
from ..tasks.metrics import classification_metrics
from ..utils.distributed import is_main_process
from ..utils.log import get_logger
from .crossval import (
    INNER_VALIDATION_FRACTION,
    FitPredict,
    cross_validate,
    inner_split,
    oof_predictions,
    record_folds,
    record_strata,
    summarize,
)
from .evaluation import evaluate_features, predict_features
from .task_data import build_task_table, extract_features, get_task
from .train import (
    DEFAULT_EARLY_STOPPING_PATIENCE,
    check_classes,
    load_feature_extractor,
    task_recipe,
    train_head,
    training_arguments,
)

logger = get_logger(__name__)


def model_method(task: str, model: str, training_args, *, pooling=None, freeze_backbone=False,
                 early_stopping_patience=DEFAULT_EARLY_STOPPING_PATIENCE, crop_seconds=None, probe_epochs=0.0,
                 seed=0, head_fit="trainer") -> FitPredict:
    """Fine-tuning as a cross-validation method: inner split -> `train_head` -> scores of the test windows."""
    regression = get_task(task).PROBLEM == "regression"

    def fit_predict(fold, train, test):
        inner_train, validation = inner_split(task, train, seed=seed + 1000 * fold.repeat + fold.index)
        output_dir = Path(training_args.output_dir) / f"repeat{fold.repeat}-fold{fold.index}"
        args = dataclasses.replace(training_args, output_dir=str(output_dir))
        try:
            net, info = train_head(task, model, inner_train, validation, args, pooling=pooling,
                                   freeze_backbone=freeze_backbone, early_stopping_patience=early_stopping_patience,
                                   crop_seconds=crop_seconds, probe_epochs=probe_epochs, head_fit=head_fit)
            scores = predict_features(net, test)
            if validation and not regression:
                # The hold-out path's threshold choice on validation records; undefined when they hold one class.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    chosen = evaluate_features(task, net, validation, n_bootstrap=0, choose_threshold=True)
                if chosen["tp"] + chosen["fn"] and chosen["tn"] + chosen["fp"]:
                    info["threshold"] = chosen["threshold"]
        finally:
            if is_main_process(training_args):  # the fold's scratch folder is shared by every rank
                shutil.rmtree(output_dir, ignore_errors=True)
        return scores, info

    return fit_predict


def baseline_method(task: str, kind: str, X: np.ndarray, seed: int = 0) -> FitPredict:
    """A transparent baseline as a cross-validation method on the same windows (rows of `X` by `row`)."""
    from .baselines import fit_predict as baseline_fit_predict

    regression = get_task(task).PROBLEM == "regression"

    def fit_predict(fold, train, test):
        y = np.stack([f["labels"] for f in train]).astype(np.float64)
        y = y if regression else (y.reshape(len(train), -1)[:, 0] == 1).astype(int)
        scores = baseline_fit_predict(task, kind, X[[f["row"] for f in train]], y, X[[f["row"] for f in test]],
                                      seed=seed)
        return scores, {}

    return fit_predict


def rhythm_matrix(features: list[dict], rows: int) -> np.ndarray:
    """The RR-interval statistics the AF head reads (`rhythm_features`), one row per dataset row (`f["row"]`), NaN
    for rows the feature extractor dropped: the input of the `rhythm_logistic` baseline."""
    X = np.full((rows, np.asarray(features[0]["rhythm_features"]).size), np.nan)
    for f in features:
        X[f["row"]] = np.asarray(f["rhythm_features"], dtype=np.float64).reshape(-1)
    return X


def _say(message: str) -> None:
    logger.info(message)


DEFAULT_FOLDS = 5


def default_folds(strata: list | None) -> int:
    """`DEFAULT_FOLDS`, or fewer when a class has fewer records (every fold should test every class)."""
    if strata is None:
        return DEFAULT_FOLDS
    return max(2, min(DEFAULT_FOLDS, *(strata.count(s) for s in set(strata))))


def finetune_cv(task: str, data_dir: str | Path, model: str, output_dir: str | Path, training_args=None, *,
                cv: int | None = None, repeats: int = 1, seed: int = 0, dataset_options: dict | None = None,
                pooling: str | None = None, freeze_backbone: bool = False,
                early_stopping_patience: int = DEFAULT_EARLY_STOPPING_PATIENCE,
                crop_seconds: float | None = None, feature_extractor_options: dict | None = None,
                probe_epochs: float = 0.0, baselines: bool = True, final: bool = True, n_bootstrap: int = 1000,
                keep_checkpoints: bool = False, quiet: bool = False, head_fit: str | None = None) -> dict:
    """Cross-validate, compare with the baselines, train the final model; returns what `metrics.json` holds.

    `cv=None` uses `DEFAULT_FOLDS` folds, fewer when a class has fewer records than that."""
    module = get_task(task)
    regression = module.PROBLEM == "regression"
    resolve_model(model)  # a bad --model fails before the data set is built
    output_dir = Path(output_dir)
    say = (lambda _: None) if quiet else _say
    training_args = training_args or training_arguments(output_dir / "checkpoints", seed=seed)
    recipe = task_recipe(task, crop_seconds, feature_extractor_options, head_fit)  # bad options fail before the data
    dataset = build_task_table(task, data_dir, seed=seed, **(dataset_options or {}))
    crop_seconds = recipe["crop_seconds"]
    feature_extractor = load_feature_extractor(model, **recipe["feature_extractor"])
    features, rejected = extract_features(dataset, feature_extractor)
    if not features:
        raise ValueError(f"{data_dir}: the feature extractor rejected every window ({dict(rejected)}).")
    check_classes(task, features, data_dir)
    records, strata = record_strata(task, features)
    if cv is None:
        cv = default_folds(strata)
        if cv < DEFAULT_FOLDS:
            say(f"{cv} folds instead of {DEFAULT_FOLDS}: the smallest class has {cv} records")
    folds = record_folds(records, strata, cv, repeats, seed)
    say(f"{task}: {len(records)} records, {len(features)} windows; {repeats} x {cv}-fold cross-validation by record")

    started = time.time()
    method = model_method(task, model, training_args, pooling=pooling, freeze_backbone=freeze_backbone,
                          early_stopping_patience=early_stopping_patience, crop_seconds=crop_seconds,
                          probe_epochs=probe_epochs, seed=seed, head_fit=recipe["head_fit"])
    model_results = cross_validate(task, features, folds, method, progress=say)
    report = {"model": summarize(task, model_results, n_bootstrap)}
    report["model"]["seconds"] = round(time.time() - started, 1)
    if baselines:
        from .baselines import BASELINES, feature_matrix

        X = feature_matrix(task, dataset.with_format("numpy"))
        for kind in BASELINES[task]:
            results = cross_validate(task, features, folds, baseline_method(task, kind, X, seed))
            report[f"baseline:{kind}"] = summarize(task, results, n_bootstrap)
        if "rhythm_features" in features[0] and not regression:
            # The head reads these statistics: the baseline's logistic regression on them alone is close to where
            # its training starts (`init_rhythm_head` fits without the baseline's standard scaling), so the model
            # minus this row is roughly what the embedding adds.
            X = rhythm_matrix(features, len(dataset))
            results = cross_validate(task, features, folds, baseline_method(task, "logistic", X, seed))
            report["baseline:rhythm_logistic"] = summarize(task, results, n_bootstrap)
    predictions = oof_predictions(task, model_results)
    metrics = {
        "task": task, "model": model, "data_dir": str(data_dir), "split_unit": "record", "seed": seed,
        "cross_validation": {"folds": cv, "repeats": repeats, "records": len(records), "windows": len(features),
                             "inner_validation_fraction": INNER_VALIDATION_FRACTION, **report},
        "skipped_records": dataset_metadata(dataset).get("skipped_records"),
        "feature_extractor_notes": dict(rejected), "dataset_options": dataset_options or {},
        "recipe": {"crop_seconds": crop_seconds, "feature_extractor": recipe["feature_extractor"],
                   "early_stopping_patience": early_stopping_patience, "pooling": pooling,
                   "probe_epochs": probe_epochs, "head_fit": recipe["head_fit"],
                   "freeze_backbone": freeze_backbone,
                   "training_arguments": {k: getattr(training_args, k) for k in (
                       "num_train_epochs", "learning_rate", "lr_scheduler_type", "warmup_steps",
                       "per_device_train_batch_size", "weight_decay", "metric_for_best_model", "seed")}},
        "n_bootstrap": n_bootstrap,
    }
    main = is_main_process(training_args)  # under torchrun / accelerate launch only rank 0 writes
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "cv_predictions.json").write_text(json.dumps(predictions, indent=1) + "\n")
    if final:
        say(f"final model on all {len(records)} records")
        inner_train, validation = inner_split(task, features, seed=seed)
        args = dataclasses.replace(training_args, output_dir=str(output_dir / "checkpoints"))
        net, info = train_head(task, model, inner_train, validation, args, pooling=pooling,
                               freeze_backbone=freeze_backbone, early_stopping_patience=early_stopping_patience,
                               crop_seconds=crop_seconds, probe_epochs=probe_epochs, head_fit=recipe["head_fit"])
        metrics["train"] = info
        if not regression:
            probs = np.array([p["probability"] for p in predictions])
            labels = np.array([p["label"] for p in predictions])
            net.config.decision_threshold = select_threshold(labels, probs, module.THRESHOLD_CRITERION)
            metrics["decision_threshold"] = net.config.decision_threshold
            # What that threshold gives on the OOF predictions it was chosen on: optimistic by construction.
            metrics["oof_at_threshold"] = classification_metrics(labels, probs, net.config.decision_threshold)
        if main:
            net.save_pretrained(output_dir)
            feature_extractor.save_pretrained(output_dir)
            write_model_card(output_dir, task, metrics, net.config)
            if not keep_checkpoints:
                shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    if main:
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics


__all__ = ["DEFAULT_FOLDS", "baseline_method", "default_folds", "finetune_cv", "model_method", "rhythm_matrix"]
