"""Markdown tables from the JSON lines of `probe_pretraining.py` and `finetune_pretrained_vs_scratch.py`.

    python benchmarks/probe_table.py probes benchmarks/results/pretraining/probes/*.jsonl
    python benchmarks/probe_table.py finetune benchmarks/results/pretraining/finetune_*.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

TASKS = ("vt", "af", "quality")


def rows(paths):
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                yield json.loads(line)


def cell(result: dict) -> str:
    low, high = result["ci95"] if result.get("ci95") else (float("nan"), float("nan"))
    return f"{result['auroc_mean']:.3f} ± {result['auroc_sd']:.3f} [{low:.2f}, {high:.2f}]"


def probes(paths) -> str:
    lines = ["| encoder | " + " | ".join(f"{t} linear | {t} k-NN" for t in TASKS) + " |",
             "|---|" + "---|" * (2 * len(TASKS))]
    for row in rows(paths):
        cells = [cell(row[t][m]) for t in TASKS for m in ("linear", "knn")]
        lines.append(f"| `{row['encoder']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def finetune(paths) -> str:
    by_model = defaultdict(dict)
    for row in rows(paths):
        by_model[(row["task"], row["model"])][row["split_seed"]] = row["test_auroc"]
    lines = ["| task | initialisation | test AUROC per split seed | mean ± sd |", "|---|---|---|---|"]
    for (task, model), seeds in sorted(by_model.items()):
        values = np.array([seeds[s] for s in sorted(seeds)], dtype=float)
        per_seed = ", ".join(f"{seeds[s]:.3f}" for s in sorted(seeds))
        lines.append(f"| {task} | `{model}` | {per_seed} | {np.nanmean(values):.3f} ± {np.nanstd(values, ddof=1):.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    kind, paths = sys.argv[1], sys.argv[2:]
    print({"probes": probes, "finetune": finetune}[kind](paths))
