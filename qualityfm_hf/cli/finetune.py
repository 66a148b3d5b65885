"""`qualityfm finetune`: fine-tune a backbone on a clinical task (a thin layer over `qualityfm_hf.finetuning`).

Options this command does not know are parsed as `transformers.TrainingArguments` (e.g. `--num_train_epochs 3
--per_device_train_batch_size 8 --learning_rate 1e-4`); `--output` sets their `output_dir` (`OUTPUT/checkpoints`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..utils.distributed import is_main_process
from .device import add_device_argument, resolve_device
from .errors import QualityFMCLIError
from .training_args import parse_training_arguments as _parse_training_arguments

TASK_CHOICES = ("vt-false-alarm", "af", "abp")


def finetune_command_parser(subparsers):
    parser = subparsers.add_parser(
        "finetune",
        help="Fine-tune QualityFM on vt-false-alarm, af or abp; saves model, feature extractor, metrics and card.",
        epilog="Unrecognised --options are passed to transformers.TrainingArguments, e.g. --num_train_epochs 3.",
    )
    parser.add_argument("--task", required=True, choices=TASK_CHOICES)
    parser.add_argument("--data", required=True, help="Folder of records with labels (see the task's docs).")
    parser.add_argument("--model", required=True,
                        help="Preset (base, large, huge: random init), a checkpoint folder or a Hub repo id.")
    parser.add_argument("--output", required=True, help="Folder for the fine-tuned model, metrics.json and README.md.")
    parser.add_argument("--window-seconds", type=float, default=None, help="Input window (task default if unset).")
    parser.add_argument("--split-seed", type=int, default=0, help="Seed of the record-level train/validation/test split.")
    parser.add_argument("--pooling", choices=("mean", "first", "max"), default=None)
    parser.add_argument("--freeze-backbone", action="store_true", help="Linear probe: train the head only.")
    parser.add_argument("--head-fit", choices=("trainer", "ridge"), default=None,
                        help="How the head is fitted: 'trainer' fine-tunes encoder and head with the Trainer; "
                        "'ridge' keeps the encoder and fits the head as a ridge regression on its embeddings "
                        "(regression tasks; the abp default, see finetuning.TASK_RECIPES).")
    parser.add_argument("--early-stopping-patience", type=int, default=8,
                        help="Epochs without a better validation AUROC (loss for abp) before stopping.")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="Bootstrap resamples for the 95%% CIs.")
    parser.add_argument("--keep-checkpoints", action="store_true", help="Keep OUTPUT/checkpoints (Trainer states).")
    parser.add_argument("--cv", type=int, default=None, metavar="K",
                        help="Record-level K-fold cross-validation of this recipe and of the transparent baselines "
                        "on the same folds, then the final model on all records (default 5, fewer when a class has "
                        "fewer records). 0: one 70/15/15 train/validation/test split instead.")
    parser.add_argument("--repeats", type=int, default=1, help="Cross-validation repeats, each with new folds.")
    parser.add_argument("--no-final", action="store_true", help="With --cv: report the cross-validation only.")
    parser.add_argument("--no-baselines", action="store_true", help="With --cv: skip the transparent baselines.")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON instead of a summary.")
    parser.add_argument("--crop-seconds", type=float, default=None,
                        help="Train on a random crop of this length of each window and average predictions over "
                        "half-overlapping crops; 0 for whole windows (default: the task's recipe, see "
                        "finetuning.TASK_RECIPES).")
    parser.add_argument("--bandpass", action=argparse.BooleanOptionalAction, default=None,
                        help="Band-pass PPG 0.5-8 Hz and ECG 0.5-40 Hz before scaling (default: the task's recipe).")
    parser.add_argument("--rhythm-features", action=argparse.BooleanOptionalAction, default=None,
                        help="Let the head also read each window's ECG RR-interval statistics (default: the task's "
                        "recipe; on for af).")
    parser.add_argument("--normalization", default=None,
                        choices=("minmax_joint", "minmax_channel", "zscore_channel", "robust_channel"),
                        help="Per-window scaling (default: the task's recipe).")
    add_device_argument(parser)
    parser.set_defaults(func=finetune_command, accepts_training_arguments=True)
    return parser


def parse_training_arguments(extra: list[str], output_dir: str, device: str | None = None):
    """`extra` CLI options as `TrainingArguments`, on top of `finetuning.train.training_defaults` and of what
    `--device` implies (`device_training_arguments`)."""
    from ..finetuning.train import training_defaults

    return _parse_training_arguments(extra, training_defaults(Path(output_dir) / "checkpoints"), "finetune", device)


def finetune_command(args) -> int:
    from ..finetuning.train import finetune

    training_args = parse_training_arguments(getattr(args, "extra", []), args.output, resolve_device(args))
    options = {} if args.window_seconds is None else {"window_seconds": args.window_seconds}
    if args.cv is not None and (args.cv < 0 or args.cv == 1) or args.repeats < 1:
        raise QualityFMCLIError(f"--cv must be 0 (one hold-out split) or at least 2 folds, and --repeats at least 1; "
                                f"got --cv {args.cv} --repeats {args.repeats}.")
    if args.cv != 0:
        return _finetune_cv(args, training_args, options)
    extractor_options = _extractor_options(args)
    try:
        metrics = finetune(
            args.task, args.data, args.model, args.output, training_args,
            dataset_options=options, seed=args.split_seed, pooling=args.pooling,
            freeze_backbone=args.freeze_backbone, early_stopping_patience=args.early_stopping_patience,
            n_bootstrap=args.n_bootstrap, keep_checkpoints=args.keep_checkpoints, crop_seconds=args.crop_seconds,
            feature_extractor_options=extractor_options, head_fit=args.head_fit,
        )
    except (ValueError, FileNotFoundError, OSError) as err:
        raise QualityFMCLIError(str(err)) from None
    if not is_main_process(training_args):  # rank 0 wrote the outputs and reports them
        return 0
    result = {"output": args.output, "test": metrics["test"], "decision_threshold": metrics["decision_threshold"]}
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return 0
    test = metrics["test"]
    shown = ", ".join(f"{k} {test[k]:.3f}" for k in ("auroc", "f1", "accuracy", "sbp_mae", "dbp_mae", "sbp_mase",
                                                         "dbp_mase") if isinstance(test.get(k), float))
    print(f"{args.task}: test split ({test.get('n', '?')} records): {shown}")
    print(f"model, metrics.json and README.md in {args.output}")
    return 0


def _extractor_options(args) -> dict:
    chosen = (("bandpass", args.bandpass), ("normalization", args.normalization),
              ("rhythm_features", args.rhythm_features))
    return {k: v for k, v in chosen if v is not None}


def _finetune_cv(args, training_args, options) -> int:
    from ..finetuning.finetune_cv import finetune_cv

    try:
        metrics = finetune_cv(
            args.task, args.data, args.model, args.output, training_args, cv=args.cv, repeats=args.repeats,
            seed=args.split_seed, dataset_options=options, pooling=args.pooling, freeze_backbone=args.freeze_backbone,
            early_stopping_patience=args.early_stopping_patience, crop_seconds=args.crop_seconds,
            feature_extractor_options=_extractor_options(args), baselines=not args.no_baselines, final=not args.no_final, n_bootstrap=args.n_bootstrap,
            keep_checkpoints=args.keep_checkpoints, head_fit=args.head_fit,
        )
    except (ValueError, FileNotFoundError, OSError) as err:
        raise QualityFMCLIError(str(err)) from None
    if not is_main_process(training_args):  # rank 0 wrote the outputs and reports them
        return 0
    cv = metrics["cross_validation"]
    summary = {method: {"over_folds": {k: v for k, v in r["over_folds"].items()}, "pooled_oof": r["pooled_oof"]}
               for method, r in cv.items() if isinstance(r, dict) and "over_folds" in r}
    if args.json:
        print(json.dumps({"output": args.output, "cross_validation": summary,
                          "decision_threshold": metrics.get("decision_threshold")}, indent=2, default=float))
        return 0
    print(f"{args.task}: {cv.get('folds', '?')}-fold cross-validation by record, {cv.get('repeats', 1)} repeat(s), "
          f"{cv.get('records', '?')} records")
    for method, r in summary.items():
        line = "  " + f"{method:22s}"
        for name, stats in r["over_folds"].items():
            line += f" {name} {stats['mean']:.3f} ± {stats['sd']:.3f}"
        pooled = r["pooled_oof"][0] if r["pooled_oof"] else {}
        for key, value in pooled.items():
            if key.endswith("_ci95"):
                line += f"  pooled {key[:-5]} [{value[0]:.3f}, {value[1]:.3f}]"
        print(line)
    print(f"per-record out-of-fold predictions in {Path(args.output) / 'cv_predictions.json'}; metrics.json and "
          f"README.md" + ("" if args.no_final else " and the final model") + f" in {args.output}")
    return 0
