"""Cross-validated fine-tuning recipes and transparent baselines on the same record-level folds (CLINICAL.md).

Each `--variant NAME` is a fine-tuning recipe (see VARIANTS); every variant runs on the same folds (`--seed` fixes
them), and one JSON line per variant is appended to `--output`, so an interrupted benchmark keeps what it finished.

    python benchmarks/clinical_cv.py --task af --data ../shared/data/physionet2017_af --model pretrained-base \
        --variant cli-default --variant long --folds 5 --repeats 1 --seed 1000 --output results.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

# The default schedule ("long"; finetuning.DEFAULT_TRAINING_ARGS) spelled out, so development variants stay fixed.
LONG = dict(num_train_epochs=30, learning_rate=1e-4, warmup_steps=0.1, lr_scheduler_type="cosine",
            metric_for_best_model="auroc", greater_is_better=True)
BANDPASS_ROBUST = dict(bandpass=True, normalization="robust_channel")

# name -> (TrainingArguments overrides, finetune_cv options); "cli-default" is whatever `qualityfm finetune` uses.
VARIANTS = {
    "cli-default": ({}, {}),
    # A linear probe: the head alone on the frozen encoder, at a head-sized learning rate.
    "cli-default-probe": (dict(learning_rate=1e-3), dict(freeze_backbone=True)),
    # The default schedule without the task's crops and preprocessing (whole windows, joint min-max).
    "cli-default-plain": ({}, dict(crop_seconds=0.0, feature_extractor_options=dict(bandpass=False,
                                                                                  normalization="minmax_joint"))),
    "cli-default-lpft5": ({}, dict(probe_epochs=5.0)),
    # AF: the default recipe without the rhythm statistics in the head (the AF recipe before 2026-12-02).
    "cli-default-norhythm": ({}, dict(feature_extractor_options=dict(rhythm_features=False))),
    "cli-default-max": ({}, dict(pooling="max")),
    # ABP: fine-tuning encoder and head with the Trainer instead of the default closed-form ridge head.
    "cli-default-trainer": ({}, dict(head_fit="trainer")),
    # The training schedule before issue 9 (5 epochs at one lr, early stopping on the validation loss). Its crop and
    # preprocessing are the task's recipe (TASK_RECIPES), except in the seed-1000 runs, which predate the recipes.
    "old-default": (dict(num_train_epochs=5, learning_rate=1e-4, metric_for_best_model="loss", greater_is_better=False,
                         warmup_steps=0, lr_scheduler_type="linear"), dict(crop_seconds=None, early_stopping_patience=3)),
    **{name: (dict(LONG, **extra_args), dict(early_stopping_patience=8, **options))
       for name, extra_args, options in (
           ("long", {}, {}),
           ("long-crop10", {}, dict(crop_seconds=10.0)),
           ("long-crop6.7", {}, dict(crop_seconds=6.67)),
           ("long-crop10-bandpass-robust", {}, dict(crop_seconds=10.0, feature_extractor_options=BANDPASS_ROBUST)),
           ("long-bandpass-robust", {}, dict(feature_extractor_options=BANDPASS_ROBUST)),
           ("long-bandpass-robust-max", {}, dict(pooling="max", feature_extractor_options=BANDPASS_ROBUST)),
           ("long-lr3e-4-bandpass-robust", dict(learning_rate=3e-4), dict(feature_extractor_options=BANDPASS_ROBUST)),
           ("long-crop10-bandpass-robust-lr3e-4", dict(learning_rate=3e-4),
            dict(crop_seconds=10.0, feature_extractor_options=BANDPASS_ROBUST)),
       )},
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default="pretrained-base")
    parser.add_argument("--variant", action="append", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from qualityfm_hf.finetuning import training_arguments
    from qualityfm_hf.finetuning.finetune_cv import finetune_cv

    args.output.parent.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(args.variant):
        overrides, options = VARIANTS[name]
        started = time.time()
        with tempfile.TemporaryDirectory(prefix="qfm-cv-") as workdir:
            training_args = training_arguments(Path(workdir) / "checkpoints", seed=args.seed,
                                               disable_tqdm=True, **overrides)
            metrics = finetune_cv(args.task, args.data, args.model, workdir, training_args, cv=args.folds,
                                  repeats=args.repeats, seed=args.seed, final=False, n_bootstrap=1000,
                                  baselines=args.baselines and i == 0, quiet=True, **options)
        cv = metrics["cross_validation"]
        # "init" is the starting checkpoint; "model" holds the model's cross-validation results (beside the baselines').
        row = {"task": args.task, "init": args.model, "variant": name, "folds": args.folds, "repeats": args.repeats,
               "seed": args.seed, "records": cv["records"], "seconds": round(time.time() - started, 1),
               "training_args": overrides, "options": options, "head_fit": metrics["recipe"].get("head_fit"),
               **{method: {"over_folds": r["over_folds"], "pooled_oof": r["pooled_oof"],
                           "fold_epochs": [f.get("epochs") for f in r["folds"]]}
                  for method, r in cv.items() if isinstance(r, dict) and "over_folds" in r}}
        print(json.dumps({"variant": name, **{m: v["over_folds"] for m, v in row.items() if isinstance(v, dict)
                                              and "over_folds" in v}}, default=float), flush=True)
        with open(args.output, "a") as handle:
            handle.write(json.dumps(row, default=float) + "\n")


if __name__ == "__main__":
    main()
