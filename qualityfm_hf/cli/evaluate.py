"""`qualityfm evaluate`: metrics (with bootstrap 95% CIs) of a fine-tuned checkpoint on every record of a folder."""

from __future__ import annotations

import json

from .device import add_device_argument
from .errors import QualityFMCLIError
from .finetune import TASK_CHOICES

HEADLINE_KEYS = ("auroc", "auprc", "accuracy", "sensitivity", "specificity", "ppv", "f1", "physionet_score",
                 "threshold", "n", "sbp_mae", "sbp_me", "sbp_sd", "sbp_mase", "dbp_mae", "dbp_me", "dbp_sd", "dbp_mase",
                 "sbp_bhs_grade", "dbp_bhs_grade", "sbp_aami_passed", "dbp_aami_passed", "sbp_n")


def evaluate_command_parser(subparsers):
    parser = subparsers.add_parser("evaluate", help="Evaluate a fine-tuned checkpoint on all records of a folder.")
    parser.add_argument("--task", required=True, choices=TASK_CHOICES)
    parser.add_argument("--model", required=True, help="Fine-tuned checkpoint folder (from `qualityfm finetune`).")
    parser.add_argument("--data", required=True, help="Folder of labelled records the model has not seen.")
    parser.add_argument("--json", action="store_true", help="Print all metrics as JSON.")
    parser.add_argument("--plot", default=None, help="Write a ROC (classification) or Bland–Altman (ABP) PNG here.")
    parser.add_argument("--window-seconds", type=float, default=None)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32, help="Windows per forward pass (default 32).")
    add_device_argument(parser)
    parser.set_defaults(func=evaluate_command)
    return parser


def evaluate_command(args) -> int:
    from ..finetuning.evaluation import evaluate_directory
    from .embed import check_batch_and_device

    device = check_batch_and_device(args)
    options = {} if args.window_seconds is None else {"window_seconds": args.window_seconds}
    try:
        result = evaluate_directory(args.task, args.model, args.data, plot=args.plot, n_bootstrap=args.n_bootstrap,
                                    dataset_options=options, device=device, batch_size=args.batch_size)
    except (ValueError, FileNotFoundError, OSError) as err:
        raise QualityFMCLIError(str(err)) from None
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return 0
    print(f"{result['task']} on {result['data_dir']} ({result['windows']} windows)")
    for key in HEADLINE_KEYS:
        if key in result:
            value = result[key]
            ci = result.get("ci95", {}).get(key)
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"  {key:16s} {text}" + (f"  (95% CI {ci[1]:.4f} – {ci[2]:.4f})" if ci else ""))
    if args.plot:
        print(f"plot: {args.plot}")
    return 0
