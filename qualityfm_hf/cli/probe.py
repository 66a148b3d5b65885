"""`qualityfm probe`: linear probe and k-NN on frozen-encoder embeddings, scored by repeated record-level
cross-validation (a thin layer over `qualityfm_hf.finetuning.probing`)."""

from __future__ import annotations

import argparse
import json

from .embed import add_model_arguments, embed_frame, one_line
from .errors import QualityFMCLIError

PROBE_EXAMPLES = """examples:
  qualityfm probe --model base --task vt-false-alarm --data qualityfm_hf/data/physionet2015_vt_prealarm
  qualityfm probe --model runs/pretrain/encoder --task af --data qualityfm_hf/data/physionet2017_af --repeats 10 --json
  qualityfm probe --task vt-false-alarm --embeddings vt.parquet          (reuse `qualityfm embed --output vt.parquet`)

Every fold is split by record; C (logistic) and alpha (ridge) are chosen by an inner record-grouped CV on the
training fold only. AUROC (MAE for abp) is mean ± SD over repeats; the 95% CI is a record-level bootstrap of the
repeat-averaged out-of-fold scores.
"""
METHOD_NAMES = {"linear": "linear probe", "knn": "k-NN", "baseline_mae": "training-mean baseline"}


def probe_command_parser(subparsers):
    parser = subparsers.add_parser(
        "probe",
        help="Linear probe + k-NN of a frozen encoder on a task, by repeated record-level cross-validation.",
        description="Embed the task's windows with the frozen encoder of --model (or read --embeddings), then score "
        "a linear probe and a k-NN classifier (ridge and k-NN regressors for abp) out of fold.",
        epilog=PROBE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser, required=False)
    parser.add_argument("--embeddings", default=None,
                        help="Parquet file from `qualityfm embed` to probe instead of embedding --model on --data.")
    parser.add_argument("--folds", type=int, default=5, help="Record-level folds per repeat (default 5).")
    parser.add_argument("--repeats", type=int, default=5, help="Repeats with re-drawn folds (default 5).")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="Bootstrap resamples for the 95%% CIs.")
    parser.add_argument("--json", action="store_true", help="Print all results as JSON.")
    parser.set_defaults(func=probe_command)
    return parser


def load_frame(args):
    from ..finetuning.probing import read_embeddings

    if args.embeddings is not None:
        if args.model is not None or args.data is not None:
            raise QualityFMCLIError("pass either --embeddings FILE or --model and --data, not both; --embeddings "
                                    "reuses the windows and encoder of `qualityfm embed`.")
        try:
            return read_embeddings(args.embeddings)
        except (ValueError, OSError) as err:
            raise one_line(err) from None
    if args.model is None or args.data is None:
        missing = " and ".join(name for name, value in (("--model", args.model), ("--data", args.data)) if value is None)
        raise QualityFMCLIError(f"expected --model and --data (or --embeddings FILE from `qualityfm embed`); {missing} "
                                "missing. Pass them, or embed first with `qualityfm embed --output FILE`.")
    return embed_frame(args)


def format_interval(mean: float, sd: float, ci: list[float] | None, digits: int) -> str:
    text = f"{mean:.{digits}f} ± {sd:.{digits}f}"
    return text if ci is None else f"{text} (95% CI {ci[0]:.{digits}f}–{ci[1]:.{digits}f})"


def summary_lines(result: dict) -> list[str]:
    lines = [f"{result['task']}: {result['n_windows']} windows from {result['n_records']} records"
             + (f" ({result['n_positive_records']} positive)" if result["n_positive_records"] is not None else "")
             + f", {result['folds']} record-level folds × {result['repeats']} repeats, seed {result['seed']}"]
    if result["problem"] == "binary":
        lines.append(", ".join(f"{METHOD_NAMES[m]} AUROC {format_interval(r['auroc_mean'], r['auroc_sd'], r['ci95'], 3)}"
                               for m, r in ((m, result[m]) for m in ("linear", "knn"))))
    else:
        for method in ("linear", "knn", "baseline_mae"):
            targets = ", ".join(f"{name.upper()} {format_interval(r['mae_mean'], r['mae_sd'], r['ci95'], 1)}"
                                for name, r in result[method].items())
            lines.append(f"{METHOD_NAMES[method]} MAE (mmHg): {targets}")
    lines += [f"note: {note}" for note in result["notes"]]
    return lines


def probe_command(args) -> int:
    from ..finetuning.probing import probe_frame

    if args.folds < 2 or args.repeats < 1 or args.n_bootstrap < 0:
        raise QualityFMCLIError(f"expected --folds >= 2, --repeats >= 1 and --n-bootstrap >= 0; got {args.folds}, "
                                f"{args.repeats} and {args.n_bootstrap}.")
    frame = load_frame(args)
    try:
        result = probe_frame(frame, args.task, folds=args.folds, repeats=args.repeats, seed=args.seed,
                             n_bootstrap=args.n_bootstrap)
    except ValueError as err:
        raise one_line(err) from None
    result["source"] = args.embeddings or args.data
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return 0
    print("\n".join(summary_lines(result)))
    return 0
