"""`qualityfm build-pairs`: recordings -> quality-divergent teacher/student pairs for pretraining."""

from __future__ import annotations

import argparse
import json
import time

from .errors import QualityFMCLIError

BUILD_PAIRS_EXAMPLES = """examples:
  # PhysioNet 2015 alarms: only the 300 s before the alarm (detected from the headers)
  qualityfm build-pairs --input qualityfm_hf/data/physionet2015_vt --output pairs/vt2015 --num-workers 2

  # try 10 records first; rerunning without --max-records resumes and builds the rest
  qualityfm build-pairs --input records/ --output pairs/ --max-records 10 --json

  # on a Ray cluster (pip install qualityfm-hf[ray]), from one of its nodes; --input readable on every node
  qualityfm build-pairs --input /nfs/records --output pairs/ --engine ray --ray-address auto
"""


def build_pairs_command_parser(subparsers):
    parser = subparsers.add_parser(
        "build-pairs",
        help="Cut recordings into scored 30-s windows and pair them by quality (resumable).",
        description="Cut every recording under --input into 30-s [PPG, ECG_II] windows at 300 Hz, score their "
        "quality, and pair each window with the next 9 windows of another quality class (better = teacher). "
        "Writes Parquet shards and manifest.json to --output; an interrupted build resumes where it stopped.",
        epilog=BUILD_PAIRS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", required=True, help="Directory of WFDB records and/or .vital files (recursive).")
    parser.add_argument("--output", required=True, help="Pairs directory to create or resume.")
    parser.add_argument(
        "--before-alarm", action=argparse.BooleanOptionalAction, default=None,
        help="Use only [0, 300) s of each record (PhysioNet 2015: before the alarm). Default: on for records whose "
        "header says 'True alarm'/'False alarm', off otherwise.",
    )
    parser.add_argument("--num-workers", type=int, default=1, help="Processes over records (default 1; 0 = all cores).")
    parser.add_argument("--max-records", type=int, default=None, help="Build only the first N records in this run.")
    parser.add_argument("--records-per-shard", type=int, default=32, help="Records per Parquet shard (default 32).")
    parser.add_argument("--self-pairs", action="store_true",
                        help="Also pair each window that has no partner of another class with itself (a same-window "
                        "view), so short records such as 30-s AF ECGs join pretraining.")
    # No argparse `choices`: build_pairs checks the engine, so a wrong one is a one-line error as usual.
    parser.add_argument("--engine", default="local", metavar="{local,ray}",
                        help="Where records are segmented and scored: 'local' processes (default; see "
                        "--num-workers) or 'ray' tasks on a Ray cluster through Ray Data (pip install "
                        "qualityfm-hf[ray]). This process writes the output either way, byte-identical.")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="Ray cluster for --engine ray, run from one of its nodes: 'auto' or HEAD:6379 "
                        "(not ray://: Ray Data does not run through Ray Client). Default: the cluster in "
                        "RAY_ADDRESS, else a new local Ray instance.")
    parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    parser.set_defaults(func=build_pairs_command)
    return parser


def _summary(manifest: dict, output: str, seconds: float) -> dict:
    return {
        "output": output,
        "complete": manifest["complete"],
        "seconds": round(seconds, 1),
        "counts": manifest["counts"],
        "rejects": manifest["rejects"],
        "skipped_records": manifest["skipped_records"],
        "class_matrix": manifest["class_matrix"],
        "config": manifest.get("config", {}),
    }


# What each count means, in the words the summary prints (manifest keys: recordings.segmenting.REJECT_REASONS and the
# records' skip_reason).
REJECT_TEXT = {"ppg_nan": "PPG more than {pct}% missing", "ecg_nan": "ECG more than {pct}% missing",
               "ppg_flat": "PPG flat", "ecg_flat": "ECG flat"}
SKIP_TEXT = {"no_ppg_or_ecg": "no PPG or ECG channel", "empty": "no samples", "all_nan": "PPG and ECG all missing"}


def _breakdown(counts: dict, text: dict, **values) -> str:
    """` (3 ECG flat, 1 no samples)` for the non-zero counts; empty when there are none."""
    parts = [f"{n} {text.get(key, key).format(**values)}" for key, n in counts.items() if n]
    return f" ({', '.join(parts)})" if parts else ""


def _print_text(summary: dict) -> None:
    c, rejects = summary["counts"], summary["rejects"]
    config = summary.get("config", {})
    seconds, pct = config.get("window_seconds", 30.0), round(100 * config.get("max_nan_fraction", 0.2))
    print(f"records: {c['records_done']} of {c['records_planned']} done: {c['records_with_windows']} with windows, "
          f"{c.get('records_too_short', 0)} shorter than one {seconds:g}-s window, {c.get('records_all_rejected', 0)} "
          f"with every window rejected, {c['records_skipped']} skipped"
          + _breakdown(summary["skipped_records"], SKIP_TEXT))
    print(f"windows: {c['windows_total']} cut, {c['windows_kept']} kept, {c['windows_rejected']} rejected"
          + _breakdown(rejects, REJECT_TEXT, pct=pct))
    print(f"pairs: {c['pairs']} in {c['shards']} shards -> {summary['output']} ({summary['seconds']} s)")
    matrix = summary["class_matrix"]
    names = matrix["classes"]
    width = max(len(n) for n in names) + 2
    print("class matrix (rows: teacher class, columns: student class):")
    print(" " * width + "".join(n.rjust(width) for n in names))
    for name, row in zip(names, matrix["counts"]):
        print(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    if not summary["complete"]:
        print("build not complete: rerun the same command without --max-records to finish it")


def build_pairs_command(args) -> int:
    from ..pairs.build import build_pairs

    if args.num_workers < 0:
        raise QualityFMCLIError(f"--num-workers must be >= 0 (0 = all cores); got {args.num_workers}.")
    if args.max_records is not None and args.max_records < 1:
        raise QualityFMCLIError(f"--max-records must be >= 1; got {args.max_records}.")
    if args.ray_address is not None and args.engine != "ray":
        raise QualityFMCLIError(f"--ray-address needs --engine ray; got --engine {args.engine}.")
    start = time.perf_counter()
    try:
        manifest = build_pairs(
            args.input, args.output, before_alarm=args.before_alarm,
            records_per_shard=args.records_per_shard, num_workers=args.num_workers or None,
            max_records=args.max_records, progress=not args.no_progress, self_pairs=args.self_pairs,
            engine=args.engine, ray_address=args.ray_address,
        )
    except (FileNotFoundError, ValueError) as err:
        raise QualityFMCLIError(str(err)) from err
    summary = _summary(manifest, args.output, time.perf_counter() - start)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_text(summary)
    return 0
