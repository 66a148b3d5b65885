"""Markdown tables for CLINICAL.md from `clinical_cv.py` JSON lines: one row per method, same folds per block.

    python benchmarks/clinical_table.py benchmarks/results/clinical/report_vt.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import json
import sys


def fmt(stats: dict) -> str:
    return "n/a" if stats["n"] == 0 else f"{stats['mean']:.3f} ± {stats['sd']:.3f}"


def rows(path: str) -> list[str]:
    out, seen = [], set()
    for line in open(path):
        run = json.loads(line)
        classification = "auroc" in run["model"]["over_folds"]
        for method, result in run.items():
            if not isinstance(result, dict) or "over_folds" not in result:
                continue
            # Development runs before "init" existed all started from pretrained-base.
            name = (f"QualityFM `{run.get('init', 'pretrained-base')}` {run['variant']}" if method == "model"
                    else method.replace("baseline:", "baseline: "))
            key = (name, run["seed"], run["folds"], run["repeats"])
            if key in seen:
                continue
            seen.add(key)
            pooled = result["pooled_oof"]
            if classification:
                cells = [fmt(result["over_folds"]["auroc"]), fmt(result["over_folds"]["auprc"]),
                         " / ".join(f"{p['auroc']:.3f} [{p['auroc_ci95'][0]:.2f}, {p['auroc_ci95'][1]:.2f}]"
                                    for p in pooled)]
            else:
                cells = [fmt(result["over_folds"]["sbp_mae"]), fmt(result["over_folds"]["dbp_mae"]),
                         fmt(result["over_folds"]["sbp_mase"]), fmt(result["over_folds"]["dbp_mase"]),
                         " / ".join(f"{p['sbp_mase']:.3f}" for p in pooled)]
            out.append(f"| {run['task']} | {name} | {run['folds']}×{run['repeats']}, seed {run['seed']} | "
                       + " | ".join(cells) + " |")
    return out


def main(paths: list[str]) -> None:
    for path in paths:
        lines = rows(path)
        if "MASE" in path or "abp" in path:
            print("| task | method | folds | SBP MAE | DBP MAE | SBP MASE | DBP MASE | pooled OOF SBP MASE per repeat |")
            print("|---|---|---|---|---|---|---|---|")
        else:
            print("| task | method | folds | AUROC over folds | AUPRC over folds | pooled OOF AUROC [95% CI] per repeat |")
            print("|---|---|---|---|---|---|")
        print("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
