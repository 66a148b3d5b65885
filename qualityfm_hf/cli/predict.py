"""`qualityfm predict`: per-record prediction of a fine-tuned checkpoint (probability or SBP/DBP)."""

from __future__ import annotations

import json
import sys

from .device import add_device_argument
from .errors import QualityFMCLIError

# Exit status when some records were predicted and others could not be (unreadable, no usable window); 2 is
# argparse's usage error.
EXIT_PARTIAL = 3

EPILOG = f"""exit status: 0 every record was predicted; {EXIT_PARTIAL} some records could not be (each is listed with
the reason, and the others are still predicted); 1 nothing was predicted (bad model or options, or no record could
be); 2 a usage error."""


def predict_command_parser(subparsers):
    parser = subparsers.add_parser("predict", help="Predict per record with a fine-tuned checkpoint.", epilog=EPILOG)
    parser.add_argument("--model", required=True, help="Fine-tuned checkpoint folder.")
    parser.add_argument("records", nargs="+", help="WFDB record paths (with or without .hea), .vital files, or folders of them.")
    parser.add_argument("--window-seconds", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="Print a JSON list instead of one line per record.")
    parser.add_argument("--batch-size", type=int, default=32, help="Windows per forward pass (default 32).")
    add_device_argument(parser)
    parser.set_defaults(func=predict_command)
    return parser


def predict_command(args) -> int:
    from ..finetuning.evaluation import predict_records
    from .embed import check_batch_and_device

    device = check_batch_and_device(args)
    try:
        results = predict_records(args.model, args.records, args.window_seconds, device=device,
                                  batch_size=args.batch_size)
    except (ValueError, FileNotFoundError, OSError) as err:
        raise QualityFMCLIError(str(err)) from None
    failed = [entry for entry in results if "error" in entry]
    if results and len(failed) == len(results):
        raise QualityFMCLIError(f"no record could be predicted; the first, {failed[0]['record']}: {failed[0]['error']}.")
    status = EXIT_PARTIAL if failed else 0
    if failed:
        print(f"{len(failed)} of {len(results)} records could not be predicted (listed as skipped); exit status "
              f"{status}.", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
        return status
    for entry in results:
        if "error" in entry:
            print(f"{entry['record']}: skipped ({entry['error']})")
        elif "probability" in entry:
            print(f"{entry['record']}: {entry['prediction']} (p = {entry['probability']:.4f}, threshold "
                  f"{entry['threshold']:.4f}, {entry['windows']} windows)")
        else:
            print(f"{entry['record']}: SBP {entry['sbp_mmhg']:.1f} mmHg, DBP {entry['dbp_mmhg']:.1f} mmHg "
                  f"({entry['windows']} windows)")
    return status
