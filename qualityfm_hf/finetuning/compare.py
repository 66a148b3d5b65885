"""One task, every method, the same record-level folds: what `qualityfm quickstart` reports.

Methods (the `method` names of the quickstart's `summary.json`):

- `pretrained-base`: the task head fine-tuned from the shipped encoder (`train_head`, the task's recipe);
- `random-init`: the same head and schedule from a random initialisation of the base preset;
- `pretrained-base-probe` / `random-init-probe`: the frozen encoder's pooled embedding of each window (the
  encoder alone: no rhythm statistics, no fine-tuning) into a balanced logistic regression whose C is chosen by an
  inner record-grouped CV on the training fold (`linear.fit_linear_classifier`);
- `baseline:<name>`: the transparent baselines of `baselines.BASELINES` (and, for a head that reads RR statistics,
  `baseline:rhythm_logistic` on those statistics).

Every method is fitted on the fold's training records only and scores the fold's test records, so the out-of-fold
predictions of all methods cover the same records and can be compared record by record (`paired_difference`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..utils.log import get_logger
from .crossval import cross_validate, oof_predictions, record_folds, record_strata, summarize
from .finetune_cv import baseline_method, model_method, rhythm_matrix
from .task_data import build_task_table, extract_features, get_task
from .train import check_classes, load_feature_extractor, task_recipe

logger = get_logger(__name__)

PRETRAINED = "pretrained-base"
RANDOM_PRESET = "base"


def probe_method(task: str, encoder_name: str, features: list[dict], *, seed: int = 0,
                 device: str = "cpu") -> Callable:
    """A frozen-encoder linear probe as a cross-validation method: every window is embedded once (at the first
    fold), then each fold fits `fit_linear_classifier` on its training windows' embeddings. `features` should be
    prepared as the encoder was pretrained (`load_feature_extractor(encoder_name)`, without the task recipe's
    options)."""
    from .linear import embed_windows, fit_linear_classifier
    from .probing import load_encoder

    embeddings, row_of = None, {f["row"]: i for i, f in enumerate(features)}

    def fit_predict(fold, train, test):
        nonlocal embeddings
        if embeddings is None:  # once, at the first fold, for all folds
            encoder = load_encoder(encoder_name, task, seed=seed)
            embeddings = embed_windows(encoder, features, device=device, progress=False)
        X = embeddings[[row_of[f["row"]] for f in train]]
        y = np.array([int(np.asarray(f["labels"]).reshape(-1)[0] == 1) for f in train])
        groups = np.array([f["record"] for f in train])
        classifier, C = fit_linear_classifier(X, y, groups, seed=seed + fold.index)
        return classifier.predict_proba(embeddings[[row_of[f["row"]] for f in test]])[:, 1], {"C": C}

    return fit_predict


def compare_methods(task: str, data_dir: str | Path, training_args, *, folds: int = 3, seed: int = 0,
                    n_bootstrap: int = 1000, device: str = "cpu",
                    progress: Callable[[str], None] | None = None) -> dict:
    """Cross-validate every method on the same `folds`-fold split by record (one repeat).

    `training_args` are the fine-tuning `TrainingArguments` (each fold writes under its `output_dir` and removes
    it). Returns `{"records", "windows", "folds", "methods": {method: summarize(...) + "seconds"},
    "predictions": {method: out-of-fold rows}}`.
    """
    import time

    say = progress or (lambda _: None)
    module = get_task(task)
    if module.PROBLEM == "regression":
        raise ValueError(f"compare_methods scores AUROC; {task} is a regression task.")
    recipe = task_recipe(task, None, None, None)
    dataset = build_task_table(task, data_dir, seed=seed)
    feature_extractor = load_feature_extractor(PRETRAINED, **recipe["feature_extractor"])
    with warnings.catch_warnings(record=True) as caught:  # said as progress lines, not as Python warnings
        warnings.simplefilter("always")
        features, _ = extract_features(dataset, feature_extractor)
        # The probes read the windows as the encoder saw them in pretraining, not with the fine-tuning recipe's
        # options.
        probe_features = features if not recipe["feature_extractor"] else \
            extract_features(dataset, load_feature_extractor(PRETRAINED))[0]
    for message in dict.fromkeys(str(w.message) for w in caught):
        say(f"{task}: {message}")
    if not features:
        raise ValueError(f"{data_dir}: the feature extractor rejected every {task} window.")
    check_classes(task, features, data_dir)
    records, strata = record_strata(task, features)
    too_few = {module.ID2LABEL.get(label, label): strata.count(label) for label in sorted(set(strata))
               if strata.count(label) < folds}
    if too_few:
        raise ValueError(f"{task}: {folds}-fold cross-validation by record needs at least {folds} records of each "
                         f"class in {data_dir}; found {too_few}. Use fewer folds (quickstart --folds) or more records.")
    split = record_folds(records, strata, folds, 1, seed)

    from .baselines import BASELINES, feature_matrix

    # method -> (the windows it reads, fit_predict)
    methods: dict[str, tuple[list[dict], Callable]] = {}
    for name, model in ((PRETRAINED, PRETRAINED), ("random-init", RANDOM_PRESET)):
        args = dataclasses.replace(training_args, output_dir=str(Path(training_args.output_dir) / name))
        methods[name] = features, model_method(task, model, args, crop_seconds=recipe["crop_seconds"], seed=seed)
    for name, model in ((f"{PRETRAINED}-probe", PRETRAINED), ("random-init-probe", RANDOM_PRESET)):
        methods[name] = probe_features, probe_method(task, model, probe_features, seed=seed, device=device)
    X = feature_matrix(task, dataset.with_format("numpy"))
    for kind in BASELINES[task]:
        methods[f"baseline:{kind}"] = features, baseline_method(task, kind, X, seed)
    if "rhythm_features" in features[0]:
        methods["baseline:rhythm_logistic"] = features, baseline_method(
            task, "logistic", rhythm_matrix(features, len(dataset)), seed)

    report = {"records": len(records), "windows": len(features), "folds": folds, "seed": seed,
              "positives": int(sum(s == 1 for s in strata)), "methods": {}, "predictions": {}}
    for name, (windows, fit_predict) in methods.items():
        started = time.perf_counter()
        say(f"{task}: {name}, {folds} folds")
        results = cross_validate(task, windows, split, fit_predict)
        report["methods"][name] = {**summarize(task, results, n_bootstrap),
                                   "seconds": round(time.perf_counter() - started, 1)}
        report["predictions"][name] = oof_predictions(task, results)
    return report


def paired_difference(predictions: dict[str, list[dict]], first: str, second: str, n_bootstrap: int = 1000,
                      seed: int = 0) -> dict:
    """AUROC of `first` minus AUROC of `second` on the same out-of-fold records, with a 95% interval from resampling
    records (both methods' scores of a record move together, so the interval is that of the difference)."""
    from ..tasks.metrics import bootstrap_ci
    from ..tasks.metrics.classification import auroc

    a = {p["record"]: p for p in predictions[first]}
    b = {p["record"]: p for p in predictions[second]}
    records = sorted(set(a) & set(b))
    labels = np.array([a[r]["label"] == 1 for r in records], dtype=int)
    scores = np.array([[a[r]["probability"], b[r]["probability"]] for r in records])
    point, low, high = bootstrap_ci(lambda y, s: auroc(y, s[:, 0]) - auroc(y, s[:, 1]), labels, scores,
                                    n_resamples=n_bootstrap, seed=seed, warn_undefined=False)
    return {"first": first, "second": second, "difference": float(point), "ci95": [float(low), float(high)],
            "records": len(records)}


__all__ = ["PRETRAINED", "compare_methods", "paired_difference", "probe_method"]
