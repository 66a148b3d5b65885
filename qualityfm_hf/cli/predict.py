"""`qualityfm predict`: per-record prediction of a fine-tuned checkpoint (probability or SBP/DBP)."""

from __future__ import annotations

import json

from .errors import QualityFMCLIError


def predict_command_parser(subparsers):
    parser = subparsers.add_parser("predict", help="Predict per record with a fine-tuned checkpoint.")
    parser.add_argument("--model", required=True, help="Fine-tuned checkpoint folder.")
    parser.add_argument("records", nargs="+", help="WFDB record paths (with or without .hea), .vital files, or folders of them.")
    parser.add_argument("--window-seconds", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="Print a JSON list instead of one line per record.")
    parser.set_defaults(func=predict_command)
    return parser


def predict_command(args) -> int:
    from ..evaluation import predict_records

    try:
        results = predict_records(args.model, args.records, args.window_seconds)
    except (ValueError, FileNotFoundError, OSError) as err:
        raise QualityFMCLIError(str(err)) from None
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for entry in results:
        if "error" in entry:
            print(f"{entry['record']}: skipped ({entry['error']})")
        elif "probability" in entry:
            print(f"{entry['record']}: {entry['prediction']} (p = {entry['probability']:.4f}, threshold "
                  f"{entry['threshold']:.4f}, {entry['windows']} windows)")
        else:
            print(f"{entry['record']}: SBP {entry['sbp_mmhg']:.1f} mmHg, DBP {entry['dbp_mmhg']:.1f} mmHg "
                  f"({entry['windows']} windows)")
    return 0
