"""Fine-tuning from a pretrained encoder vs from random initialisation, with the CLI's defaults (PRETRAINING.md).

For each task, split seed and initialisation this runs `qualityfm_hf.finetuning.finetune` exactly as
`qualityfm finetune --task T --data D --model M --split-seed S` does (record-level 70/15/15 split, early stopping
on validation loss, threshold on validation), and records the held-out test AUROC. Different split seeds give
different test records (repeated hold-out); the initialisations see the same splits. Results are appended to
`--output` (JSON lines) run by run, so an interrupted benchmark keeps what it finished.

    python benchmarks/finetune_pretrained_vs_scratch.py --task vt-false-alarm --data ../shared/data/physionet2015_vt \
        --model runs/s0/encoder --model runs/s1/encoder --model base --split-seeds 0 1 2 3 4 --output ft.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True, help="encoder folder, pretrained-base or base")
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    from qualityfm_hf.finetuning import finetune

    args.output.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.split_seeds:
        for model in args.model:
            started = time.time()
            workdir = Path(tempfile.mkdtemp(prefix="qfm-ft-"))
            try:
                metrics = finetune(args.task, args.data, model, workdir / "out", seed=seed, n_bootstrap=0)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            test = metrics["test"]
            row = {"task": args.task, "model": model, "split_seed": seed, "test_auroc": test.get("auroc"),
                   "test_n": test.get("n"), "epochs": metrics["train"]["epochs"],
                   "steps": metrics["train"]["global_step"], "seconds": round(time.time() - started, 1)}
            print(json.dumps(row), flush=True)
            with open(args.output, "a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
