"""Frozen-encoder embeddings of a clinical task's windows, and linear / k-NN probes scored by repeated record-level
cross-validation. This is how a pretrained encoder is compared with random initialisation, so the statistics are
kept honest:

- every fold is split by record (`record_folds`): no record is ever in both the training and the test fold;
- every hyper-parameter (the logistic C, the ridge alpha) is chosen by an inner record-grouped CV on the training
  fold only, then refit; scalers are fit on the training fold only;
- each repeat re-draws the folds (seed + repeat); the spread across repeats is reported, and the 95% CI is a
  record-level bootstrap of the repeat-averaged out-of-fold scores.

The CLI (`qualityfm embed`, `qualityfm probe`) is a thin layer over `embed_task`, `write_embeddings`,
`read_embeddings` and `probe_frame` / `probe_task`.
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..modeling.configuration_qualityfm import PRESETS
from ..tasks.metrics import MetricWarning, auroc
from .evaluation import grouped_bootstrap
from .linear import (  # noqa: F401  (part of the probes' API: `qualityfm probe` and the benchmarks use them here)
    INNER_FOLDS,
    LOGISTIC_C,
    MAX_NEIGHBOURS,
    MODEL_INPUTS,
    RIDGE_ALPHAS,
    RecordFolds,
    embed_windows,
    fit_knn,
    fit_linear_classifier,
    fit_ridge,
    inner_splits,
    record_folds,
)
from .task_data import build_task_table, checkpoint_task, extract_features, get_task
from .train import load_feature_extractor, load_model

EMBEDDING_COLUMNS = ("record", "label", "window_start", "embedding")
TARGET_COLUMNS = ("sbp", "dbp")  # ABP label order, as in tasks.abp.TARGET_NAMES
PARQUET_METADATA_KEY = b"qualityfm"


def check_model_name(model: str) -> None:
    """Fail early, in one line, on a model string that is neither a preset, a checkpoint folder nor a Hub id."""
    if model in PRESETS:
        return
    path = Path(model).expanduser()
    expected = (f"expected a preset {sorted(PRESETS)} (random init), a checkpoint folder with config.json "
                "(from save_pretrained) or a Hub repo id")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ValueError(f"model folder {model} has no config.json; {expected}.")
    # A Hub id is `name` or `owner/name`; anything else that does not exist is a mistyped folder.
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model
    if not path.exists() and looks_like_path:
        raise ValueError(f"model folder {model} does not exist; {expected}.")


def load_encoder(model, task: str, seed: int = 0):
    """The `QualityFMModel` of `model`: a string `load_model` accepts, or a loaded encoder / task head / pretraining
    model. A preset's random initialisation is seeded with `seed` (without touching the global RNG)."""
    import torch

    from ..modeling.modeling_qualityfm import QualityFMModel

    if isinstance(model, (str, Path)):
        model = str(model)
        check_model_name(model)
        # A fine-tuned head of another task still holds a usable encoder: load it with its own head class.
        own_task = checkpoint_task(model) if Path(model).is_dir() else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                model = load_model(own_task or task, model)
            except OSError as err:  # Hub / cache errors: say what was asked for and what is accepted
                raise ValueError(f"could not load model {model!r} ({' '.join(str(err).split())}); expected a preset "
                                 f"{sorted(PRESETS)}, a checkpoint folder with config.json or a Hub repo id.") from err
    encoder = getattr(model, "qualityfm", model)
    if not isinstance(encoder, QualityFMModel):
        raise ValueError(f"model must be a QualityFMModel, a QualityFM task head or a name load_model accepts; got "
                         f"{type(model).__name__}.")
    return encoder


def check_data_dir(data_dir: str | Path, task: str) -> None:
    """One-line errors for a missing or empty data folder (the task builders give less specific ones)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data folder {data_dir} does not exist; expected a folder of {task} records (WFDB .hea + "
                         ".mat/.dat); pass an existing folder.")
    patterns = ("*.hea", "*.mat") if task == "abp" else ("*.hea",)  # ABP also reads UCI .mat files
    if not any(next(data_dir.rglob(p), None) for p in patterns):
        raise ValueError(f"data folder {data_dir} holds no records (no {' or '.join(patterns)} files); expected "
                         f"{task} records (WFDB .hea + .mat/.dat); point it at the folder that holds them.")


# Where each task that keeps unlabelled records (`require_labels=False`) finds its labels, for the error of a folder
# in which it found none (the builders say the same when labels are required).
LABEL_SOURCES = {
    "vt-false-alarm": "PhysioNet 2015 alarm records: header comments `#True alarm` / `#False alarm`, or a labels.csv "
                      "with columns record,label (1 = true alarm, 0 = false)",
    "af": "PhysioNet 2017 ECGs with their REFERENCE.csv (record,code with N/A/O/~), or MIMIC PERform AF records "
          "named or foldered `af` / `non_af`",
}


def embed_task(model, task: str, data_dir: str | Path, *, batch_size: int = 32, device: str = "cpu",
               progress: bool = True, seed: int = 0, feature_extractor=None, require_any_label: bool = False,
               **dataset_options) -> pd.DataFrame:
    """Frozen-encoder embeddings of every window of `task`'s dataset in `data_dir`.

    Args:
        model: anything `finetuning.load_model` accepts (preset, checkpoint folder, Hub id) or a loaded
            `QualityFMModel` / task head.
        task: "vt-false-alarm", "af" or "abp".
        seed: seed of a preset's random initialisation.
        require_any_label: raise, before embedding, when no record of `data_dir` has the task's label (a folder of
            another task's records gives windows all the same, every label NaN).
        feature_extractor (*optional*): defaults to `load_feature_extractor(model)` (the pretraining default for
            presets and loaded models without a saved one).
        **dataset_options: passed to the task's `build_dataset` (e.g. `window_seconds`). Unlabelled records are
            kept (label NaN) where the task allows it.

    Returns:
        `pandas.DataFrame`, one row per window the feature extractor kept (it warns about the others): `record`
        (str), `label` (float, NaN when unknown; SBP for ABP, with `sbp` and `dbp` columns too), `window_start`
        (seconds), `embedding` (float32 array of `hidden_size`). `frame.attrs` holds task, model and hidden size.
    """
    module = get_task(task)
    check_data_dir(data_dir, task)
    encoder = load_encoder(model, task, seed)
    if feature_extractor is None:
        name = model if isinstance(model, (str, Path)) else getattr(model, "name_or_path", "")
        feature_extractor = load_feature_extractor(str(name or next(iter(PRESETS))))
    if "require_labels" in inspect.signature(module.build_dataset).parameters:
        dataset_options.setdefault("require_labels", False)
    # The builder's train/validation/test split column is ignored: the probe draws its own record-level folds.
    dataset = build_task_table(task, data_dir, **dataset_options)
    if require_any_label and task in LABEL_SOURCES and len(dataset) and max(dataset["label"]) < 0:
        records = len(set(dataset["record"]))
        raise ValueError(f"{data_dir}: none of its {records} records has a label for the {task} task, which expects "
                         f"{LABEL_SOURCES[task]}. Point --data at such a folder, or pick the --task of these records.")
    features, notes = extract_features(dataset, feature_extractor)
    if not features:
        raise ValueError(f"{data_dir}: the feature extractor rejected all {len(dataset)} windows ({dict(notes)}); "
                         "check the records' channels and sampling rates.")
    embeddings = embed_windows(encoder, features, batch_size, device, progress)
    starts = np.asarray(dataset["start_seconds"], dtype=np.float64)
    labels = np.stack([np.asarray(f["labels"], dtype=np.float64).reshape(-1) for f in features])
    labels[labels < 0] = np.nan  # -1 marks an unlabelled record (require_labels=False)
    frame = pd.DataFrame({
        "record": [str(f["record"]) for f in features],
        "label": labels[:, 0],
        "window_start": starts[[f["row"] for f in features]],
    })
    if module.PROBLEM == "regression":
        for i, name in enumerate(TARGET_COLUMNS):
            frame[name] = labels[:, i]
    frame["embedding"] = list(embeddings)
    frame.attrs.update(task=task, model=str(model) if isinstance(model, (str, Path)) else type(model).__name__,
                       hidden_size=int(embeddings.shape[1]))
    return frame


# ---------------------------------------------------------------------------------------------------------------------
# Parquet


def write_embeddings(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write an `embed_task` frame to parquet: `embedding` as a list<float32> column, `frame.attrs` as metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    missing = [c for c in EMBEDDING_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"write_embeddings needs columns {list(EMBEDDING_COLUMNS)}; missing {missing}.")
    matrix = embedding_matrix(frame)
    order = ["record"] + [c for c in frame.columns if c not in ("record", "embedding")]  # record first: column 0
    scalars = frame[order].astype({"record": str, "label": np.float64, "window_start": np.float64})
    table = pa.Table.from_pandas(scalars, preserve_index=False)
    table = table.set_column(0, "record", table.column("record").cast(pa.string()))  # not pandas' large_string
    # One flat float32 buffer plus offsets: no per-row Python lists for 10^5 windows x 512 values.
    offsets = pa.array(np.arange(len(frame) + 1, dtype=np.int32) * matrix.shape[1])
    table = table.append_column("embedding", pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1))))
    table = table.replace_schema_metadata({PARQUET_METADATA_KEY: json.dumps(frame.attrs, default=str).encode()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_embeddings(path: str | Path) -> pd.DataFrame:
    """Read a parquet file written by `write_embeddings` (`qualityfm embed`), checking its columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"embeddings file {path} does not exist; write one with `qualityfm embed --output {path}`.")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{path} is not a readable parquet file ({type(err).__name__}); expected the output of "
                         "`qualityfm embed`.") from None
    missing = [c for c in EMBEDDING_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path} has no {', '.join(map(repr, missing))} column (found {table.column_names}); "
                         f"expected columns {list(EMBEDDING_COLUMNS)} as written by `qualityfm embed`.")
    kind = table.schema.field("embedding").type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not pa.types.is_floating(kind.value_type):
        raise ValueError(f"{path}: column 'embedding' is {kind}, expected list<float32> as written by `qualityfm embed`.")
    embedding = table.column("embedding").combine_chunks()
    lengths = np.unique(embedding.value_lengths().to_numpy(zero_copy_only=False))
    if len(table) and (lengths.size != 1 or lengths[0] == 0):
        raise ValueError(f"{path}: embeddings must all have the same, non-zero length; found lengths {lengths.tolist()}.")
    matrix = embedding.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(table), -1)
    frame = table.drop(["embedding"]).to_pandas()
    frame["record"] = frame["record"].astype(str)
    frame["embedding"] = list(matrix)
    metadata = (table.schema.metadata or {}).get(PARQUET_METADATA_KEY)
    frame.attrs.update(json.loads(metadata) if metadata else {})
    return frame


def embedding_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The `embedding` column as one `(n_windows, hidden_size)` float32 array."""
    if not len(frame):
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(frame["embedding"].to_list()).astype(np.float32, copy=False)


def fold_predictions(X, y, groups, train, test, problem: str, seed: int) -> tuple[dict[str, np.ndarray], float | None]:
    """Each method fitted on `train` only and applied to `test`; returns `(predictions, chosen C or alpha)`."""
    X_train, y_train, X_test = X[train], y[train], X[test]
    if problem == "regression":
        ridge, alpha = fit_ridge(X_train, y_train, groups[train], seed)
        baseline = np.broadcast_to(y_train.mean(0), (len(test), y.shape[1]))  # the training-fold mean
        return {"linear": ridge.predict(X_test), "knn": fit_knn(X_train, y_train, True).predict(X_test),
                "baseline": baseline}, alpha
    if np.unique(y_train).size < 2:  # not reachable with >= `folds` records per class; uninformative if it were
        constant = np.full(len(test), float(y_train.mean()))
        return {"linear": constant, "knn": constant}, None
    linear, C = fit_linear_classifier(X_train, y_train, groups[train], seed)
    knn = fit_knn(X_train, y_train)
    return {"linear": linear.predict_proba(X_test)[:, 1],
            "knn": knn.predict_proba(X_test)[:, list(knn.classes_).index(1)]}, C


# ---------------------------------------------------------------------------------------------------------------------
# Scores


def mean_absolute_error(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(truth - pred)))


def summarise(metric: str, metric_fn, truth, scores, groups, n_bootstrap: int, seed: int) -> dict:
    """`<metric>_mean`, `_sd` (across repeats, ddof=1), `_per_repeat`, `ci95` (`[low, high]`, None without bootstrap)
    and the bootstrap's point estimate `<metric>_of_averaged` (the metric of the repeat-averaged out-of-fold scores)
    for `scores` `(repeats, n)`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        per_repeat = [float(metric_fn(truth, s)) for s in scores]
    averaged = scores.mean(0)
    if n_bootstrap:
        point, low, high = grouped_bootstrap(metric_fn, groups, truth, averaged, n_bootstrap, seed)
        ci95 = [low, high]
    else:
        point, ci95 = float(metric_fn(truth, averaged)), None
    return {f"{metric}_mean": float(np.mean(per_repeat)),
            f"{metric}_sd": float(np.std(per_repeat, ddof=1)) if len(per_repeat) > 1 else 0.0,
            f"{metric}_per_repeat": per_repeat, f"{metric}_of_averaged": point, "ci95": ci95}


def check_probe_inputs(embeddings, labels, groups, problem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(X (n, d) float64, y (n,) int or (n, k) float64, groups (n,) str)`, or a ValueError saying what is wrong."""
    X = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    groups = np.asarray(groups).astype(str)
    if X.ndim != 2 or len(y) != len(X) or len(groups) != len(X):
        raise ValueError(f"embeddings must be (n_windows, hidden_size) with one label and one record per window; got "
                         f"embeddings {X.shape}, labels {y.shape}, groups {groups.shape}.")
    if not np.isfinite(X).all():
        raise ValueError(f"embeddings hold {int((~np.isfinite(X)).sum())} NaN/inf values; re-embed those windows.")
    if not np.isfinite(y).all():
        bad = int((~np.isfinite(y)).reshape(len(y), -1).any(1).sum())
        raise ValueError(f"{bad} windows have NaN/inf labels; drop windows with unknown labels first (probe_frame "
                         "does).")
    if problem == "regression":
        return X, (y[:, None] if y.ndim == 1 else y), groups
    if problem != "binary":
        raise ValueError(f"problem is {problem!r}, but has to be one of ['binary', 'regression'].")
    y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    values = np.unique(y)
    if not set(values.tolist()) <= {0.0, 1.0}:
        raise ValueError(f"a binary probe needs labels 0/1; found {values[:10].tolist()}. Use the binary label set.")
    if values.size < 2:
        raise ValueError(f"the probe needs records of both classes; all {len(y)} windows "
                         f"({np.unique(groups).size} records) have label {int(values[0])}. Add records of the other "
                         "class.")
    return X, y.astype(np.int64), groups


def probe_embeddings(embeddings, labels, groups, *, problem: str = "binary", folds: int = 5, repeats: int = 5,
                     seed: int = 0, n_bootstrap: int = 1000) -> dict:
    """Linear probe and k-NN on frozen embeddings, scored by repeated record-level cross-validation.

    Repeat `r` draws record-level folds with seed `seed + r` (`record_folds`); each training fold fits, on its own
    windows only, (a) StandardScaler + LogisticRegression (balanced classes; C chosen by an inner record-grouped 3-fold
    CV) or, for regression, RidgeCV (alpha chosen the same way), and (b) a distance-weighted k-NN on L2-normalised
    standardised embeddings. The out-of-fold predictions of a repeat are scored over all windows.

    Args:
        embeddings (`np.ndarray` of shape `(n_windows, hidden_size)`).
        labels (`np.ndarray` of shape `(n_windows,)` with 0/1, or `(n_windows, k)` targets, e.g. [SBP, DBP]).
        groups (`np.ndarray` of shape `(n_windows,)`): the record of each window; folds never split a record.
        problem: "binary" (AUROC) or "regression" (MAE per target).
        folds, repeats, seed: `repeats` draws of `folds` folds (fewer when a class has fewer records; see `notes`).
        n_bootstrap: record-level bootstrap resamples for `ci95` (0 skips the interval).

    Returns:
        `dict`: per method (`linear`, `knn`) `auroc_mean`, `auroc_sd`, `auroc_per_repeat`, `auroc_of_averaged`,
        `ci95`; for regression the same with `mae_*` per target (`sbp`, `dbp`) and the training-fold-mean
        predictor's as `baseline_mae`. `linear_C_chosen` (`linear_alpha_chosen`) lists the inner-CV choice per repeat
        and fold. Also `n_windows`, `n_records`, `n_positive_records`, `folds` (used), `folds_requested`, `repeats`,
        `seed`, `n_bootstrap`, `notes`.
    """
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    X, y, groups = check_probe_inputs(embeddings, labels, groups, problem)
    if repeats < 1 or folds < 2:
        raise ValueError(f"repeats must be >= 1 and folds >= 2; got repeats={repeats}, folds={folds}.")
    methods = ("linear", "knn", "baseline") if problem == "regression" else ("linear", "knn")
    oof = {m: np.zeros((repeats,) + y.shape) for m in methods}
    chosen, used_folds, notes = [], set(), []
    # One BLAS thread: the fits are small, and threaded BLAS made lbfgs ~60x slower on a busy 2-core machine.
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
        warnings.simplefilter("always", ConvergenceWarning)
        for r in range(repeats):
            split = record_folds(y, groups, folds, seed + r, problem=problem)
            used_folds.add(split.n_splits)
            if split.note and split.note not in notes:
                notes.append(split.note)
            chosen.append([])
            for train, test in split.splits:
                assert not set(groups[train]) & set(groups[test]), "a record is in the training and the test fold"
                predictions, parameter = fold_predictions(X, y, groups, train, test, problem, seed + r)
                for method in methods:
                    oof[method][r, test] = predictions[method]
                chosen[-1].append(parameter)
    unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if unconverged:
        notes.append(f"{unconverged} logistic-regression fits stopped at max_iter=5000 before converging")
    records = np.unique(groups)
    result = {
        "problem": problem,
        "n_windows": int(len(X)),
        "n_records": int(records.size),
        "n_positive_records": None if problem == "regression" else int(np.unique(groups[y == 1]).size),
        "folds": min(used_folds),
        "folds_requested": folds,
        "repeats": repeats,
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "notes": notes,
    }
    parameter = "alpha" if problem == "regression" else "C"
    if problem == "binary":
        for method in methods:
            result[method] = summarise("auroc", auroc, y, oof[method], groups, n_bootstrap, seed)
    else:
        names = TARGET_COLUMNS if y.shape[1] == len(TARGET_COLUMNS) else [f"target_{i}" for i in range(y.shape[1])]
        for method in methods:
            key = "baseline_mae" if method == "baseline" else method
            result[key] = {name: summarise("mae", mean_absolute_error, y[:, i], oof[method][:, :, i], groups,
                                           n_bootstrap, seed) for i, name in enumerate(names)}
    result[f"linear_{parameter}_chosen"] = chosen
    return result


def probe_frame(frame: pd.DataFrame, task: str, *, folds: int = 5, repeats: int = 5, seed: int = 0,
                n_bootstrap: int = 1000) -> dict:
    """`probe_embeddings` on an `embed_task` / `read_embeddings` frame; windows with unknown labels are excluded."""
    module = get_task(task)
    stored = frame.attrs.get("task")
    if stored and stored != task:
        raise ValueError(f"the embeddings were made for task {stored!r}, not {task!r}; pass --task {stored} or "
                         f"re-embed with --task {task}.")
    columns = list(TARGET_COLUMNS) if module.PROBLEM == "regression" else ["label"]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"task {task!r} needs label column(s) {missing}; found {list(frame.columns)}. Embed with "
                         f"`qualityfm embed --task {task}`.")
    labels = frame[columns].to_numpy(dtype=np.float64)
    known = np.isfinite(labels).all(1)
    if not known.any():
        raise ValueError(f"none of the {len(frame)} windows has a label; expected {task} records with labels "
                         "(see the task's docs), e.g. a labels.csv beside VT records.")
    result = probe_embeddings(embedding_matrix(frame)[known], labels[known] if len(columns) > 1 else labels[known, 0],
                              frame["record"].to_numpy()[known], problem=module.PROBLEM, folds=folds,
                              repeats=repeats, seed=seed, n_bootstrap=n_bootstrap)
    result.update(task=task, model=frame.attrs.get("model"), unlabelled_windows_excluded=int((~known).sum()))
    return result


def probe_task(model, task: str, data_dir: str | Path, *, folds: int = 5, repeats: int = 5, seed: int = 0,
               n_bootstrap: int = 1000, batch_size: int = 32, device: str = "cpu", progress: bool = True,
               **dataset_options) -> dict:
    """`embed_task` then `probe_frame`: frozen-encoder probes of `model` on `task`'s records in `data_dir`.
    `seed` seeds both the folds and a preset's random initialisation."""
    frame = embed_task(model, task, data_dir, batch_size=batch_size, device=device, progress=progress, seed=seed,
                       **dataset_options)
    result = probe_frame(frame, task, folds=folds, repeats=repeats, seed=seed, n_bootstrap=n_bootstrap)
    result["data_dir"] = str(data_dir)
    return result


__all__ = [
    "RecordFolds",
    "embed_task",
    "embed_windows",
    "embedding_matrix",
    "load_encoder",
    "probe_embeddings",
    "probe_frame",
    "probe_task",
    "read_embeddings",
    "record_folds",
    "write_embeddings",
]
