"""`qualityfm quickstart`: the whole method end to end on real ICU records, in minutes on a laptop CPU.

1. quality: every 30-s window of every record is scored and classed;
2. pairs: quality-divergent pairs are built within each record;
3. pretraining: a base model is self-distilled for a bounded number of steps with the default recipe (a short
   demonstration: the losses and collapse monitors are in the report);
4. fine-tuning: the VT false-alarm head, from the shipped pretrained encoder (`pretrained-base`, pretrained far
   longer on more records, see benchmarks/PRETRAINING.md) and from scratch, cross-validated by record on the same
   folds as the transparent baseline (`qualityfm_hf.finetuning.baselines`), then trained on all records;
5. evaluation: out-of-fold metrics of both and of the baselines;
6. a report directory with `report.md`, PNG figures and the saved models (loadable with `AutoModel`).

The defaults use the 12 PhysioNet 2015 records bundled in `qualityfm_hf/data/physionet2015_vt`. With so few records
every fold tests two or three alarms: the numbers show the pipeline works, they are not a benchmark
(benchmarks/CLINICAL.md is).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .quality import QUALITY_CLASSES
from .reports.figures import markdown_table, plot_quality_timeline, plot_roc_curves, plot_spectra
from .utils.log import get_logger

logger = get_logger(__name__)

BUNDLED_RECORDS = Path(__file__).parent / "data" / "physionet2015_vt"
TASK = "vt-false-alarm"
DEFAULT_STEPS = 120
DEFAULT_BATCH_SIZE = 8
# The encoder the VT head is fine-tuned from: the one shipped in the package, not the 120-step demonstration run.
PRETRAINED_MODEL = "pretrained-base"


def _say(message: str) -> None:
    logger.info(message)


def windows_by_record(pairs_dir: Path) -> dict[str, list[tuple[float, int]]]:
    """record -> [(start seconds, class index)] of the kept windows, read from the pair shards."""
    from .pairs.format import window_tables

    result: dict[str, list[tuple[float, int]]] = {}
    for table in window_tables(pairs_dir, columns=["record", "start_seconds", "quality_class"]):
        table = table.to_pydict()
        for record, start, cls in zip(table["record"], table["start_seconds"], table["quality_class"]):
            result.setdefault(record, []).append((float(start), int(cls)))
    return {record: sorted(rows) for record, rows in result.items()}


def quality_table(windows: dict[str, list[tuple[float, int]]]) -> str:
    rows = []
    for record in sorted(windows):
        counts = np.bincount([cls for _, cls in windows[record]], minlength=len(QUALITY_CLASSES))
        rows.append([record, len(windows[record])] + counts[::-1].tolist())
    return markdown_table(["record", "windows"] + list(QUALITY_CLASSES[::-1]), rows)


def spectra_example(model, pairs) -> tuple[dict, str]:
    """The student's predicted spectra vs the teacher window's targets on the first real pair."""
    import torch

    from .modeling.loss_qualityfm import spectral_targets

    item = pairs[0]
    config = model.config
    student = model.student.eval()
    with torch.no_grad():
        out = student(item["student_input_values"][None].float(), channel_mask=item["student_channel_mask"][None])
        amplitude, phase = spectral_targets(item["teacher_input_values"][None].float(), config.num_fft_bins,
                                            config.spectral_target)
    arrays = {"target_amplitude": amplitude[0].numpy(), "target_phase": phase[0].numpy(),
              "predicted_amplitude": out.amplitude[0].numpy(), "predicted_phase": out.phase[0].numpy()}
    return arrays, "first pair of the dataset"


def run_quickstart(
    output_dir: str | Path = "qualityfm-quickstart",
    data_dir: str | Path | None = None,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    finetune_epochs: float = 15.0,
    seed: int = 0,
    num_workers: int | None = None,
    n_bootstrap: int = 1000,
) -> dict:
    """Run the six steps; returns the summary also written to `<output_dir>/summary.json`."""
    import torch
    from transformers import AutoModel

    from .finetuning.evaluation import plot_results  # noqa: F401  (imported early: fail before the long steps)
    from .finetuning.finetune_cv import finetune_cv
    from .finetuning.train import training_arguments
    from .pairs.build import build_pairs
    from .pairs.dataset import load_pairs
    from .pretraining.recipes import default_training_arguments
    from .pretraining.trainer import pretrain

    started = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir else BUNDLED_RECORDS
    use_cpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cpu"
    timings = {}

    _say(f"1-2/6 quality scores and pairs for the records in {data_dir}")
    t0 = time.perf_counter()
    manifest = build_pairs(data_dir, output_dir / "pairs", num_workers=num_workers)
    windows = windows_by_record(output_dir / "pairs")
    table = quality_table(windows)
    print(table)
    from .tasks.vt_false_alarm import read_label_csv

    labels = read_label_csv(data_dir / "labels.csv") if (data_dir / "labels.csv").is_file() else {}
    plot_quality_timeline(windows, output_dir / "quality_timeline.png", labels=labels)
    timings["quality_and_pairs_s"] = time.perf_counter() - t0
    counts = manifest["counts"]
    if not counts.get("pairs"):
        raise ValueError(
            f"No quality-divergent pairs in {data_dir}: every kept window of each record has the same quality class "
            "(or no window was kept). Add longer or more varied recordings."
        )

    _say(f"3/6 self-distillation pretraining of a base model for {steps} steps")
    t0 = time.perf_counter()
    pairs = load_pairs(output_dir / "pairs")
    args = default_training_arguments(
        output_dir / "pretrain", max_steps=steps, per_device_train_batch_size=batch_size,
        logging_steps=max(1, steps // 30), save_steps=max(steps // 2, 1), save_total_limit=1, seed=seed,
        use_cpu=use_cpu, dataloader_drop_last=len(pairs) >= batch_size,
    )
    trainer = pretrain(pairs, "base", args)  # the default recipe
    encoder_dir = output_dir / "pretrain" / "encoder"
    spectra, spectra_note = spectra_example(trainer.model.cpu(), pairs)
    plot_spectra(**spectra, path=output_dir / "spectra.png",
                 title=f"Teacher-window targets vs student predictions after {steps} steps ({spectra_note})")
    loss_png = output_dir / "pretrain" / "loss_curves.png"
    if loss_png.exists():
        (output_dir / "loss_curves.png").write_bytes(loss_png.read_bytes())
    losses = [row for row in trainer.state.log_history if "loss" in row and "distillation_loss" in row]
    timings["pretraining_s"] = time.perf_counter() - t0

    results = {}
    for name, model in (("pretrained", PRETRAINED_MODEL), ("scratch", "base")):
        _say(f"4-5/6 cross-validating the VT false-alarm head from {name} weights by record, then the final model")
        t0 = time.perf_counter()
        ft_args = training_arguments(output_dir / f"vt-{name}" / "checkpoints", seed=seed, use_cpu=use_cpu,
                                     num_train_epochs=finetune_epochs, disable_tqdm=True)
        # The baselines are fitted once, with the first model, on the same folds (they do not depend on it).
        results[name] = finetune_cv(TASK, data_dir, model, output_dir / f"vt-{name}", ft_args, seed=seed,
                                    n_bootstrap=n_bootstrap, baselines=name == "pretrained")
        timings[f"finetune_{name}_s"] = time.perf_counter() - t0

    curves = {}
    for name in results:
        predictions = [p for p in json.loads((output_dir / f"vt-{name}" / "cv_predictions.json").read_text())
                       if p["repeat"] == 0]
        curves[name] = (np.array([p["label"] for p in predictions]),
                        np.array([p["probability"] for p in predictions]))
    plot_roc_curves(curves, output_dir / "roc.png",
                    title="VT alarms, out-of-fold predictions (positive class: a true alarm)")

    # The saved models must load with AutoModel: check it here rather than leave it to the reader.
    for directory in (encoder_dir, output_dir / "vt-pretrained", output_dir / "vt-scratch"):
        AutoModel.from_pretrained(directory)

    timings["total_s"] = time.perf_counter() - started
    summary = {
        "data_dir": str(data_dir), "steps": steps, "batch_size": batch_size, "pairs": counts,
        "class_matrix": manifest.get("class_matrix"), "losses": losses, "finetune": results, "timings": timings,
        "checks": report_checks(trainer, losses, spectra, curves),
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    write_report(output_dir, summary, table)
    _say(f"done in {timings['total_s']:.0f} s; report: {output_dir / 'report.md'}")
    return summary


def report_checks(trainer, losses: list[dict], spectra: dict, curves: dict) -> list[str]:
    """What the report's numbers do not show by themselves: a collapsed pretraining (the collapse monitors), a
    spectral decoder that predicts a flat line, a fine-tuned model that scores every record alike. One line each;
    empty when none applies."""
    from .pretraining.monitors import collapse_warnings

    config = trainer.model.config
    checks = []
    if losses:
        prototypes = config.num_prototypes if config.distillation_target == "pooled" else config.hidden_size
        checks += [f"pretraining: collapse at the last logged step: {problem}."
                   for problem in collapse_warnings(losses[-1], prototypes)]
    predicted = np.asarray(spectra.get("predicted_amplitude", []), dtype=np.float64)
    target = np.asarray(spectra.get("target_amplitude", []), dtype=np.float64)
    if predicted.size and np.nanstd(predicted) < 0.05 * max(np.nanstd(target), 1e-12):
        checks.append("pretraining: the spectral decoder predicts an almost flat spectrum (spread under 5% of the "
                      "target's): it has not learned the spectrum yet.")
    for name, (_, scores) in curves.items():
        if scores.size and np.ptp(scores) < 1e-6:
            checks.append(f"fine-tuning from {name}: every record gets the same score ({scores[0]:.3f}); the model "
                          "does not tell true from false alarms.")
    return checks


def _metric_rows(results: dict) -> list[list]:
    """One row per method of the cross-validation: the two initialisations, then the baselines (same folds)."""
    rows = []
    for name, metrics in results.items():
        cv = metrics["cross_validation"]
        for method, result in cv.items():
            if not isinstance(result, dict) or "over_folds" not in result:
                continue
            label = name if method == "model" else method.replace("baseline:", "baseline: ")
            folds, pooled = result["over_folds"]["auroc"], result["pooled_oof"][0]
            low, high = pooled.get("auroc_ci95", [float("nan")] * 2)
            rows.append([label, pooled["records"], f"{folds['mean']:.3f} ± {folds['sd']:.3f} ({folds['n']} folds)",
                         f"{pooled['auroc']:.3f} [{low:.3f}, {high:.3f}]",
                         metrics.get("decision_threshold") if method == "model" else "n/a"])
    return rows


def write_report(output_dir: Path, summary: dict, table: str) -> Path:
    losses = summary["losses"]
    first, last = (losses[0], losses[-1]) if losses else ({}, {})
    from .pretraining.recipes import LOSS_COMPONENTS

    components = ("loss",) + LOSS_COMPONENTS + ("teacher_entropy", "distinct_prototypes", "student_rank", "student_cosine")
    # Only what the run logged and used: a term that is off logs exactly 0, and the teacher monitors exist only
    # with a distillation term (the default recipe has none).
    loss_rows = [[name, first[name], last[name]] for name in components
                 if name in first and name in last and any(row.get(name, 0) != 0 for row in losses)]
    cv = summary["finetune"]["pretrained"]["cross_validation"]
    lines = [
        "# QualityFM quickstart report",
        "",
        f"Records: `{summary['data_dir']}`. Pretraining demonstration: base model, default recipe, "
        f"{summary['steps']} steps of batch {summary['batch_size']} pairs. Fine-tuning starts from the shipped "
        f"`{PRETRAINED_MODEL}` encoder. Time: {summary['timings']['total_s']:.0f} s in all.",
        "",
        "## 1. Signal quality",
        "",
        "Kept 30-s windows per record and quality class (Excellent >= 0.9 > Good >= 0.7 > Acceptable >= 0.5 > "
        "Poor >= 0.3 > Bad).",
        "",
        table,
        "",
        "![quality classes over time](quality_timeline.png)",
        "",
        "## 2. Pairs",
        "",
        f"Counts: `{json.dumps(summary['pairs'])}`.",
        "",
        "## 3. Self-distillation pretraining",
        "",
        "A short demonstration of the default recipe on these records; the encoder the VT head is fine-tuned from "
        f"is the shipped `{PRETRAINED_MODEL}` (its model card says how it was trained and what it scores). Besides "
        "the losses, the collapse monitor: an effective rank of the pooled embeddings near 1 (of at most the batch "
        "size) would mean collapse.",
        "",
        markdown_table(["component", "first logged", "last logged"], loss_rows),
        "",
        "![loss components](loss_curves.png)",
        "",
        "![spectra](spectra.png)",
        "",
        "## 4-5. VT false-alarm detection, cross-validated by record (positive class: a true alarm)",
        "",
        f"{cv['folds']}-fold cross-validation by record on {cv['records']} records, stratified by label. Each fold "
        "fine-tunes on the other folds (15% of their records held out for early stopping) and scores records it "
        "never saw; the transparent baselines are fitted and scored on the same folds. AUROC per fold, and pooled "
        "over the out-of-fold predictions with a bootstrap 95% CI over records. The saved models are then trained "
        "on all records; their threshold comes from the out-of-fold predictions.",
        "",
        markdown_table(["method", "records", "AUROC over folds", "pooled out-of-fold AUROC [95% CI]",
                        "threshold"], _metric_rows(summary["finetune"])),
        "",
        "![ROC](roc.png)",
        "",
        "With a dozen records each fold tests two or three alarms, so these numbers carry wide intervals: they "
        "show that the pipeline runs end to end on real data, not how well QualityFM detects false alarms "
        "(`benchmarks/CLINICAL.md` does that on 231 records).",
        "",
        "## Saved models",
        "",
        "- `pretrain/encoder`: the demonstration run's teacher encoder (`AutoModel.from_pretrained`), with its "
        "feature extractor.",
        f"- `vt-pretrained` (from `{PRETRAINED_MODEL}`), `vt-scratch`: fine-tuned VT false-alarm heads with model "
        "cards (`README.md`).",
        "",
    ]
    checks = summary.get("checks") or []
    lines[2:2] = ["**Checks.** " + (" ".join(checks) if checks else
                                     "No collapse signalled by the monitors, the spectral decoder's prediction is not "
                                     "flat, and no fine-tuned model scores every record alike."), ""]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


__all__ = ["BUNDLED_RECORDS", "run_quickstart", "write_report"]
