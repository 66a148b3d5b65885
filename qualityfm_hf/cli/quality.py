"""`qualityfm quality`: per-window signal quality (rrSQI, PPG SQI, class) of recordings."""

from __future__ import annotations

import argparse
import json

from .errors import QualityFMCLIError

QUALITY_EXAMPLES = """examples:
  qualityfm quality tests/fixtures/v100s
  qualityfm quality data/A00015.hea data/case1.vital --json
  qualityfm quality v100s --window-seconds 10 --num-workers 2
"""


def quality_command_parser(subparsers):
    parser = subparsers.add_parser(
        "quality",
        help="Score the signal quality of 30-s windows of recordings (WFDB or .vital).",
        description="Cut each recording into windows, resample PPG and ECG to 300 Hz and print per window the "
        "ECG rrSQI, the PPG SQI, their mean and its class (Excellent/Good/Acceptable/Poor/Bad).",
        epilog=QUALITY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("records", nargs="+", metavar="RECORD", help="WFDB record (with or without .hea), .vital file, or a folder of them")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of tables.")
    parser.add_argument("--window-seconds", type=float, default=30.0, help="Window length in s (default 30).")
    parser.add_argument("--num-workers", type=int, default=None, help="Worker processes (default: all cores).")
    parser.add_argument("--ecg-method", default=None,
                        help="R-peak detector: sleepecg (default, compiled) or a neurokit2 method such as neurokit.")
    parser.set_defaults(func=quality_command)
    return parser


def _print_table(result: dict) -> None:
    print(f"{result['record']}  (PPG: {result['ppg_channel'] or 'missing'}, ECG: {result['ecg_channel'] or 'missing'})")
    for note in result["notes"]:
        print(f"  note: {note}")
    if not result["windows"]:
        return
    print(f"  {'start_s':>8} {'ecg':>6} {'ppg':>6} {'combined':>8}  class")
    for w in result["windows"]:
        cells = ["-" if w[k] is None else f"{w[k]:.3f}" for k in ("ecg", "ppg", "combined")]
        note = f"  ({w['note']})" if w["note"] else ""
        print(f"  {w['start_s']:>8.1f} {cells[0]:>6} {cells[1]:>6} {cells[2]:>8}  {w['class']}{note}")


def quality_command(args) -> int:
    from ..quality import DEFAULT_ECG_METHOD, ECG_METHODS

    if args.window_seconds <= 0:
        raise QualityFMCLIError(f"--window-seconds must be > 0; got {args.window_seconds}.")
    if args.ecg_method is not None and args.ecg_method not in ECG_METHODS:
        raise QualityFMCLIError(f"--ecg-method is {args.ecg_method!r}, but has to be one of {list(ECG_METHODS)}.")
    method = args.ecg_method or DEFAULT_ECG_METHOD
    from ..recordings.io import expand_records

    try:
        records = expand_records(args.records)
    except ValueError as err:
        raise QualityFMCLIError(str(err)) from None
    from ..recordings.record_quality import TARGET_RATE, score_record
    from ..utils.progress import progress_bar

    try:
        results = [score_record(p, args.window_seconds, args.num_workers, method)
                   for p in progress_bar(records, desc="quality", unit="record")]
    except (FileNotFoundError, ValueError) as err:
        raise QualityFMCLIError(str(err)) from None
    if args.json:
        print(json.dumps({"sampling_rate": TARGET_RATE, "window_seconds": args.window_seconds,
                          "records": results}, indent=2))
    else:
        for result in results:
            _print_table(result)
    return 0
