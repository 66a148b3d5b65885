"""Linear (and k-NN) heads on frozen-encoder embeddings, fitted with record-level rigour.

Shared by the probes (`probing`) and the closed-form ABP head of fine-tuning (`train.fit_ridge_head`):
`embed_windows` runs the frozen encoder over feature rows, `record_folds` splits windows by record, and each fitter
chooses its hyper-parameter (the logistic C, the ridge alpha) by an inner record-grouped CV on the data it is given
only, then refits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tasks.metrics import auroc
from .task_data import collate

MODEL_INPUTS = ("input_values", "attention_mask", "channel_mask")
LOGISTIC_C = np.logspace(-4, 2, 7)
RIDGE_ALPHAS = np.logspace(-2, 4, 7)
INNER_FOLDS = 3
MAX_NEIGHBOURS = 15


# ---------------------------------------------------------------------------------------------------------------------
# Embedding


def embed_windows(encoder, features: list[dict], batch_size: int = 32, device: str = "cpu",
                  progress: bool = True) -> np.ndarray:
    """Pooled encoder outputs of `extract_features` rows.

    Args:
        encoder (`QualityFMModel`): run in eval mode under `torch.no_grad()`; its training mode is restored after.
        features (`list[dict]`): rows with `input_values` `(2, T)`, `attention_mask` `(T,)`, `channel_mask` `(2,)`.
        batch_size, device: batches of `task_data.collate` (right-padded; the pooling ignores the padding).
        progress: show a tqdm bar over batches (stderr).

    Returns:
        `np.ndarray` of shape `(len(features), hidden_size)`, float32: `pooler_output` per window.
    """
    import torch

    from ..utils.progress import progress_bar

    out = np.zeros((len(features), encoder.config.hidden_size), dtype=np.float32)
    was_training = encoder.training
    encoder.to(device).eval()
    try:
        with torch.no_grad():
            for start in progress_bar(range(0, len(features), batch_size), desc="embedding", unit="batch",
                                      leave=True, disable=not progress):
                chunk = features[start:start + batch_size]
                batch = collate([{k: f[k] for k in MODEL_INPUTS} for f in chunk])
                batch = {k: v.to(device) for k, v in batch.items()}
                pooled = encoder(**batch, return_dict=True).pooler_output  # (B, hidden)
                out[start:start + len(chunk)] = pooled.float().cpu().numpy()
    finally:
        encoder.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Record-level folds


@dataclass
class RecordFolds:
    """`splits`: (train indices, test indices) per fold, whole records only; `note` says why folds were reduced."""

    splits: list[tuple[np.ndarray, np.ndarray]]
    n_splits: int
    requested_splits: int
    note: str | None = None


def record_folds(labels, groups, n_splits: int = 5, seed: int = 0, *, problem: str = "binary") -> RecordFolds:
    """Shuffled, seeded K-fold split in which every window of a record lands in the same fold.

    Classification uses `StratifiedGroupKFold` (class balance per fold); regression shuffles the records and cuts
    them into `n_splits` near-equal groups. When a class (or the whole set) has fewer records than `n_splits`, the
    folds are reduced to that number and `note` says so.

    Args:
        labels (`np.ndarray` of shape `(n,)` or `(n, k)`): class (0/1) or targets per window.
        groups (`np.ndarray` of shape `(n,)`): record of each window.
        problem: "binary" or "regression".

    Raises:
        ValueError: fewer than 2 records of a class (classification) or fewer than 2 records (regression).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray(groups).astype(str)
    records = np.unique(groups)
    if problem == "regression":
        available, what = len(records), "records"
    elif problem == "binary":
        y = np.asarray(labels).reshape(-1)
        counts = {int(c): np.unique(groups[y == c]).size for c in np.unique(y)}
        if len(counts) < 2:
            raise ValueError(f"record_folds needs two classes; found only label(s) {sorted(counts)} in "
                             f"{len(records)} records. Add records of the other class.")
        least = min(counts, key=counts.get)
        available, what = counts[least], f"records of class {least}"
    else:
        raise ValueError(f"problem is {problem!r}, but has to be one of ['binary', 'regression'].")
    if available < 2:
        raise ValueError(f"record-level cross-validation needs at least 2 {what}; found {available}. Add records.")
    folds, note = n_splits, None
    if available < n_splits:
        folds = available
        note = f"only {available} {what}: using {folds} folds instead of {n_splits}"
    if problem == "binary":
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(np.zeros(len(groups)), y, groups))
    else:
        shuffled = np.random.default_rng(seed).permutation(records)
        splits = []
        for test_records in np.array_split(shuffled, folds):
            test = np.isin(groups, test_records)
            splits.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return RecordFolds(splits, folds, n_splits, note)


# ---------------------------------------------------------------------------------------------------------------------
# Probes, fitted on one training fold each


def inner_splits(labels, groups, problem: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Record-grouped inner folds of a training fold for hyper-parameter choice; None when it has too few records."""
    try:
        return record_folds(labels, groups, INNER_FOLDS, seed, problem=problem).splits
    except ValueError:
        return None


def fit_linear_classifier(X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0):
    """StandardScaler + balanced LogisticRegression; C from `LOGISTIC_C` by the AUROC of an inner record-grouped CV
    on `(X, y)` only, then refit on all of it. Returns `(pipeline, C)`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def build(C: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000))

    C, splits = 1.0, inner_splits(y, groups, "binary", seed)
    if splits:
        scores = []
        for candidate in LOGISTIC_C:
            oof = np.full(len(y), np.nan)
            for train, test in splits:
                if np.unique(y[train]).size == 2:
                    oof[test] = build(candidate).fit(X[train], y[train]).predict_proba(X[test])[:, 1]
            # Pooled over the inner folds: a small inner fold often holds one class, where its own AUROC is undefined.
            scored = np.isfinite(oof)
            scores.append(auroc(y[scored], oof[scored]) if scored.any() else np.nan)
        if np.isfinite(scores).any():
            C = float(LOGISTIC_C[np.nanargmax(scores)])  # the first maximum: the strongest regularisation among ties
    return build(C).fit(X, y), C


def fit_ridge(X: np.ndarray, Y: np.ndarray, groups: np.ndarray, seed: int = 0):
    """StandardScaler + RidgeCV over `RIDGE_ALPHAS`, alpha by inner record-grouped CV MAE. Returns `(pipeline, alpha)`.

    RidgeCV's default leave-one-window-out would keep a record's other, near-identical windows in training and pick
    too little regularisation, hence the grouped folds (the unsupervised scaler sees the whole training fold)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    splits = inner_splits(Y, groups, "regression", seed)
    ridge = (RidgeCV(alphas=RIDGE_ALPHAS, cv=splits, scoring="neg_mean_absolute_error") if splits
             else RidgeCV(alphas=RIDGE_ALPHAS))
    model = make_pipeline(StandardScaler(), ridge).fit(X, Y)
    return model, float(model[-1].alpha_)


def fit_knn(X: np.ndarray, y: np.ndarray, regression: bool = False):
    """StandardScaler -> L2 normalisation -> distance-weighted k-NN (k = min(15, n_train - 1)). Euclidean distance
    between unit vectors orders neighbours as cosine distance does."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    k = max(1, min(MAX_NEIGHBOURS, len(X) - 1))
    knn = KNeighborsRegressor(k, weights="distance") if regression else KNeighborsClassifier(k, weights="distance")
    return make_pipeline(StandardScaler(), Normalizer(), knn).fit(X, y)
