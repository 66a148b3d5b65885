"""Throughput of building quality pairs and of streaming them back, on PhysioNet 2015 VT-alarm records.

    python benchmarks/bench_pairs.py [--max-records 231] [--num-workers 1 2] [--output benchmarks/results/pairs.json]

Builds a pairs directory from `shared/data/physionet2015_vt` (the 300 s before each alarm) once per worker count
and reports records/s and windows/s; then reads the pairs back in-memory and streaming (`datasets` parquet
streaming, one shard at a time) and reports pairs/s. Writes JSON with device, versions, commit and shapes.
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def environment() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "device": f"{platform.processor() or platform.machine()}, {cores} cores",
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("numpy", "scipy", "neurokit2", "wfdb", "pyarrow", "datasets", "torch")},
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(SHARED / "physionet2015_vt"))
    parser.add_argument("--max-records", type=int, default=None)
    parser.add_argument("--num-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "pairs.json"))
    args = parser.parse_args(argv)

    from qualityfm_hf.pairs import build_pairs, load_pairs

    warnings.simplefilter("ignore")
    # Recorded relative to the repo, so the JSON names no path of this machine.
    shown_input = os.path.relpath(args.input, Path(__file__).resolve().parents[1])
    results = {"environment": environment(), "input": shown_input, "build": [], "load": {}}
    with tempfile.TemporaryDirectory(prefix="bench-pairs-") as tmp:
        for workers in args.num_workers:
            out = Path(tmp) / f"pairs-{workers}"
            start = time.perf_counter()
            manifest = build_pairs(args.input, out, num_workers=workers, max_records=args.max_records, progress=False)
            seconds = time.perf_counter() - start
            c = manifest["counts"]
            row = {"num_workers": workers, "seconds": round(seconds, 2), "records": c["records_done"],
                   "windows_kept": c["windows_kept"], "pairs": c["pairs"],
                   "records_per_s": round(c["records_done"] / seconds, 2),
                   "windows_per_s": round(c["windows_total"] / seconds, 1)}
            results["build"].append(row)
            print(json.dumps(row))
        size = sum(f.stat().st_size for f in out.iterdir())
        results["shapes"] = {"input_values": [2, 9000], "dtype": "float32", "shards": c["shards"],
                             "directory_bytes": size}

        start = time.perf_counter()
        dataset = load_pairs(out)
        opened = time.perf_counter() - start
        start = time.perf_counter()
        for k in range(len(dataset)):
            dataset[k]
        in_memory = time.perf_counter() - start
        start = time.perf_counter()
        streamed = sum(1 for _ in load_pairs(out, streaming=True))
        streaming = time.perf_counter() - start
        results["load"] = {
            "pairs": len(dataset),
            "in_memory_open_seconds": round(opened, 2),
            "in_memory_pairs_per_s": round(len(dataset) / in_memory, 1),
            "streaming_pairs_per_s": round(streamed / streaming, 1),
        }
        print(json.dumps(results["load"]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
