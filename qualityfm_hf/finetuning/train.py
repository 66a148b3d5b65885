"""Fine-tune QualityFM on a clinical task: build the record-level split, extract features, train with the HF Trainer
(early stopping on validation), choose the decision threshold on validation only, evaluate on the held-out test
split, and save model + feature extractor + metrics.json + model card.

The CLI (`qualityfm finetune`) is a thin layer over `finetune`. Evaluation, prediction and plots are in
`evaluation.py`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..modeling.configuration_qualityfm import PRESETS, QualityFMConfig
from ..pretrained import resolve_model
from ..tasks.common import dataset_metadata
from ..utils.distributed import cpu_launch_defaults, is_main_process
from ..utils.trainer_logs import adapt as adapt_trainer_logs
from .task_data import (
    HEAD_TO_TASK,
    MODEL_INPUTS,
    build_task_table,
    collate,
    config_task,
    crop_inputs,
    extract_features,
    get_task,
    head_class,
    window_crops,
)

# Trainer defaults for `finetune`; anything the caller passes wins. A short warm-up and a cosine decay over up to 30
# epochs, with early stopping on validation AUROC (binary tasks; the loss for ABP), patience 8 epochs: 5 epochs at one
# lr stopped on the loss of a few validation records was the old default (benchmarks/CLINICAL.md compares them).
DEFAULT_TRAINING_ARGS = dict(
    num_train_epochs=30,
    per_device_train_batch_size=16,
    per_device_eval_batch_size=32,
    learning_rate=1e-4,
    weight_decay=0.005,
    warmup_steps=0.1,  # a fraction of the steps (transformers 5 merged warmup_ratio into warmup_steps)
    lr_scheduler_type="cosine",
    eval_strategy="epoch",
    save_strategy="epoch",
    load_best_model_at_end=True,
    metric_for_best_model="auroc",
    greater_is_better=True,
    save_total_limit=1,
    logging_steps=10,
    report_to="none",
    dataloader_num_workers=0,
    remove_unused_columns=False,
)
DEFAULT_EARLY_STOPPING_PATIENCE = 8

# Per-task parts of the default recipe, chosen by cross-validation on the shared records (benchmarks/CLINICAL.md):
# `crop_seconds` trains on random crops and averages over crops at inference; `feature_extractor` options are saved
# in the fine-tuned model's preprocessor_config.json, so evaluation and prediction prepare inputs the same way.
TASK_RECIPES = {
    "vt-false-alarm": dict(crop_seconds=None, feature_extractor={}),
    # AF: 10-s crops + band-pass + robust scaling: pooled AUROC over 15 folds 0.745 vs 0.653 for whole windows with
    # joint min-max (CLINICAL.md, development seed 2000).
    # The head also reads the window's RR-interval statistics (`rhythm_features`; see `init_rhythm_head`):
    # CLINICAL.md, 2026-12-02.
    "af": dict(crop_seconds=10.0, feature_extractor=dict(bandpass=True, normalization="robust_channel",
                                                         rhythm_features=True)),
    # ABP: the head is a ridge regression on the frozen encoder's pooled embeddings, alpha by an inner record-grouped
    # CV (`fit_ridge_head`). Fine-tuning memorised the training patients' pressures: SBP MASE 1.146 vs 1.061 for the
    # ridge head on development seed 2000 (CLINICAL.md, 2026-12-02), which shrinks towards the training mean when
    # the embedding carries nothing.
    "abp": dict(crop_seconds=None, feature_extractor={}, head_fit="ridge"),
}
HEAD_FITS = ("trainer", "ridge")


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


def load_model(task: str, model: str, **config_overrides):
    """A task head from a preset name (random init), `pretrained-base` (the shipped encoder), a saved checkpoint
    directory or a Hub repo id.

    A backbone checkpoint (`QualityFMModel`, `QualityFMForPretraining`) loads its encoder into the head and initialises
    the head; a fine-tuned checkpoint of the same task loads whole. A checkpoint of another task raises.
    """
    cls = head_class(task)
    model = resolve_model(model)
    if model in PRESETS:
        return cls(QualityFMConfig.from_preset(model, **config_overrides))
    config = QualityFMConfig.from_pretrained(model)
    other = [a for a in config.architectures or [] if a in HEAD_TO_TASK and a != cls.__name__]
    if other:
        raise ValueError(
            f"{model} is a {other[0]} checkpoint (task {HEAD_TO_TASK[other[0]]!r}), not {task!r}; start "
            f"{task} fine-tuning from a backbone (a preset {sorted(PRESETS)} or a pretrained QualityFMModel)."
        )
    # Head options (pos_weight, label_mean, ...) are not config fields, and `from_pretrained` hands unknown kwargs to
    # the model's __init__; set them on the config instead.
    for key, value in config_overrides.items():
        setattr(config, key, value)
    if config_task(config) is not None:  # a fine-tuned head of this task: everything must load, report it all
        return cls.from_pretrained(model, config=config)
    # A backbone into a head: the head's new linear layer is missing by design, and transformers would print its
    # LOAD REPORT table for it in every fold. Quiet that one report and check here that nothing else is off.
    # A filter, not a level: transformers runs extra checks (and logs them) when that logger's level is >= WARNING.
    from transformers.utils import logging as hf_logging

    loader_log = hf_logging.get_logger("transformers.modeling_utils")
    drop_report = _DropLoadReport()
    loader_log.addFilter(drop_report)
    try:
        net, info = cls.from_pretrained(model, config=config, output_loading_info=True)
    finally:
        loader_log.removeFilter(drop_report)
    # Expected: the head's own parameters missing, and a pretraining checkpoint's decoder unused. Anything of the
    # encoder missing, unused or of another shape is not.
    encoder = f"{net.base_model_prefix}."
    problems = {
        "missing_keys": sorted(k for k in info.get("missing_keys") or [] if k.startswith(encoder)),
        "unexpected_keys": sorted(k for k in info.get("unexpected_keys") or [] if k.startswith(encoder)),
        "mismatched_keys": sorted(str(k) for k in info.get("mismatched_keys") or []),
    }
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        warnings.warn(f"{model}: loading it into {cls.__name__} left {problems}; those weights are freshly "
                      "initialised or ignored.", stacklevel=2)
    return net


def load_feature_extractor(model: str, **options):
    """The checkpoint's saved feature extractor, or the pretraining default for presets and bare backbones; `options`
    (e.g. `bandpass=True`, `normalization="robust_channel"`) are set on it and saved with the fine-tuned model."""
    from ..modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor

    model = resolve_model(model)
    if model not in PRESETS and (Path(model) / "preprocessor_config.json").is_file():
        extractor = QualityFMFeatureExtractor.from_pretrained(model)
    else:
        extractor = QualityFMFeatureExtractor()
    if options:
        # Through the constructor, so bad values raise the extractor's own one-line errors.
        extractor = QualityFMFeatureExtractor(**{**extractor.to_dict(), **options})
    return extractor


def task_recipe(task: str, crop_seconds: float | None = None, feature_extractor: dict | None = None,
                head_fit: str | None = None) -> dict:
    """`TASK_RECIPES[task]` with the caller's choices on top: `crop_seconds=0` turns crops off; `feature_extractor`
    options update the task's; `head_fit` ("trainer": fine-tuning with the Trainer, "ridge": the closed-form
    regression head of `fit_ridge_head`) replaces the task's."""
    module = get_task(task)
    recipe = TASK_RECIPES[module.NAME]
    crop = recipe["crop_seconds"] if crop_seconds is None else (crop_seconds or None)
    head_fit = head_fit or recipe.get("head_fit", "trainer")
    if head_fit not in HEAD_FITS:
        raise ValueError(f"head_fit is {head_fit!r}, but has to be one of {list(HEAD_FITS)}.")
    if head_fit == "ridge" and module.PROBLEM != "regression":
        raise ValueError(f"head_fit='ridge' fits a regression head; {task} is a classification task: use 'trainer'.")
    return {"crop_seconds": crop, "feature_extractor": {**recipe["feature_extractor"], **(feature_extractor or {})},
            "head_fit": head_fit}


class WindowDataset:
    """A map-style dataset over `extract_features` output for the Trainer (`__getitem__` -> model inputs).

    With `crop_samples`, each item is a random crop of that many real samples of its window (a new crop every epoch),
    so a few records give many different inputs; shorter windows are returned whole."""

    def __init__(self, features: list[dict], regression: bool, crop_samples: int | None = None, seed: int = 0):
        self.features, self.regression, self.crop_samples = features, regression, crop_samples
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        item = self.features[index]
        out = {k: item[k] for k in (*MODEL_INPUTS, "labels") if k in item}
        length = int(np.asarray(item["attention_mask"]).sum())
        if self.crop_samples and length > self.crop_samples:
            start = int(self.rng.integers(0, length - self.crop_samples + 1))
            out.update(crop_inputs(item, start, self.crop_samples))
        return out


def check_classes(task: str, features: list[dict], data_dir) -> None:
    """A classifier needs records of both classes; say so before any training (metrics would be NaN)."""
    if get_task(task).PROBLEM == "regression" or not features:
        return
    labels = Counter(int(np.asarray(f["labels"]).reshape(-1)[0]) for f in {f["record"]: f for f in features}.values())
    if len(labels) < 2:
        (label, count), = labels.items()
        name = get_task(task).ID2LABEL.get(label, label)
        raise ValueError(
            f"{task}: all {count} usable records in {data_dir} have label {label} ({name}); fine-tuning a classifier "
            "needs records of both classes. Add records of the other class or check the labels."
        )


def task_config_overrides(task: str, train: list[dict], pooling: str | None) -> dict:
    """Head options computed from the TRAINING split only: pos_weight for imbalanced classes, ABP label scaling."""
    module = get_task(task)
    overrides: dict = {}
    if pooling is not None:
        overrides["pooling"] = pooling
    labels = np.stack([f["labels"] for f in train])
    # The head reads the rhythm statistics exactly when the feature extractor computed them.
    overrides["classifier_rhythm_features"] = int(np.asarray(train[0]["rhythm_features"]).size) \
        if "rhythm_features" in train[0] else 0
    if module.PROBLEM == "regression":
        overrides.update(
            problem_type="regression",
            id2label=dict(module.ID2LABEL),
            label2id={v: k for k, v in module.ID2LABEL.items()},
            label_mean=[float(v) for v in labels.mean(0)],
            label_std=[float(v) for v in labels.std(0).clip(min=1.0)],
            # MASE scale: MAE of always predicting the training mean, on the training labels (paper notes §5.3).
            train_naive_mae=[float(v) for v in np.abs(labels - labels.mean(0)).mean(0)],
        )
    else:
        positives = float((labels == 1).sum())
        overrides.update(
            id2label=dict(module.ID2LABEL),
            label2id={v: k for k, v in module.ID2LABEL.items()},
            pos_weight=float((len(labels) - positives) / positives) if positives else 1.0,
        )
    return overrides


def training_defaults(output_dir: str | Path) -> dict:
    """`DEFAULT_TRAINING_ARGS` for this launch (`use_cpu` for a CPU-only multi-process one; pinned memory only with
    CUDA, as torch warns at every data loader, i.e. every evaluation, without it): the defaults of
    `training_arguments` and of `qualityfm finetune`'s TrainingArguments options."""
    import torch

    return dict(DEFAULT_TRAINING_ARGS, **cpu_launch_defaults(), output_dir=str(output_dir),
                dataloader_pin_memory=torch.cuda.is_available())


def training_arguments(output_dir: str | Path, **overrides):
    from transformers import TrainingArguments

    return TrainingArguments(**{**training_defaults(output_dir), **overrides})


def window_auroc(eval_prediction) -> dict:
    """`compute_metrics` for binary heads: validation AUROC over windows (NaN when validation has one class), so
    early stopping follows discrimination rather than the loss, which a few confident errors dominate."""
    from ..tasks.metrics.classification import auroc

    logits = np.asarray(eval_prediction.predictions, dtype=np.float64).reshape(len(eval_prediction.label_ids), -1)
    labels = np.asarray(eval_prediction.label_ids).reshape(len(logits), -1)[:, 0]
    if labels.min() == labels.max():
        return {"auroc": float("nan")}
    from scipy.special import expit, softmax

    probs = expit(logits[:, 0]) if logits.shape[1] == 1 else softmax(logits, axis=1)[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"auroc": auroc((labels == 1).astype(int), probs)}


def init_rhythm_head(net, train: list[dict], seed: int = 0) -> None:
    """Start a head that reads rhythm statistics (`config.classifier_rhythm_features`) as a logistic regression on
    them: its rhythm weights and bias are fitted on the training windows (L2, C = 1, balanced classes, as the AF
    baseline, but on the statistics as the feature extractor standardised them, without the baseline's imputer and
    scaler), its embedding weights are 0.

    A linear layer trained by the fine-tuning schedule (lr 1e-4, a few hundred steps) moves each weight by a few
    hundredths, far from the weights of order 1 that these statistics need; started here, the head is a
    transparent logistic regression on the model's own statistics, and fine-tuning moves from it only as far as the
    embedding helps (early stopping on validation AUROC)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    n = net.config.classifier_rhythm_features
    X = np.stack([np.asarray(f["rhythm_features"], dtype=np.float64).reshape(n) for f in train])
    y = np.stack([np.asarray(f["labels"]).reshape(-1)[0] for f in train]).astype(int)
    classifier = net.classifier
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.zero_()
        if np.unique(y).size < 2:  # nothing to fit; check_classes refuses this before training anyway
            return
        fit = LogisticRegression(class_weight="balanced", C=1.0, max_iter=2000, random_state=seed).fit(X, y)
        coef, intercept = fit.coef_, fit.intercept_
        if classifier.out_features == 1:  # one logit: log-odds of class 1
            coef, intercept = coef[-1:], intercept[-1:]
        elif coef.shape[0] != classifier.out_features:  # a class absent from training: leave the head at 0
            return
        hidden = classifier.in_features - n
        classifier.weight[:, hidden:] = torch.as_tensor(coef, dtype=classifier.weight.dtype)
        classifier.bias[:] = torch.as_tensor(intercept, dtype=classifier.bias.dtype)


def fit_ridge_head(net, rows: list[dict], seed: int = 0) -> float:
    """Set a regression head's linear layer to a ridge regression on the frozen encoder's pooled embeddings of `rows`.

    `linear.fit_ridge` standardises the embeddings and picks alpha by an inner record-grouped CV (records, not
    windows, are held out: a record's windows are near-duplicates); the scaler is folded into the layer, which
    predicts labels standardised by `config.label_mean`/`label_std`, so the head computes exactly the pipeline's
    predictions. With little signal the chosen alpha is large and the head predicts close to the training mean.
    Returns the chosen alpha."""
    import torch

    from .linear import embed_windows, fit_ridge

    embeddings = embed_windows(net.qualityfm, rows, progress=False).astype(np.float64)
    targets = np.stack([np.asarray(f["labels"], dtype=np.float64).reshape(-1) for f in rows])
    groups = np.array([str(f["record"]) for f in rows])
    pipeline, alpha = fit_ridge(embeddings, targets, groups, seed)
    scaler, ridge = pipeline[0], pipeline[-1]
    coef = np.atleast_2d(ridge.coef_) / scaler.scale_  # (outputs, hidden): mmHg per embedding unit
    intercept = np.atleast_1d(ridge.intercept_) - coef @ scaler.mean_
    mean = np.asarray(net.config.label_mean, dtype=np.float64)
    std = np.asarray(net.config.label_std, dtype=np.float64)
    layer = net.classifier
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:, : coef.shape[1]] = torch.as_tensor(coef / std[:, None], dtype=layer.weight.dtype)
        layer.bias.copy_(torch.as_tensor((intercept - mean) / std, dtype=layer.bias.dtype))
    return float(alpha)


def train_head(task: str, model: str, train: list[dict], validation: list[dict], training_args, *,
               pooling: str | None = None, freeze_backbone: bool = False,
               early_stopping_patience: int = DEFAULT_EARLY_STOPPING_PATIENCE, crop_seconds: float | None = None,
               probe_epochs: float = 0.0, probe_learning_rate: float = 1e-3, head_fit: str = "trainer"):
    """Fine-tune a task head on `train` windows with early stopping on `validation` windows.

    With `head_fit="ridge"` (regression) nothing is trained by gradient: the encoder stays as loaded and the head is
    the ridge regression of `fit_ridge_head` on the `train` and `validation` windows together (its inner CV holds
    records out itself).

    With `probe_epochs`, the head is first trained alone on the frozen encoder (a linear probe at
    `probe_learning_rate`), so full fine-tuning starts from a sensible head instead of pushing a random head's
    gradients into the pretrained encoder (LP-FT).

    The best checkpoint is chosen by validation AUROC for binary tasks when validation holds both classes (the
    loss otherwise). With `crop_seconds`, training sees a random crop of each window every epoch, validation the
    half-overlapping crops, and `config.crop_seconds` makes prediction average over crops.
    Returns `(model in eval mode, info)` with the steps, epochs and best validation value.
    """
    from transformers import EarlyStoppingCallback, Trainer, set_seed

    set_seed(training_args.seed)
    module = get_task(task)
    regression = module.PROBLEM == "regression"
    if head_fit == "ridge":  # no Trainer: none of the early-stopping set-up below applies
        rows = train + validation
        net = load_model(task, model, **task_config_overrides(task, rows, pooling)).eval()
        alpha = fit_ridge_head(net, rows, seed=training_args.seed)
        return net, {"head_fit": "ridge", "ridge_alpha": alpha, "global_step": 0, "epochs": 0.0,
                     "training_windows": len(rows), "freeze_backbone": True}
    if not validation:
        # Too few records to hold any out (tiny data sets): train for the whole schedule, nothing to stop on.
        warnings.warn(f"{task}: no validation records; training for the full schedule without early stopping.",
                      stacklevel=2)
        training_args = dataclasses.replace(training_args, eval_strategy="no", save_strategy="no",
                                            load_best_model_at_end=False)
    labels = {float(np.asarray(f["labels"]).reshape(-1)[0]) for f in validation}
    by_auroc = not regression and training_args.metric_for_best_model == "auroc" and len(labels) > 1
    if training_args.metric_for_best_model == "auroc" and not by_auroc:  # regression, or one validation class
        training_args.metric_for_best_model, training_args.greater_is_better = "loss", False
    net = load_model(task, model, **task_config_overrides(task, train, pooling))
    # A fine-tuned head of this task (its config names the head) keeps its trained weights.
    if net.config.classifier_rhythm_features and not regression and config_task(net.config) is None:
        init_rhythm_head(net, train, seed=training_args.seed)
    crop = None
    if crop_seconds:
        # Whole tokens (the tokenizer's total stride, 500 samples at 300 Hz), so a crop never ends in a padded token.
        token = math.prod(net.config.conv_stride)
        crop = max(token, int(round(crop_seconds * net.config.sampling_rate / token)) * token)
        net.config.crop_seconds = crop / net.config.sampling_rate
        validation = [{**piece, "labels": f["labels"]} for f in validation for piece in window_crops(f, crop)]
    train_dataset = WindowDataset(train, regression, crop_samples=crop, seed=training_args.seed)
    if probe_epochs and not freeze_backbone:
        net.freeze_backbone()
        probe_args = dataclasses.replace(
            training_args, num_train_epochs=probe_epochs, learning_rate=probe_learning_rate, eval_strategy="no",
            save_strategy="no", load_best_model_at_end=False, output_dir=str(Path(training_args.output_dir) / "probe"))
        probe = Trainer(model=net, args=probe_args, train_dataset=train_dataset, data_collator=collate)
        adapt_trainer_logs(probe)
        probe.train()
        net.freeze_backbone(False)
    if freeze_backbone:
        net.freeze_backbone()
    trainer = Trainer(
        model=net,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=WindowDataset(validation, regression) if validation else None,
        data_collator=collate,
        compute_metrics=window_auroc if by_auroc else None,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=early_stopping_patience)] if validation else [],
    )
    adapt_trainer_logs(trainer)
    result = trainer.train()
    net = trainer.model
    net.eval()
    best_step = None
    if trainer.state.best_model_checkpoint:
        best_step = int(Path(trainer.state.best_model_checkpoint).name.rsplit("-", 1)[-1])
    info = {"head_fit": "trainer", "global_step": result.global_step, "training_loss": result.training_loss,
            "epochs": trainer.state.epoch, "best_metric": training_args.metric_for_best_model,
            "best_validation_value": trainer.state.best_metric, "best_step": best_step,
            "freeze_backbone": freeze_backbone}
    return net, info


def finetune(
    task: str,
    data_dir: str | Path,
    model: str,
    output_dir: str | Path,
    training_args=None,
    *,
    dataset_options: dict | None = None,
    seed: int = 0,
    pooling: str | None = None,
    freeze_backbone: bool = False,
    early_stopping_patience: int = DEFAULT_EARLY_STOPPING_PATIENCE,
    n_bootstrap: int = 1000,
    keep_checkpoints: bool = False,
    crop_seconds: float | None = None,
    feature_extractor_options: dict | None = None,
    head_fit: str | None = None,
) -> dict:
    """Fine-tune `model` on `task` with the data in `data_dir`; returns the metrics written to `metrics.json`.

    Args:
        task: "vt-false-alarm", "af" or "abp".
        model: a preset ("base", "large", "huge": random init), a checkpoint directory or a Hub repo id.
        training_args (`TrainingArguments`, *optional*): defaults to `DEFAULT_TRAINING_ARGS` with
            `output_dir=<output_dir>/checkpoints`.
        dataset_options: passed to the task's `build_dataset` (e.g. `window_seconds`).
        freeze_backbone: train the head only (linear probe).
        crop_seconds / feature_extractor_options: on top of the task's `TASK_RECIPES` entry (`crop_seconds=0`: none).
    """
    from ..reports.cards import write_model_card
    from .evaluation import evaluate_features

    recipe = task_recipe(task, crop_seconds, feature_extractor_options, head_fit)
    resolve_model(model)  # a bad --model fails before the data set is built

    module = get_task(task)
    output_dir = Path(output_dir)
    training_args = training_args or training_arguments(output_dir / "checkpoints", seed=seed)
    dataset = build_task_table(task, data_dir, seed=seed, **(dataset_options or {}))
    feature_extractor = load_feature_extractor(model, **recipe["feature_extractor"])
    features, rejected = extract_features(dataset, feature_extractor)
    check_classes(task, features, data_dir)
    by_split = {s: [f for f in features if f["split"] == s] for s in ("train", "validation", "test")}
    empty = [s for s, rows in by_split.items() if not rows]
    if empty:
        raise ValueError(
            f"{task}: the record-level split left {empty} empty ({ {s: len(r) for s, r in by_split.items()} } windows); "
            "use more records (each class needs at least 3 records) or other split fractions."
        )
    regression = module.PROBLEM == "regression"
    net, train_info = train_head(task, model, by_split["train"], by_split["validation"], training_args,
                                 pooling=pooling, freeze_backbone=freeze_backbone,
                                 early_stopping_patience=early_stopping_patience,
                                 crop_seconds=recipe["crop_seconds"], head_fit=recipe["head_fit"])

    metadata = dataset_metadata(dataset)
    validation = evaluate_features(task, net, by_split["validation"], n_bootstrap=0, choose_threshold=True)
    if not regression:
        net.config.decision_threshold = validation["threshold"]
    test = evaluate_features(task, net, by_split["test"], n_bootstrap=n_bootstrap, return_predictions=True)
    metrics = {
        "task": task,
        "model": model,
        "data_dir": str(data_dir),
        "split_unit": "record",
        "seed": seed,
        "records_per_split": metadata.get("records_per_split"),
        "windows_per_split": {s: len(rows) for s, rows in by_split.items()},
        "skipped_records": metadata.get("skipped_records"),
        "skipped_windows": metadata.get("skipped_windows"),
        "feature_extractor_notes": dict(rejected),
        "train": train_info,
        "validation": validation,
        "test": test,
        "decision_threshold": None if regression else net.config.decision_threshold,
        "dataset_options": dataset_options or {},
        "n_bootstrap": n_bootstrap,
    }
    if not is_main_process(training_args):  # under torchrun / accelerate launch every rank gets here
        return metrics
    output_dir.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(output_dir)
    feature_extractor.save_pretrained(output_dir)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    (output_dir / "splits.json").write_text(json.dumps(metadata.get("splits", {}), indent=1, sort_keys=True) + "\n")
    write_model_card(output_dir, task, metrics, net.config)
    if not keep_checkpoints:
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    return metrics


__all__ = [
    "DEFAULT_EARLY_STOPPING_PATIENCE",
    "DEFAULT_TRAINING_ARGS",
    "TASK_RECIPES",
    "WindowDataset",
    "finetune",
    "load_feature_extractor",
    "load_model",
    "task_config_overrides",
    "task_recipe",
    "train_head",
    "training_arguments",
    "training_defaults",
    "window_auroc",
]
