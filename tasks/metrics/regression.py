"""Blood-pressure regression metrics (SBP/DBP in mmHg; pure numpy).

Errors are `y_pred - y_true` (mmHg): device minus reference, the sign convention of the AAMI / ISO 81060-2
validation standards, so a positive ME means the model over-estimates. (The paper's notes §5.3 do not fix a sign;
MAE, SD, BHS and the AAMI pass/fail do not depend on it.) Standards:

- **MASE** = MAE / MAE of the naive predictor that always outputs the *training*-label mean, with that
  naive MAE computed on the training labels (notes §5.3). The paper reports it in percent; we return a
  fraction, so 1.05 is "105%": above 1 the model is no better than predicting the training mean.
- **BHS grade** (British Hypertension Society protocol, O'Brien et al. 1993): cumulative percentage of
  |error| ≤ 5, ≤ 10, ≤ 15 mmHg; grade A needs ≥ 60/85/95 %, B ≥ 50/75/90 %, C ≥ 40/65/85 %, else D.
- **AAMI** (ANSI/AAMI/ISO 81060-2): pass when |ME| ≤ 5 mmHg and SD ≤ 8 mmHg. The standard also asks for
  ≥ 85 subjects; `n` is returned so the caller can check, but it is not enforced here (rows are windows).
"""

from __future__ import annotations

import numpy as np

from ._common import as_1d_float, check_same_length, safe_ratio, warn_undefined

# Minimum cumulative percentages at 5, 10 and 15 mmHg, best grade first.
BHS_THRESHOLDS_MMHG = (5.0, 10.0, 15.0)
BHS_GRADES = (("A", (60.0, 85.0, 95.0)), ("B", (50.0, 75.0, 90.0)), ("C", (40.0, 65.0, 85.0)))
AAMI_MAX_ABS_MEAN_ERROR_MMHG = 5.0
AAMI_MAX_SD_MMHG = 8.0


def _errors(y_true, y_pred) -> np.ndarray:
    """`y_pred - y_true` (device minus reference) as a 1-D float array, `(n,)`, after checking both inputs."""
    truth = as_1d_float(y_true, "y_true")
    pred = as_1d_float(y_pred, "y_pred")
    check_same_length(truth, pred, "y_true", "y_pred")
    if truth.size == 0:
        raise ValueError("y_true is empty; metrics need at least one sample.")
    return pred - truth


def mean_absolute_error(y_true, y_pred) -> float:
    """MAE in mmHg."""
    return float(np.mean(np.abs(_errors(y_true, y_pred))))


def mean_error(y_true, y_pred, ddof: int = 1) -> tuple[float, float]:
    """ME ± SD of `y_pred - y_true` (device minus reference) in mmHg.

    `ddof=1` (sample SD, as AAMI/ISO 81060-2 uses) by default; pass `ddof=0` to match `np.std`.
    SD is NaN with a warning when `n <= ddof`.
    """
    errors = _errors(y_true, y_pred)
    if errors.size <= ddof:
        return float(errors.mean()), warn_undefined(
            "SD of the error", f"{errors.size} sample(s) with ddof={ddof}"
        )
    return float(errors.mean()), float(errors.std(ddof=ddof))


def training_mean_mae(y_train) -> float:
    """MAE of always predicting the training mean, computed on the training labels (the MASE scale)."""
    train = as_1d_float(y_train, "y_train")
    if train.size == 0:
        raise ValueError("y_train is empty; the MASE scale needs the training labels.")
    return float(np.mean(np.abs(train - train.mean())))


def mase(y_true, y_pred, *, naive_mae: float | None = None, y_train=None) -> float:
    """MASE = MAE / naive MAE (a fraction; ×100 for the paper's percent).

    Give exactly one of `naive_mae` (precomputed with `training_mean_mae(y_train)`) or `y_train`
    (training labels of this target, `(n_train,)`). NaN with a warning when the naive MAE is 0.
    """
    if (naive_mae is None) == (y_train is None):
        raise ValueError(
            "mase needs exactly one of naive_mae or y_train; got "
            f"{'both' if y_train is not None else 'neither'}. Pass the training labels as y_train."
        )
    scale = training_mean_mae(y_train) if y_train is not None else float(naive_mae)
    if not scale > 0:
        return warn_undefined("MASE", f"the naive MAE is {scale} (constant training labels?)")
    return safe_ratio(mean_absolute_error(y_true, y_pred), scale)


def bhs_grade(y_true, y_pred) -> dict[str, float | str]:
    """BHS grade from the cumulative percentage of |error| within 5, 10 and 15 mmHg.

    Returns:
        `dict` with `within_5`, `within_10`, `within_15` (percent) and `grade` ("A", "B", "C" or "D").
    """
    abs_errors = np.abs(_errors(y_true, y_pred))
    within = [100.0 * float(np.mean(abs_errors <= t)) for t in BHS_THRESHOLDS_MMHG]
    grade = next((name for name, mins in BHS_GRADES if all(w >= m for w, m in zip(within, mins))), "D")
    return {"within_5": within[0], "within_10": within[1], "within_15": within[2], "grade": grade}


def aami_criterion(y_true, y_pred) -> dict[str, float | bool | int]:
    """AAMI pass/fail: |ME| ≤ 5 mmHg and SD ≤ 8 mmHg (sample SD).

    Returns:
        `dict` with `me`, `sd` (mmHg), `n` and `passed` (`bool`; False when SD is undefined).
    """
    me, sd = mean_error(y_true, y_pred)
    passed = bool(abs(me) <= AAMI_MAX_ABS_MEAN_ERROR_MMHG and sd <= AAMI_MAX_SD_MMHG)
    return {"me": me, "sd": sd, "n": int(np.asarray(y_true).shape[0]), "passed": passed}


def regression_metrics(
    y_true,
    y_pred,
    *,
    y_train=None,
    naive_mae: float | list[float] | None = None,
    target_names: list[str] | tuple[str, ...] | None = None,
) -> dict[str, float | str | bool | int]:
    """MAE, ME, SD, MASE (when a naive scale is given), BHS grade and AAMI for one or more targets.

    Args:
        y_true, y_pred (`np.ndarray` of shape `(n,)` or `(n, k)`): reference and predicted pressures in
            mmHg; for the ABP task `k = 2` columns `[SBP, DBP]`.
        y_train (`np.ndarray` of shape `(n_train,)` or `(n_train, k)`, *optional*): training labels for MASE.
        naive_mae (`float` or `k` floats, *optional*): precomputed MASE scale instead of `y_train`.
        target_names (`k` strings, *optional*): key prefixes; default `("sbp", "dbp")` when `k = 2`,
            else `target0`, `target1`, ... A 1-D input gets unprefixed keys.

    Returns:
        `dict`: `mae`, `me`, `sd`, `mase` (only with a scale), `bhs_within_5/10/15`, `bhs_grade`,
        `aami_passed`, `n`, each prefixed with `<name>_` for 2-D input.
    """
    truth = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if truth.shape != pred.shape or truth.ndim not in (1, 2):
        raise ValueError(
            f"y_true and y_pred must both be (n,) or (n, k) with the same shape; got {truth.shape} and "
            f"{pred.shape}. For the ABP task pass (n, 2) arrays with columns [SBP, DBP]."
        )
    if truth.ndim == 1:
        columns, prefixes = [(truth, pred)], [""]
        train_columns = [y_train]
        scales = [naive_mae]
    else:
        k = truth.shape[1]
        names = (
            list(target_names)
            if target_names is not None
            else (["sbp", "dbp"] if k == 2 else [f"target{i}" for i in range(k)])
        )
        if len(names) != k:
            raise ValueError(
                f"target_names has {len(names)} names for {k} columns; give one name per column."
            )
        columns = [(truth[:, i], pred[:, i]) for i in range(k)]
        prefixes = [f"{name}_" for name in names]
        train = None if y_train is None else np.asarray(y_train, dtype=np.float64).reshape(-1, k)
        train_columns = [None if train is None else train[:, i] for i in range(k)]
        scales = [None] * k if naive_mae is None else list(np.broadcast_to(naive_mae, (k,)))
    results: dict[str, float | str | bool | int] = {}
    for (t, p), prefix, train_col, scale in zip(columns, prefixes, train_columns, scales):
        me, sd = mean_error(t, p)
        bhs = bhs_grade(t, p)
        results[f"{prefix}mae"] = mean_absolute_error(t, p)
        results[f"{prefix}me"] = me
        results[f"{prefix}sd"] = sd
        if train_col is not None or scale is not None:
            results[f"{prefix}mase"] = mase(
                t, p, naive_mae=None if train_col is not None else scale, y_train=train_col
            )
        for key in ("within_5", "within_10", "within_15"):
            results[f"{prefix}bhs_{key}"] = bhs[key]
        results[f"{prefix}bhs_grade"] = bhs["grade"]
        results[f"{prefix}aami_passed"] = bool(
            abs(me) <= AAMI_MAX_ABS_MEAN_ERROR_MMHG and sd <= AAMI_MAX_SD_MMHG
        )
        results[f"{prefix}n"] = int(t.shape[0])
    return results
