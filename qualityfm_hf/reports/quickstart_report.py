"""The quickstart's verdicts, `report.md` and terminal table, drawn from its numbers.

Every sentence that judges something is chosen by a rule on a number and quotes that number: a method is "better
than chance" only when the lower end of its AUROC's 95% interval is above 0.5; one method "beats" another only when
the 95% interval of their paired AUROC difference (the same out-of-fold records, resampled together) excludes 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .figures import markdown_table

METHOD_DESCRIPTIONS = {
    "pretrained-base": "the shipped encoder, fine-tuned with the task's head",
    "random-init": "the same head and schedule from a random initialisation",
    "pretrained-base-probe": "the shipped encoder frozen: logistic regression on its embedding alone",
    "random-init-probe": "a random encoder frozen: logistic regression on its embedding",
    "baseline:logistic": "hand-made features, logistic regression",
    "baseline:gradient_boosting": "hand-made features, gradient boosting",
    "baseline:rhythm_logistic": "the RR statistics the AF head reads, logistic regression",
}
# Early-logged vs late-logged losses are compared as the mean of this many logged values at each end.
LOSS_ENDS = 3
# A spectral decoder whose prediction varies less than this fraction of the target's spread predicts a flat line.
FLAT_SPECTRUM_FRACTION = 0.05


def results_rows(comparisons: dict) -> list[dict]:
    """`summary.json`'s `results`: one row per task and method, pooled out-of-fold AUROC with its 95% interval and
    the AUROC over folds."""
    rows = []
    for task, comparison in comparisons.items():
        for method, result in comparison["methods"].items():
            pooled, folds = result["pooled_oof"][0], result["over_folds"]["auroc"]
            rows.append({"task": task, "method": method, "auroc": pooled["auroc"],
                         "auroc_ci": list(pooled.get("auroc_ci95", [float("nan")] * 2)),
                         "auroc_over_folds": {"mean": folds["mean"], "sd": folds["sd"], "n": folds["n"]},
                         "records": pooled["records"], "seconds": result.get("seconds")})
    return rows


def _interval(low: float, high: float) -> str:
    return f"[{low:.2f}, {high:.2f}]"


def _compare_sentence(task: str, difference: dict, what: str) -> str:
    d, (low, high) = difference["difference"], difference["ci95"]
    first, second = difference["first"], difference["second"]
    numbers = f"AUROC difference {d:+.3f}, 95% CI {_interval(low, high)}, {difference['records']} records"
    if low > 0:
        return f"{task}, {what}: {first} beats {second} ({numbers})."
    if high < 0:
        return f"{task}, {what}: {first} is worse than {second} ({numbers})."
    return f"{task}, {what}: no clear difference between {first} and {second} ({numbers}; the interval includes 0)."


def task_verdicts(task: str, comparison: dict, n_bootstrap: int = 1000, seed: int = 0) -> tuple[list[str], list]:
    """Sentences about one task and the paired differences behind them."""
    from ..finetuning.compare import PRETRAINED, paired_difference

    methods, predictions = comparison["methods"], comparison["predictions"]
    sentences, differences = [], []
    for method, result in methods.items():
        scores = np.array([p["probability"] for p in predictions[method]])
        if scores.size and np.ptp(scores) < 1e-6:
            sentences.append(f"{task}: {method} gives every record the same score ({scores[0]:.3f}); it does not "
                             "tell the classes apart.")
    if PRETRAINED in methods:
        pooled = methods[PRETRAINED]["pooled_oof"][0]
        low, high = pooled.get("auroc_ci95", [float("nan")] * 2)
        verdict = "better than chance" if low > 0.5 else "not distinguishable from chance (the interval reaches 0.5)"
        sentences.append(f"{task}: {PRETRAINED} fine-tuned scores AUROC {pooled['auroc']:.3f} "
                         f"{_interval(low, high)} on records left out of its fine-tuning: {verdict}.")
    pairs = [(PRETRAINED, "random-init", "what pretraining adds to fine-tuning"),
             (f"{PRETRAINED}-probe", "random-init-probe", "what the frozen encoder learned in pretraining")]
    baselines = {m: r["pooled_oof"][0]["auroc"] for m, r in methods.items() if m.startswith("baseline:")}
    if baselines:
        best = max(baselines, key=lambda m: (np.nan_to_num(baselines[m], nan=-1.0), m))
        pairs.append((PRETRAINED, best, f"against the strongest transparent baseline here (AUROC {baselines[best]:.3f})"))
    for first, second, what in pairs:
        if first in predictions and second in predictions:
            difference = paired_difference(predictions, first, second, n_bootstrap=n_bootstrap, seed=seed)
            differences.append(difference)
            sentences.append(_compare_sentence(task, difference, what))
    return sentences, differences


def pretraining_verdicts(demo: dict) -> list[str]:
    """Sentences about the demonstration run: each trained loss early vs late, the collapse monitor, the decoder."""
    from ..pretraining.monitors import MIN_EFFECTIVE_RANK

    losses, sentences = demo["losses"], []
    if len(losses) >= 2:
        ends = min(LOSS_ENDS, len(losses) // 2)
        for name, weight in demo["loss_weights"].items():
            if weight <= 0 or name not in losses[0]:
                continue
            early = float(np.mean([row[name] for row in losses[:ends]]))
            late = float(np.mean([row[name] for row in losses[-ends:]]))
            change = (late - early) / abs(early) if early else float("nan")
            trend = "fell" if change < -0.05 else "rose" if change > 0.05 else "stayed flat"
            sentences.append(f"pretraining: {name.replace('_', ' ')} (weight {weight:g}) {trend}: {early:.3f} in the "
                             f"first {ends} logged steps, {late:.3f} in the last {ends} ({change:+.0%}).")
        rank = losses[-1].get("student_rank")
        if rank is not None:
            state = ("the pooled embeddings lie along one direction: collapse" if rank < MIN_EFFECTIVE_RANK else
                     "no sign of collapse")
            sentences.append(f"pretraining: the student's pooled embeddings have effective rank {rank:.1f} at the last "
                             f"logged step (of at most {demo['batch_size']}, the batch size; below "
                             f"{MIN_EFFECTIVE_RANK:g} means collapse): {state}.")
    else:
        sentences.append(f"pretraining: {len(losses)} logged step(s), too few to judge the losses.")
    spectra = demo.get("spectra") or {}
    predicted = np.asarray(spectra.get("predicted_amplitude", []), dtype=np.float64)
    target = np.asarray(spectra.get("target_amplitude", []), dtype=np.float64)
    if predicted.size and target.size:
        ratio = float(np.nanstd(predicted) / max(np.nanstd(target), 1e-12))
        state = ("it predicts an almost flat spectrum, not the spectrum yet" if ratio < FLAT_SPECTRUM_FRACTION else
                 "it is not a flat line")
        sentences.append(f"pretraining: the spectral decoder's predicted amplitude varies {ratio:.2f} times as much as "
                         f"the target's on the first pair: {state}.")
    return sentences


def verdicts(demo: dict, comparisons: dict, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """`summary.json`'s `verdicts`: sentences and the paired differences they quote."""
    sentences, differences = pretraining_verdicts(demo), []
    for task, comparison in comparisons.items():
        task_sentences, task_differences = task_verdicts(task, comparison, n_bootstrap, seed)
        sentences += task_sentences
        differences += [{"task": task, **d} for d in task_differences]
    return {"sentences": sentences, "paired_differences": differences}


def _results_table(summary: dict, task: str) -> str:
    rows = []
    for row in summary["results"]:
        if row["task"] != task:
            continue
        folds = row["auroc_over_folds"]
        rows.append([row["method"], METHOD_DESCRIPTIONS.get(row["method"], ""),
                     f"{row['auroc']:.3f} {_interval(*row['auroc_ci'])}",
                     f"{folds['mean']:.3f} ± {folds['sd']:.3f}"])
    return markdown_table(["method", "what it is", "AUROC, pooled out of fold [95% CI]",
                           "AUROC over folds, mean ± sd"], rows)


def write_report(output_dir: Path, summary: dict, quality_table: str) -> Path:
    """`report.md`: the verdicts first, then each step with its numbers and figures."""
    pre = summary["pretraining"]
    losses, weights = pre["losses"], pre["loss_weights"]
    trained = [name for name, w in weights.items() if w > 0]
    off = [name for name, w in weights.items() if w <= 0]
    first, last = (losses[0], losses[-1]) if losses else ({}, {})
    loss_rows = [[name, weights.get(name, ""), first.get(name, float("nan")), last.get(name, float("nan"))]
                 for name in ["loss", *trained] if name in first]
    monitor_rows = [[name, first[name], last[name]] for name in ("student_rank", "student_cosine")
                    if name in first and name in last]
    lines = [
        "# QualityFM quickstart report",
        "",
        "## Verdicts",
        "",
        *[f"- {sentence}" for sentence in summary["verdicts"]["sentences"]],
        "",
        f"Time: {summary['seconds']:.0f} s in all on `{summary['device']}`.",
        "",
        "## 1. Signal quality",
        "",
        f"Records: `{pre['data_dir']}`. Kept 30-s windows per record and quality class (Excellent >= 0.9 > Good >= "
        "0.7 > Acceptable >= 0.5 > Poor >= 0.3 > Bad).",
        "",
        quality_table,
        "",
        "![quality classes over time](quality_timeline.png)",
        "",
        "## 2. Quality-divergent pairs",
        "",
        "Counts: " + ", ".join(f"{k} {v}" for k, v in pre["pairs"].items() if isinstance(v, (int, float))) + ".",
        "",
        "## 3. Self-distillation pretraining (a demonstration)",
        "",
        f"A base model, the default recipe, {pre['steps']} steps of {pre['batch_size']} pairs, on these records. It "
        "shows the losses and the collapse monitor move; it is far too short to learn much, so the clinical "
        "comparisons below use the shipped `pretrained-base` encoder (its model card says how it was trained).",
        f"Loss terms with a weight above 0: {', '.join(trained) or 'none'}; at weight 0 (not trained, left out of "
        f"the table and the figures): {', '.join(off) or 'none'}.",
        "",
        markdown_table(["term", "weight", "first logged", "last logged"], loss_rows),
        "",
        "Collapse monitor (effective rank of the student's pooled embeddings in a batch; near 1 would be collapse; "
        "mean pairwise cosine; near 1 would be collapse):",
        "",
        markdown_table(["monitor", "first logged", "last logged"], monitor_rows),
        "",
        "![loss components](loss_curves.png)",
        "",
        "![spectra](spectra.png)",
        "",
        "## 4. Clinical tasks: every method on the same folds",
        "",
    ]
    for task, info in summary["tasks"].items():
        lines += [
            f"### {task}",
            "",
            f"`{info['data_dir']}`: {info['records']} records ({info['positives']} positive), {info['windows']} "
            f"windows; {info['folds']}-fold cross-validation by record, stratified by label, one repeat (seed "
            f"{info['seed']}); {info['seconds']:.0f} s.",
            "",
            _results_table(summary, task),
            "",
        ]
    diffs = summary["verdicts"]["paired_differences"]
    if diffs:
        lines += [
            "Paired differences (the two methods' out-of-fold scores of the same records, records resampled "
            "together, 1000 times):",
            "",
            markdown_table(["task", "method", "minus", "AUROC difference [95% CI]"],
                           [[d["task"], d["first"], d["second"], f"{d['difference']:+.3f} {_interval(*d['ci95'])}"]
                            for d in diffs]),
            "",
        ]
    lines += [
        "![ROC curves](roc.png)",
        "",
        "## How this was measured, and what it does not show",
        "",
        "- Every method is fitted on the training records of a fold and scores the fold's test records; fine-tuning "
        "holds 15% of the training records out for early stopping and its threshold. AUROC per record; the pooled "
        "out-of-fold AUROC ranks the scores of all folds together, with a 95% interval from resampling records.",
        f"- Fine-tuning runs the task's recipe for {summary['finetune_epochs']:g} epochs, keeping the epoch with the "
        "best validation AUROC; `qualityfm finetune`'s default is 30 epochs with early stopping, and "
        "`benchmarks/CLINICAL.md` reports it with 5 folds × 3 repeats. One repeat of few folds is a quick look: "
        "differences smaller than the intervals above are not findings.",
        "- `pretrained-base` was pretrained, without labels, on windows of these same PhysioNet VT and AF records "
        "(`benchmarks/PRETRAINING.md`), so rows that start from it are transductive; the project's real test is on "
        "records it never saw.",
        "- The AF records are ECG only (no PPG); the VT windows are the 10 s before each alarm.",
        "",
        "## Files",
        "",
        "- `summary.json`: every number above (`results`: task, method, auroc, auroc_ci; `verdicts`).",
        "- `predictions.json`: each method's out-of-fold probability per record.",
        "- `pretrain/encoder`: the demonstration run's teacher encoder (`AutoModel.from_pretrained`).",
        "- `pairs/`: the quality-divergent pairs (`qualityfm_hf.load_pairs`).",
        "",
    ]
    path = Path(output_dir) / "report.md"
    path.write_text("\n".join(lines))
    return path


def print_results(summary: dict) -> None:
    """The results table and the verdicts on the terminal (stdout), after the run's progress messages."""
    print()
    print("QualityFM quickstart: AUROC on the records each model was not fitted on (out of fold)")
    width = max(len(row["method"]) for row in summary["results"])
    for task in summary["tasks"]:
        info = summary["tasks"][task]
        print(f"\n{task}: {info['records']} records ({info['positives']} positive), {info['folds']} folds by record")
        print(f"  {'method':<{width}}  AUROC [95% CI]        over folds")
        for row in summary["results"]:
            if row["task"] == task:
                folds = row["auroc_over_folds"]
                print(f"  {row['method']:<{width}}  {row['auroc']:.3f} {_interval(*row['auroc_ci'])}  "
                      f"{folds['mean']:.3f} ± {folds['sd']:.3f}")
    print("\nVerdicts:")
    for sentence in summary["verdicts"]["sentences"]:
        print(f"- {sentence}")


__all__ = ["print_results", "results_rows", "verdicts", "write_report"]
