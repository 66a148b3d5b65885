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
TARGET_RATE = 300  # Hz, the rate the scores (and QualityFM) are defined at


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


def _to_target_rate(signal, rate: float):
    """The pair builder's resampler, so `qualityfm quality` scores the same samples as `qualityfm build-pairs`.

    An all-missing channel stays NaN, so scoring treats it as absent rather than flat.
    """
    import numpy as np

    from ..segmenting import resample_channel

    values, missing = resample_channel(signal, rate, TARGET_RATE)
    if missing.all():
        values[:] = np.nan
    return values


def score_record(path: str, window_seconds: float, num_workers: int | None, ecg_method: str) -> dict:
    """Read `path`, window it and score it; returns a JSON-ready dict."""
    import numpy as np

    from ..io import find_channel, read_recording
    from ..quality import score_windows

    try:
        recording = read_recording(path)
    except FileNotFoundError as err:
        raise QualityFMCLIError(f"{path}: no such record ({err})") from err
    except ValueError as err:
        raise QualityFMCLIError(str(err)) from err
    ppg_name, ecg_name = find_channel(recording, "PPG"), find_channel(recording, "ECG")
    if ppg_name is None and ecg_name is None:
        raise QualityFMCLIError(f"{path}: no PPG or ECG channel among {recording.channels}; nothing to score.")
    channels = [
        _to_target_rate(recording.signals[name], recording.sampling_rates[name]) if name else None
        for name in (ppg_name, ecg_name)
    ]
    length = round(window_seconds * TARGET_RATE)
    n = min(len(c) for c in channels if c is not None) // length
    notes = []
    if ecg_name is not None and find_channel(recording, "ECG_II") is None:
        notes.append(f"no lead II; ECG scored on {ecg_name}")
    result = {"record": path, "ppg_channel": ppg_name, "ecg_channel": ecg_name, "windows": [], "notes": notes}
    if n == 0:
        notes.append(f"shorter than one {window_seconds:g}-s window; nothing scored")
        return result
    windows = np.full((n, 2, length), np.nan)
    for i, channel in enumerate(channels):
        if channel is not None:
            windows[:, i] = channel[: n * length].reshape(n, length)
    mask = np.array([ppg_name is not None, ecg_name is not None])
    scores = score_windows(windows, TARGET_RATE, channel_mask=mask, num_workers=num_workers, ecg_method=ecg_method)

    def number(x):
        return None if np.isnan(x) else round(float(x), 4)

    for i in range(n):
        result["windows"].append({
            "start_s": i * window_seconds, "ecg": number(scores.ecg[i]), "ppg": number(scores.ppg[i]),
            "combined": number(scores.combined[i]), "class": scores.classes[i], "note": scores.notes[i],
        })
    return result


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
    from ..io import expand_records

    try:
        records = expand_records(args.records)
    except ValueError as err:
        raise QualityFMCLIError(str(err)) from None
    from ..progress import progress_bar

    results = [score_record(p, args.window_seconds, args.num_workers, method)
               for p in progress_bar(records, desc="quality", unit="record")]
    if args.json:
        print(json.dumps({"sampling_rate": TARGET_RATE, "window_seconds": args.window_seconds,
                          "records": results}, indent=2))
    else:
        for result in results:
            _print_table(result)
    return 0
