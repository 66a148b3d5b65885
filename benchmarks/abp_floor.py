"""Can anything simple beat the training mean on ABP across patients? (CLINICAL.md, issue 9)

Per record-level fold, SBP/DBP MASE (scale: the training-mean MAE on the fold's training labels, as `crossval`
reports it) of: the training mean, the training median (the MAE-optimal constant), ridge regression on the
pulse-arrival-time and PPG-shape features (`baselines`), and a median (quantile 0.5) linear regression on them,
which targets MAE directly.

    python benchmarks/abp_floor.py --data ../shared/data/physionet2015_vt --seed 1000 --output floor.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import QuantileRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from qualityfm_hf import baselines
    from qualityfm_hf.crossval import record_folds
    from qualityfm_hf.task_data import build_task_table

    table = build_task_table("abp", args.data).with_format("numpy")
    X = baselines.feature_matrix("abp", table)
    y = np.stack([np.asarray(label, dtype=np.float64) for label in table["label"]])
    records = np.array([str(r) for r in table["record"]])

    def median_regression(train, test):
        columns = []
        for k in range(y.shape[1]):
            model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                                  QuantileRegressor(quantile=0.5, alpha=0.05, solver="highs"))
            columns.append(model.fit(X[train], y[train, k]).predict(X[test]))
        return np.stack(columns, axis=1)

    methods = {
        "training_mean": lambda train, test: np.broadcast_to(y[train].mean(0), (test.sum(), y.shape[1])),
        "training_median": lambda train, test: np.broadcast_to(np.median(y[train], 0), (test.sum(), y.shape[1])),
        "ridge": lambda train, test: baselines.fit_predict("abp", "ridge", X[train], y[train], X[test]),
        "median_regression": median_regression,
    }
    mase = {name: [] for name in methods}
    for fold in record_folds(sorted(set(records)), None, k=args.folds, repeats=args.repeats, seed=args.seed):
        train, test = np.isin(records, fold.train), np.isin(records, fold.test)
        scale = np.abs(y[train] - y[train].mean(0)).mean(0)
        for name, predict in methods.items():
            mase[name].append((np.abs(predict(train, test) - y[test]).mean(0) / scale).tolist())
    summary = {}
    for name, values in mase.items():
        values = np.asarray(values)
        summary[name] = {"sbp_mase": [float(values[:, 0].mean()), float(values[:, 0].std())],
                         "dbp_mase": [float(values[:, 1].mean()), float(values[:, 1].std())]}
        print(f"{name:18s} SBP MASE {values[:, 0].mean():.3f} ± {values[:, 0].std():.3f}   "
              f"DBP MASE {values[:, 1].mean():.3f} ± {values[:, 1].std():.3f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"seed": args.seed, "folds": args.folds, "repeats": args.repeats,
                                       "records": len(set(records)), "windows": len(records),
                                       "summary": summary, "per_fold": mase}, indent=1) + "\n")


if __name__ == "__main__":
    main()
