"""Frozen-encoder probes: does pretraining beat random initialisation? (benchmarks/PRETRAINING.md)

For each encoder (a saved encoder folder, `pretrained-base`, or `random:SEED` for a seeded random base encoder) this
embeds, once per encoder and with the same windows for all:

- `vt`: the 10 s before each VT alarm of the PhysioNet 2015 records, label true alarm;
- `af`: the 30-s windows of the PhysioNet 2017 ECGs (PPG absent, masked), label AF;
- `quality`: up to 4 kept 30-s windows per record of a pairs folder, label Good/Excellent quality class vs the rest;

and scores a linear probe and k-NN with repeated record-level cross-validation (`qualityfm_hf.finetuning.probing`). Each
encoder's result is appended to `--output` (JSON lines) as soon as it is done.

    python benchmarks/probe_pretraining.py --pairs PAIRS --output results.jsonl \
        --encoder random:0 --encoder runs/default_s0/encoder
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
QUALITY_WINDOWS_PER_RECORD = 4
HIGH_QUALITY_CLASS = 3  # Good (3) and Excellent (4) vs Bad, Poor, Acceptable


def task_features(task: str, data_dir: Path) -> list[dict]:
    """Feature-extracted windows of a task, built once and shared by every encoder."""
    from qualityfm_hf.finetuning.task_data import build_task_table, extract_features
    from qualityfm_hf.modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor

    dataset = build_task_table(task, data_dir)
    features, _ = extract_features(dataset, QualityFMFeatureExtractor())
    return features


def quality_features(pairs_dir: Path, seed: int = 0) -> list[dict]:
    """Up to `QUALITY_WINDOWS_PER_RECORD` windows per record from a pairs folder, labelled by quality class."""
    import pyarrow.parquet as pq

    table = pq.read_table(sorted(pairs_dir.glob("windows-*.parquet")),
                          columns=["record", "input_values", "channel_mask", "quality_class"])
    records = np.asarray(table["record"].to_pylist())
    rng = np.random.default_rng(seed)
    keep = []
    for record in np.unique(records):
        rows = np.flatnonzero(records == record)
        keep += sorted(rng.choice(rows, size=min(QUALITY_WINDOWS_PER_RECORD, rows.size), replace=False).tolist())
    values = table["input_values"].to_pylist()
    masks = table["channel_mask"].to_pylist()
    classes = table["quality_class"].to_pylist()
    features = []
    for row in keep:
        window = np.asarray(values[row], dtype=np.float32).reshape(2, -1)
        features.append({
            "input_values": window,
            "attention_mask": np.ones(window.shape[1], dtype=np.int64),
            "channel_mask": np.asarray(masks[row], dtype=np.float32),
            "labels": np.float32(classes[row] >= HIGH_QUALITY_CLASS),
            "record": str(records[row]),
        })
    return features


def load_encoder(spec: str):
    import torch

    from qualityfm_hf import QualityFMConfig, QualityFMModel
    from qualityfm_hf.finetuning.probing import load_encoder as load

    if spec.startswith("random:"):
        torch.manual_seed(int(spec.split(":", 1)[1]))
        return QualityFMModel(QualityFMConfig.from_preset("base")).eval()
    return load(spec, "vt-false-alarm")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", action="append", required=True, help="folder, pretrained-base or random:SEED")
    parser.add_argument("--pairs", type=Path, required=True, help="pairs folder (for the quality probe)")
    parser.add_argument("--vt-data", type=Path, default=SHARED / "physionet2015_vt")
    parser.add_argument("--af-data", type=Path, default=SHARED / "physionet2017_af")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, required=True, help="JSON lines, one per encoder")
    args = parser.parse_args(argv)

    from qualityfm_hf.finetuning.probing import embed_windows, probe_embeddings

    started = time.time()
    tasks = {
        "vt": task_features("vt-false-alarm", args.vt_data),
        "af": task_features("af", args.af_data),
        "quality": quality_features(args.pairs),
    }
    print("windows: " + ", ".join(f"{k} {len(v)}" for k, v in tasks.items()) + f" ({time.time() - started:.0f} s)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for spec in args.encoder:
        encoder = load_encoder(spec)
        result = {"encoder": spec, "folds": args.folds, "repeats": args.repeats}
        for name, features in tasks.items():
            embeddings = embed_windows(encoder, features, progress=False)
            labels = np.asarray([float(f["labels"]) for f in features])
            groups = np.asarray([f["record"] for f in features])
            probe = probe_embeddings(embeddings, labels, groups, folds=args.folds, repeats=args.repeats, seed=0)
            result[name] = probe
            linear, knn = probe["linear"], probe["knn"]
            print(f"{spec:40s} {name:8s} linear {linear['auroc_mean']:.3f} ± {linear['auroc_sd']:.3f}  "
                  f"k-NN {knn['auroc_mean']:.3f} ± {knn['auroc_sd']:.3f}  ({time.time() - started:.0f} s)", flush=True)
        with open(args.output, "a") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
