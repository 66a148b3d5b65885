"""`qualityfm quickstart`: quality -> pairs -> pretraining -> fine-tuning -> evaluation -> report."""

from __future__ import annotations

import argparse

from .errors import QualityFMCLIError

EXAMPLES = """examples:
  qualityfm quickstart                                  # the 12 bundled PhysioNet 2015 records, 45 s on 2 cores
  qualityfm quickstart --steps 20 --output /tmp/qs      # a faster smoke run
  qualityfm quickstart --data my_wfdb_records/ --device cuda --steps 2000
"""


def quickstart_command_parser(subparsers):
    parser = subparsers.add_parser(
        "quickstart", help="Run the whole method end to end on bundled real ICU records and write a report.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="qualityfm-quickstart", help="report directory (default: %(default)s)")
    parser.add_argument("--data", default=None,
                        help="directory of your own WFDB records with VT-alarm labels (default: the bundled records)")
    parser.add_argument("--steps", type=int, default=None, help="pretraining steps (default: 120)")
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per pretraining step (default: 8)")
    parser.add_argument("--finetune-epochs", type=float, default=15.0, help="fine-tuning epochs (default: 15)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=quickstart_command)
    return parser


def quickstart_command(args) -> int:
    from pathlib import Path

    from ..quickstart import DEFAULT_BATCH_SIZE, DEFAULT_STEPS, run_quickstart

    if args.data is not None and not Path(args.data).is_dir():
        raise QualityFMCLIError(f"--data {args.data} is not a directory; pass a folder of WFDB records (.hea + .mat).")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise QualityFMCLIError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu.")
    steps = args.steps if args.steps is not None else DEFAULT_STEPS
    if steps < 1:
        raise QualityFMCLIError(f"--steps must be >= 1; got {steps}.")
    try:
        run_quickstart(args.output, data_dir=args.data, steps=steps,
                       batch_size=args.batch_size or DEFAULT_BATCH_SIZE, device=args.device,
                       finetune_epochs=args.finetune_epochs, seed=args.seed)
    except (ValueError, FileNotFoundError) as err:
        raise QualityFMCLIError(str(err)) from err
    return 0
