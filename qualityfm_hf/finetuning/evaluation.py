"""Evaluate and apply fine-tuned QualityFM task heads: batched prediction, metrics with bootstrap CIs, ROC and
Bland–Altman plots, per-record prediction, and the model card written by `finetune`.

Classification metrics are per **record** (the mean probability of its windows), so bootstrap resamples records;
ABP metrics are per window, and their bootstrap resamples records (all windows of a record together).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..tasks.metrics import bootstrap_ci, classification_metrics, regression_metrics
from ..tasks.metrics import choose_threshold as select_threshold
from ..tasks.metrics import classification as cls_metrics
from ..tasks.metrics import regression as reg_metrics
from .task_data import (
    HEAD_TO_TASK,
    build_task_table,
    checkpoint_task,
    collate,
    extract_features,
    extract_row,
    get_task,
    head_class,
    inference_crop_samples,
    window_crops,
)

REGRESSION_CI_METRICS = {
    "sbp_mae": lambda t, p: reg_metrics.mean_absolute_error(t[:, 0], p[:, 0]),
    "dbp_mae": lambda t, p: reg_metrics.mean_absolute_error(t[:, 1], p[:, 1]),
}


def predict_features(model, features: list[dict], batch_size: int = 32) -> np.ndarray:
    """Model outputs for `extract_features` rows: `(n,)` probability of class 1 (binary), `(n, k)` class
    probabilities (multi-class) or `(n, 2)` [SBP, DBP] mmHg (regression).

    A model fine-tuned on random crops (`config.crop_seconds`) scores each window as the mean over half-overlapping
    crops of that length (test-time averaging), so it sees inputs like those it was trained on."""
    import torch

    model.eval()
    crop = inference_crop_samples(model.config)
    crops, owner = [], []
    for i, item in enumerate(features):
        pieces = window_crops(item, crop)
        crops.extend(pieces)
        owner.extend([i] * len(pieces))
    outputs = []
    with torch.no_grad():
        for start in range(0, len(crops), batch_size):
            batch = collate(crops[start:start + batch_size])
            batch = {k: v.to(model.device) for k, v in batch.items()}
            logits = model(**batch).logits.float().cpu()
            if getattr(model.config, "problem_type", None) == "regression":
                outputs.append(logits.numpy())
            elif logits.shape[-1] == 1:
                outputs.append(torch.sigmoid(logits[:, 0]).numpy())
            else:
                outputs.append(torch.softmax(logits, -1).numpy())
    if not outputs:
        return np.zeros(0)
    scores = np.concatenate(outputs)
    if crop is None:
        return scores
    owner = np.asarray(owner)
    return np.stack([scores[owner == i].mean(0) for i in range(len(features))])


def per_record(features: list[dict], scores: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Mean score and the label of each record, in first-seen order."""
    records = list(dict.fromkeys(f["record"] for f in features))
    index = {r: i for i, r in enumerate(records)}
    sums, counts = np.zeros((len(records),) + scores.shape[1:]), np.zeros(len(records))
    labels = np.zeros(len(records))
    for f, s in zip(features, scores):
        sums[index[f["record"]]] += s
        counts[index[f["record"]]] += 1
        labels[index[f["record"]]] = float(np.asarray(f["labels"]).reshape(-1)[0])
    return records, sums / counts.reshape((-1,) + (1,) * (scores.ndim - 1)), labels


def grouped_bootstrap(metric_fn, groups, truth: np.ndarray, pred: np.ndarray, n_resamples: int,
                      seed: int = 0) -> tuple[float, float, float]:
    """`(point, low, high)`: percentile 95% interval resampling whole groups (records), so correlated windows of a
    record move together; `tasks.metrics.bootstrap_ci` with `groups`. Resamples where the metric is undefined (AUROC
    of one class) are skipped; NaN bounds when all are."""
    return bootstrap_ci(metric_fn, truth, pred, n_resamples=n_resamples, seed=seed, groups=groups,
                        warn_undefined=False)


def evaluate_features(task: str, model, features: list[dict], *, n_bootstrap: int = 1000,
                      choose_threshold: bool = False, return_predictions: bool = False, batch_size: int = 32) -> dict:
    """Metrics of `model` on `features`; with `choose_threshold`, the threshold that maximises the task's criterion
    here (call it on VALIDATION features only) is used and returned as `threshold`."""
    module = get_task(task)
    scores = predict_features(model, features, batch_size=batch_size)
    if module.PROBLEM == "regression":
        truth = np.stack([f["labels"] for f in features]).astype(np.float64)
        naive = getattr(model.config, "train_naive_mae", None)
        result = regression_metrics(truth, scores, naive_mae=naive)
        if n_bootstrap:
            groups = [f["record"] for f in features]
            result["ci95"] = {name: list(grouped_bootstrap(fn, groups, truth, scores, n_bootstrap))
                              for name, fn in REGRESSION_CI_METRICS.items()}
        if return_predictions:
            result["predictions"] = [{"record": f["record"], "sbp": float(p[0]), "dbp": float(p[1]),
                                      "sbp_true": float(t[0]), "dbp_true": float(t[1])}
                                     for f, p, t in zip(features, scores, truth)]
        return result
    if scores.ndim == 2:  # multi-class: score AF (class 1) against the rest; accuracy over all classes
        multi_accuracy = float(np.mean(scores.argmax(1) == np.array([f["labels"] for f in features]).reshape(-1)))
        scores = scores[:, 1]
    else:
        multi_accuracy = None
    records, probs, labels = per_record(features, scores)
    labels = (labels == 1).astype(np.int64)
    threshold = getattr(model.config, "decision_threshold", None) or 0.5
    if choose_threshold:
        if labels.min() == labels.max():
            warnings.warn(f"{task}: the validation split has one class only; keeping threshold {threshold}.", stacklevel=2)
        else:
            threshold = select_threshold(labels, probs, module.THRESHOLD_CRITERION)
    result = classification_metrics(labels, probs, threshold)
    result["threshold_criterion"] = module.THRESHOLD_CRITERION
    result["unit"] = "record"
    if multi_accuracy is not None:
        result["multiclass_accuracy_windows"] = multi_accuracy
    if n_bootstrap:
        result["ci95"] = {}
        for name in module.HEADLINE_METRICS:
            fn = getattr(cls_metrics, {"f1": "f1_score"}.get(name, name))
            metric = fn if name in ("auroc", "auprc") else (lambda t, p, fn=fn: fn(t, p, threshold))
            result["ci95"][name] = list(bootstrap_ci(metric, labels, probs, n_resamples=n_bootstrap))
    if return_predictions:
        result["predictions"] = [{"record": r, "probability": float(p), "label": int(y)}
                                 for r, p, y in zip(records, probs, labels)]
    return result



def load_task_model(model_dir: str | Path, task: str | None = None):
    """Model + feature extractor of a fine-tuned checkpoint; `task` (when given) must match the checkpoint's head."""
    from ..modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor
    from ..pretrained import resolve_model

    model_dir = resolve_model(str(model_dir))

    found = checkpoint_task(model_dir)
    if found is None:
        raise ValueError(
            f"{model_dir} holds no task head (architectures lists none of {sorted(HEAD_TO_TASK)}); fine-tune it first "
            "with `qualityfm finetune`."
        )
    if task is not None and found != task:
        raise ValueError(
            f"{model_dir} is a {get_task(found).HEAD_CLASS} checkpoint for task {found!r}, not {task!r}; pass "
            f"--task {found} or a {task} checkpoint."
        )
    from safetensors import SafetensorError

    try:
        model, info = head_class(found).from_pretrained(str(model_dir), output_loading_info=True)
    except SafetensorError as err:
        raise ValueError(f"{model_dir}: the weights file is damaged ({err}); re-save or re-download the model.") from None
    # A fine-tuned model must load whole: a weight that is missing (initialised at random), left over or of another
    # shape means config.json and the weights no longer belong together, and its predictions would be wrong.
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        summary = "; ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {sorted(map(str, v))[0]})"
                            for k, v in problems.items())
        raise ValueError(f"{model_dir}: config.json does not match the saved weights ({summary}); re-save the model "
                         "or restore its config.json.")
    feature_extractor = (QualityFMFeatureExtractor.from_pretrained(str(model_dir))
                         if (Path(model_dir) / "preprocessor_config.json").is_file() else QualityFMFeatureExtractor())
    return found, model, feature_extractor


def trained_records(model_dir: str | Path) -> set[str]:
    """Records a fine-tuned folder learned from: train and validation records of `splits.json` (`--cv 0`), or every
    record of `cv_predictions.json` (the cross-validated default trains the final model on all of them)."""
    import json

    folder = Path(str(model_dir))
    if (folder / "splits.json").is_file():
        splits = json.loads((folder / "splits.json").read_text())
        return {record for record, split in splits.items() if split != "test"}
    if (folder / "cv_predictions.json").is_file():
        return {row["record"] for row in json.loads((folder / "cv_predictions.json").read_text())}
    return set()


def evaluate_directory(task: str, model_dir: str | Path, data_dir: str | Path, *, plot: str | Path | None = None,
                       n_bootstrap: int = 1000, dataset_options: dict | None = None, device: str = "cpu",
                       batch_size: int = 32) -> dict:
    """Evaluate a fine-tuned checkpoint on ALL records of `data_dir` (the split column is ignored), on `device`."""
    task, model, feature_extractor = load_task_model(model_dir, task)
    model.to(device)
    dataset = build_task_table(task, data_dir, **(dataset_options or {}))
    features, rejected = extract_features(dataset, feature_extractor)
    if not features:
        raise ValueError(f"{data_dir}: the feature extractor rejected every window ({dict(rejected)}).")
    seen = sorted({f["record"] for f in features} & trained_records(model_dir))
    if seen:
        warnings.warn(
            f"{len(seen)} of the evaluated records (e.g. {', '.join(seen[:3])}) trained or early-stopped {model_dir} "
            "(its splits.json / cv_predictions.json); metrics on them are not a test result.", stacklevel=2)
    result = evaluate_features(task, model, features, n_bootstrap=n_bootstrap, return_predictions=bool(plot),
                               batch_size=batch_size)
    result.update(task=task, model=str(model_dir), data_dir=str(data_dir), windows=len(features),
                  feature_extractor_notes=dict(rejected), records_seen_in_training=len(seen))
    if plot:
        plot_results(task, result, plot)
        result["plot"] = str(plot)
    result.pop("predictions", None)
    return result


def plot_results(task: str, result: dict, path: str | Path) -> None:
    """ROC curve (classification) or Bland–Altman plots of SBP and DBP (regression) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictions = result["predictions"]
    if get_task(task).PROBLEM == "regression":
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, name in zip(axes, ("sbp", "dbp")):
            truth = np.array([p[f"{name}_true"] for p in predictions])
            pred = np.array([p[name] for p in predictions])
            mean, diff = (truth + pred) / 2, pred - truth  # device minus reference, as the metrics
            md, sd = diff.mean(), diff.std(ddof=1) if diff.size > 1 else 0.0
            ax.scatter(mean, diff, s=8, alpha=0.6)
            for y, style in ((md, "-"), (md + 1.96 * sd, "--"), (md - 1.96 * sd, "--")):
                ax.axhline(y, color="k", linestyle=style, linewidth=1)
            ax.set(title=f"{name.upper()} Bland–Altman (ME {md:+.1f} ± {sd:.1f} mmHg)",
                   xlabel="mean of reference and prediction (mmHg)", ylabel="prediction − reference (mmHg)")
    else:
        from sklearn.metrics import roc_curve

        labels = np.array([p["label"] for p in predictions])
        probs = np.array([p["probability"] for p in predictions])
        fig, ax = plt.subplots(figsize=(5, 5))
        if labels.min() != labels.max():
            fpr, tpr, _ = roc_curve(labels, probs)
            ax.plot(fpr, tpr, label=f"AUROC {result['auroc']:.3f}")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1)
        ax.set(title=f"ROC: {task} ({len(labels)} records)", xlabel="1 − specificity", ylabel="sensitivity")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def predict_records(model_dir: str | Path, records: list[str | Path], window_seconds: float | None = None, *,
                    device: str = "cpu", batch_size: int = 32) -> list[dict]:
    """Per-record predictions: probability and label (classification) or median SBP/DBP over windows (ABP).

    A record that cannot be read or has no usable window gets `{"record": ..., "error": why}` and the others are
    still predicted."""
    from ..recordings.io import expand_records, find_channel, read_recording

    records = expand_records(records)
    task, model, feature_extractor = load_task_model(model_dir)
    model.to(device)
    module = get_task(task)
    kwargs = {} if window_seconds is None else {"window_seconds": window_seconds}
    if task == "abp":
        kwargs["with_targets"] = False
    from ..utils.progress import progress_bar

    results = []
    for path in progress_bar(records, desc="predict", unit="record"):
        try:
            recording = read_recording(path)
        except Exception as err:  # one unreadable record (truncated, damaged header) must not cost the others
            reason = " ".join(str(err).split()) or type(err).__name__
            results.append({"record": str(path), "error": f"could not be read: {reason}"})
            continue
        rows, reason = module.record_windows(recording, find_channel, **kwargs)
        if reason or not rows:
            results.append({"record": str(path), "error": reason or "no window"})
            continue
        features = [out for row in rows
                    if (out := extract_row(feature_extractor, row["signals"], row["channel_mask"],
                                           row["sampling_rate"])[0]) is not None]
        if not features:
            results.append({"record": str(path), "error": "every window rejected by the feature extractor"})
            continue
        scores = predict_features(model, features, batch_size=batch_size)
        entry = {"record": str(path), "task": task, "windows": len(features)}
        if module.PROBLEM == "regression":
            entry.update(sbp_mmhg=float(np.median(scores[:, 0])), dbp_mmhg=float(np.median(scores[:, 1])))
        else:
            probs = scores[:, 1] if scores.ndim == 2 else scores
            probability = float(probs.mean())
            threshold = model.config.decision_threshold or 0.5
            entry.update(probability=probability, threshold=threshold,
                         prediction=model.config.id2label[int(probability >= threshold)])
        results.append(entry)
    return results


__all__ = [
    "evaluate_directory",
    "evaluate_features",
    "grouped_bootstrap",
    "load_task_model",
    "per_record",
    "plot_results",
    "predict_features",
    "predict_records",
]
