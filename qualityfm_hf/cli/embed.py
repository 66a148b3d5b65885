"""`qualityfm embed`: frozen-encoder embeddings of a task's windows, written to parquet (a thin layer over
`qualityfm_hf.finetuning.probing`)."""

from __future__ import annotations

import argparse
import json

from .device import add_device_argument, resolve_device
from .errors import QualityFMCLIError
from .finetune import TASK_CHOICES

EMBED_EXAMPLES = """examples:
  qualityfm embed --model base --task vt-false-alarm --data qualityfm_hf/data/physionet2015_vt_prealarm --output vt.parquet
  qualityfm embed --model runs/pretrain/encoder --task af --data qualityfm_hf/data/physionet2017_af --output af.parquet
  qualityfm embed --model base --task abp --data records/ --output abp.parquet --device cuda --batch-size 128

The parquet file has one row per window: record, label (NaN when unknown; SBP for abp, with sbp and dbp columns),
window_start (s) and embedding (list<float32>, the encoder's pooled output). `qualityfm probe --embeddings` reads it.
"""


def embed_command_parser(subparsers):
    parser = subparsers.add_parser(
        "embed",
        help="Write frozen-encoder embeddings of a task's windows to a parquet file.",
        description="Build the task's windows from the records in --data, run the frozen encoder of --model on them "
        "and write one pooled embedding per window.",
        epilog=EMBED_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--output", required=True, help="Parquet file to write (e.g. embeddings.parquet).")
    parser.add_argument("--json", action="store_true", help="Print a JSON summary.")
    parser.set_defaults(func=embed_command)
    return parser


def add_model_arguments(parser, required: bool = True) -> None:
    """Options shared with `qualityfm probe`: what to embed and how."""
    parser.add_argument("--model", required=required,
                        help="Preset (base, large, huge: random init), a checkpoint folder or a Hub repo id.")
    parser.add_argument("--task", required=True, choices=TASK_CHOICES)
    parser.add_argument("--data", required=required, help="Folder of the task's records (see the task's docs).")
    parser.add_argument("--window-seconds", type=float, default=None, help="Input window (task default if unset).")
    parser.add_argument("--batch-size", type=int, default=32, help="Windows per forward pass (default 32).")
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="Seed of a preset's random initialisation (default 0).")
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")


def one_line(err: Exception) -> QualityFMCLIError:
    """A CLI error with the message on one line (Hub and Arrow errors span several)."""
    return QualityFMCLIError(" ".join(str(err).split()) or type(err).__name__)


def check_batch_and_device(args) -> str:
    """Check `--batch-size` and `--device`; returns the device (`resolve_device`)."""
    if args.batch_size < 1:
        raise QualityFMCLIError(f"--batch-size must be >= 1; got {args.batch_size}.")
    return resolve_device(args)


def embed_frame(args):
    """`probing.embed_task` with the command's options; errors become one-line `QualityFMCLIError`s."""
    from ..finetuning.probing import embed_task

    device = check_batch_and_device(args)
    options = {} if args.window_seconds is None else {"window_seconds": args.window_seconds}
    try:
        return embed_task(args.model, args.task, args.data, batch_size=args.batch_size, device=device,
                          progress=not args.no_progress, seed=args.seed, require_any_label=True, **options)
    except (ValueError, OSError) as err:
        raise one_line(err) from None


def embed_command(args) -> int:
    from pathlib import Path

    from ..finetuning.probing import write_embeddings

    if Path(args.output).is_dir():
        raise QualityFMCLIError(f"--output {args.output} is a folder; expected a file path such as "
                                f"{Path(args.output) / 'embeddings.parquet'}.")
    frame = embed_frame(args)
    try:
        write_embeddings(frame, args.output)
    except OSError as err:
        raise one_line(err) from None
    summary = {
        "output": str(args.output),
        "task": args.task,
        "model": args.model,
        "windows": len(frame),
        "records": int(frame["record"].nunique()),
        "labelled_windows": int(frame["label"].notna().sum()),
        "hidden_size": frame.attrs.get("hidden_size"),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"wrote {summary['windows']} windows from {summary['records']} records ({summary['labelled_windows']} "
          f"labelled, {summary['hidden_size']}-dim embeddings) to {args.output}")
    return 0
