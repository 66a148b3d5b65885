"""Can anything simple beat the training mean on ABP across patients? (CLINICAL.md, issue 9)

Per record-level fold, SBP/DBP MASE (scale: the training-mean MAE on the fold's training labels, as `crossval`
reports it) of: the training mean, the training median (the MAE-optimal constant), ridge regression on the
pulse-arrival-time and PPG-shape features (`baselines`), and a median (quantile 0.5) linear regression on them,
which targets MAE directly. With `--encoder MODEL`, also the ridge probe of `qualityfm probe` (`probing.fit_ridge`:
alpha by an inner record-grouped CV) on that frozen encoder's pooled embeddings of the same windows. It also prints
why they fail: how SBP variance splits between and within records,
and the Spearman correlation of each feature's record median with the record's mean SBP (no folds involved).

    python benchmarks/abp_floor.py --data ../shared/data/physionet2015_vt --seed 1000 --output floor.json
    python benchmarks/abp_floor.py --data ../shared/data/physionet2015_vt --seed 1000 --encoder pretrained-base \
        --output floor_encoder.json
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
    parser.add_argument("--encoder", help="also a ridge probe on this frozen encoder's embeddings (e.g. pretrained-base)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import QuantileRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from qualityfm_hf.finetuning import baselines
    from qualityfm_hf.finetuning.crossval import record_folds
    from qualityfm_hf.finetuning.task_data import build_task_table

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
    if args.encoder:
        from qualityfm_hf.finetuning import probing

        frame = probing.embed_task(args.encoder, "abp", args.data, progress=False)
        if list(frame["record"]) != list(records) or len(frame) != len(y):
            raise SystemExit("the embedded windows are not the table's windows; cannot compare on the same rows")
        embeddings = probing.embedding_matrix(frame).astype(np.float64)
        methods["encoder_ridge"] = lambda train, test: probing.fit_ridge(
            embeddings[train], y[train], records[train], args.seed)[0].predict(embeddings[test])
    # Between- vs within-record SBP variance, and which features follow a record's mean SBP at all.
    from scipy.stats import spearmanr

    names = sorted(set(records))
    sbp_means = np.array([y[records == r, 0].mean() for r in names])
    within = float(np.mean([y[records == r, 0].var() for r in names]))
    print(f"SBP variance (mmHg^2): between records {sbp_means.var():.1f}, within records {within:.1f}")
    feature_medians = np.array([np.nanmedian(X[records == r], axis=0) for r in names])
    correlations = {}
    for j, feature in enumerate(baselines.ABP_FEATURE_NAMES):
        ok = np.isfinite(feature_medians[:, j])
        rho, p_value = spearmanr(feature_medians[ok, j], sbp_means[ok])
        correlations[feature] = {"rho": float(rho), "p": float(p_value), "records": int(ok.sum())}
        print(f"  record median {feature:22s} vs record mean SBP: rho {rho:+.2f} (p {p_value:.2f}, {ok.sum()} records)")

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
    args.output.write_text(json.dumps({"seed": args.seed, "encoder": args.encoder, "folds": args.folds, "repeats": args.repeats,
                                       "records": len(set(records)), "windows": len(records),
                                       "sbp_variance_between_records": float(sbp_means.var()),
                                       "sbp_variance_within_records": within, "record_correlations": correlations,
                                       "summary": summary, "per_fold": mase}, indent=1) + "\n")


if __name__ == "__main__":
    main()
