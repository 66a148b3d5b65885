"""Throughput of building quality pairs and of loading them back, on PhysioNet 2015 VT-alarm records.

    python benchmarks/bench_pairs.py [--max-records 231] [--records-per-shard 32] [--num-workers 1 2]
        [--loader-workers 0 1 2] [--rounds 3] [--output benchmarks/results/pairs.json]
    python benchmarks/bench_pairs.py --pairs DIR   # loading only, on a built pairs directory

Builds a pairs directory from `shared/data/physionet2015_vt` (the 300 s before each alarm) once per worker
count and reports records/s and windows/s. Then loads the pairs the way pretraining does: a `torch` DataLoader
with the default recipe's `PairCollator` (augmentation, same-window views, student crops), batch 32,
`drop_last`, for 0, 1 and 2 DataLoader workers, in-memory (`load_pairs(dir)`, shuffled as the Trainer does)
and streaming (`load_pairs(dir, streaming=True)`); and again with plain stacking (`default_collate`), which
shows what the loaders themselves cost (the collator's augmentation otherwise dominates). Each epoch is timed
from `iter(loader)` (worker start included) to the last batch; the cells are interleaved over `--rounds`
rounds (the two kinds alternate which goes first) because the machine is shared, and each figure keeps every
round: median, min and max pairs/s, and streaming / in-memory measured in the same round. Writes JSON with
device, load average, versions, commit and shapes. Not collected by pytest.
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

from suite_report import machine, spread  # beside this script

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
BATCH_SIZE = 32  # the default recipe's per-device batch


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def environment() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    return {
        "device": machine()["description"],
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("numpy", "scipy", "neurokit2", "wfdb", "pyarrow", "datasets", "torch")},
        "commit": commit,
    }


def real_collator():
    """The collator `training.pretrain` builds for the default recipe on the base preset."""
    from qualityfm_hf import QualityFMConfig
    from qualityfm_hf.pretraining.collator import PairCollator
    from qualityfm_hf.pretraining.recipes import DEFAULT_RECIPE, DEFAULT_TRAINING_ARGS, get_recipe

    config = QualityFMConfig.from_preset("base", **get_recipe(DEFAULT_RECIPE).config)
    return PairCollator(augment=True, seed=DEFAULT_TRAINING_ARGS["seed"],
                        same_window_fraction=config.same_window_fraction,
                        student_crop_min_samples=int(round(config.student_crop_min_seconds
                                                           * config.sampling_rate)),
                        rhythm_features=config.rhythm_loss_weight > 0, sampling_rate=config.sampling_rate)


def epoch_pairs_per_s(dataset, workers: int, collator, batch_size: int = BATCH_SIZE) -> float:
    """Pairs/s of one epoch through a DataLoader, from `iter()` (workers forked, as in each Trainer epoch) to
    the last batch."""
    import torch

    # The Trainer samples a map-style dataset at random.
    shuffle = not isinstance(dataset, torch.utils.data.IterableDataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                         collate_fn=collator, drop_last=True)
    start = time.perf_counter()
    pairs = sum(len(batch["teacher_input_values"]) for batch in loader)
    return pairs / (time.perf_counter() - start)


def loader_throughput(datasets: dict, workers: list[int], rounds: int, collator) -> list[dict]:
    """For each worker count, pairs/s of each dataset in `datasets` (name -> dataset) and of every other one
    relative to the first in the same round, over interleaved rounds; one dict per worker count."""
    names = list(datasets)
    got = {(w, name): [] for w in workers for name in names}
    for r in range(rounds):
        for w in workers:
            # Alternate which kind goes first, so a drift of the machine hits both alike.
            for name in names if r % 2 == 0 else names[::-1]:
                got[w, name].append(epoch_pairs_per_s(datasets[name], w, collator))
    rows = []
    for w in workers:
        row = {"num_workers": w, **{f"{name}_pairs_per_s": spread(got[w, name]) for name in names}}
        for name in names[1:]:
            row[f"{name}_vs_{names[0]}"] = spread([a / b for a, b in zip(got[w, name], got[w, names[0]])])
        rows.append(row)
    return rows


def load_figure(directory: Path, workers: list[int], rounds: int) -> dict:
    """In-memory vs streaming loading of a pairs directory through a DataLoader (see the module)."""
    from torch.utils.data import default_collate

    from qualityfm_hf.pairs import format as pairs_format
    from qualityfm_hf.pairs import load_pairs

    start = time.perf_counter()
    in_memory = load_pairs(directory)
    opened = time.perf_counter() - start
    pairs_format._VERIFIED.clear()  # so that both open times include checking every shard's sha256
    start = time.perf_counter()
    streaming = load_pairs(directory, streaming=True)
    stream_opened = time.perf_counter() - start
    before = load()
    kinds = {"in_memory": in_memory, "streaming": streaming}
    collators = {name: loader_throughput(kinds, workers, rounds, collator)
                 for name, collator in (("real", real_collator()), ("stack", default_collate))}
    return {"pairs": len(in_memory), "shards": len(streaming.shards), "batch_size": BATCH_SIZE,
            "rounds": rounds, "in_memory_open_seconds": round(opened, 3),
            "streaming_open_seconds": round(stream_opened, 3), "load_before": before, "load_after": load(),
            "collators": collators}


def build_figure(input_dir: str, out: Path, workers: int, max_records: int | None,
                 records_per_shard: int) -> dict:
    from qualityfm_hf.pairs import build_pairs

    start = time.perf_counter()
    manifest = build_pairs(input_dir, out, num_workers=workers, max_records=max_records,
                           records_per_shard=records_per_shard, progress=False)
    seconds = time.perf_counter() - start
    c = manifest["counts"]
    return {"num_workers": workers, "seconds": round(seconds, 2), "records": c["records_done"],
            "windows_kept": c["windows_kept"], "pairs": c["pairs"], "shards": c["shards"],
            "records_per_s": round(c["records_done"] / seconds, 2),
            "windows_per_s": round(c["windows_total"] / seconds, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(SHARED / "physionet2015_vt"))
    parser.add_argument("--pairs", help="an existing pairs directory: measure loading only, build nothing")
    parser.add_argument("--max-records", type=int, default=None)
    parser.add_argument("--records-per-shard", type=int, default=32)
    parser.add_argument("--num-workers", type=int, nargs="+", default=[1, 2], help="build processes")
    parser.add_argument("--loader-workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader workers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "pairs.json"))
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")
    results = {"environment": environment(), "load_before": load(), "build": [], "load": {}}
    with tempfile.TemporaryDirectory(prefix="bench-pairs-") as tmp:
        if args.pairs:
            out = Path(args.pairs)
        else:
            # Recorded relative to the repo, so the JSON names no path of this machine.
            results["input"] = os.path.relpath(args.input, REPO)
            for workers in args.num_workers:
                out = Path(tmp) / f"pairs-{workers}"
                row = build_figure(args.input, out, workers, args.max_records, args.records_per_shard)
                results["build"].append(row)
                print(json.dumps(row), flush=True)
        size = sum(f.stat().st_size for f in out.iterdir())
        results["shapes"] = {"input_values": [2, 9000], "dtype": "float32", "directory_bytes": size}
        results["load"] = load_figure(out, args.loader_workers, args.rounds)
        print(json.dumps(results["load"]), flush=True)
    results["load_after"] = load()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
