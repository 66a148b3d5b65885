"""`qualityfm quickstart`: quality -> pairs -> pretraining -> every method on the same folds -> report."""

from __future__ import annotations

import argparse

from .device import add_device_argument, resolve_device
from .errors import QualityFMCLIError

EXAMPLES = """examples:
  qualityfm quickstart                                  # the bundled PhysioNet records (VT alarms, AF ECGs)
  qualityfm quickstart --tasks af --steps 10 --output /tmp/qs     # a faster look at one task
  qualityfm quickstart --data my_vt_alarm_records/ --tasks vt-false-alarm --device cuda --steps 2000
"""
TASKS = ("vt-false-alarm", "af")


def quickstart_command_parser(subparsers):
    from ..quickstart import DEFAULT_BATCH_SIZE, DEFAULT_FINETUNE_EPOCHS, DEFAULT_FOLDS, DEFAULT_STEPS

    parser = subparsers.add_parser(
        "quickstart", help="Run the whole method end to end on bundled real ICU records and write a report.",
        description="Scores quality and builds pairs on 12 full VT-alarm records, pretrains a base model for a few "
        "steps, then cross-validates by record, on the same folds, the shipped pretrained-base encoder (fine-tuned "
        "and as a frozen probe), a random initialisation and the transparent baselines for VT false alarms (231 "
        "records) and AF (200 ECGs). Writes report.md, summary.json and figures to --output.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="qualityfm-quickstart", help="report directory (default: %(default)s)")
    parser.add_argument("--data", default=None,
                        help="your own VT-alarm WFDB records (labels in labels.csv or header comments), used for the "
                        "pairs, the pretraining and the VT comparison (default: the bundled records)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS),
                        help="clinical tasks to compare (default: both)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="pretraining steps of the demonstration (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="pairs per pretraining step (default: %(default)s)")
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS,
                        help="cross-validation folds by record (default: %(default)s)")
    parser.add_argument("--finetune-epochs", type=float, default=DEFAULT_FINETUNE_EPOCHS,
                        help="fine-tuning epochs in each fold (default: %(default)s)")
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=quickstart_command)
    return parser


def quickstart_command(args) -> int:
    from pathlib import Path

    from ..quickstart import run_quickstart

    if args.data is not None and not Path(args.data).is_dir():
        raise QualityFMCLIError(f"--data {args.data} is not a directory; pass a folder of WFDB records (.hea + .mat).")
    for name, value, least in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 1),
                               ("--folds", args.folds, 2), ("--finetune-epochs", args.finetune_epochs, 1)):
        if value < least:
            raise QualityFMCLIError(f"{name} must be >= {least}; got {value}.")
    try:
        run_quickstart(args.output, data_dir=args.data, steps=args.steps, batch_size=args.batch_size,
                       device=resolve_device(args), finetune_epochs=args.finetune_epochs, folds=args.folds,
                       seed=args.seed, tasks=tuple(dict.fromkeys(args.tasks)))
    except (ValueError, FileNotFoundError) as err:
        raise QualityFMCLIError(str(err)) from err
    return 0
