"""`qualityfm quickstart`: the method end to end on real ICU records that ship with the package, in minutes on a CPU.

1. quality: every 30-s window of the full VT records is scored and classed;
2. pairs: quality-divergent pairs are built within each record;
3. pretraining: a base model is self-distilled for a few steps with the default recipe (a demonstration of the
   losses and the collapse monitor; the encoder evaluated below is the shipped `pretrained-base`);
4. VT false alarms (231 records) and AF (200 ECGs): the same record-level folds for `pretrained-base` fine-tuned,
   its frozen probe, a random initialisation (fine-tuned and probed) and the transparent baselines
   (`finetuning.compare`);
5. a report (`report.md`, `summary.json`, figures) whose verdicts are drawn from its numbers
   (`reports.quickstart_report`), and the results table on the terminal.

The bundled data (`qualityfm_hf/data/README.md`): 12 full PhysioNet 2015 VT-alarm records for steps 1-3, the 20 s
before the alarm of all 231 VT records, and the 200 PhysioNet 2017 AF ECGs.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from .quality import QUALITY_CLASSES
from .reports.figures import markdown_table, plot_quality_timeline, plot_roc_curves, plot_spectra
from .utils.log import get_logger

logger = get_logger(__name__)

BUNDLED_DATA = Path(__file__).parent / "data"
BUNDLED_RECORDS = BUNDLED_DATA / "physionet2015_vt"  # 12 full records (300 s, II + PLETH + ABP)
BUNDLED_TASK_DATA = {
    "vt-false-alarm": BUNDLED_DATA / "physionet2015_vt_prealarm",  # 231 records, the 20 s before each alarm
    "af": BUNDLED_DATA / "physionet2017_af",  # 200 single-lead ECGs, 9-60 s
}
TASK_TITLES = {"vt-false-alarm": "VT false alarm (positive: a true alarm)", "af": "AF (positive: AF)"}
DEFAULT_STEPS = 60
DEFAULT_BATCH_SIZE = 8
# Fine-tuning in the quickstart: the task recipe with a shorter schedule than `qualityfm finetune`'s (30 epochs,
# early stopping), so four methods on two tasks fit in minutes; both initialisations get the same schedule.
DEFAULT_FINETUNE_EPOCHS = 10.0
DEFAULT_FOLDS = 3


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


def spectra_example(model, pairs) -> dict:
    """The student's predicted spectra vs the teacher window's targets on the first pair."""
    import torch

    from .modeling.loss_qualityfm import spectral_targets

    item = pairs[0]
    config = model.config
    student = model.student.eval()
    with torch.no_grad():
        out = student(item["student_input_values"][None].float(), channel_mask=item["student_channel_mask"][None])
        amplitude, phase = spectral_targets(item["teacher_input_values"][None].float(), config.num_fft_bins,
                                            config.spectral_target)
    return {"target_amplitude": amplitude[0].numpy(), "target_phase": phase[0].numpy(),
            "predicted_amplitude": out.amplitude[0].numpy(), "predicted_phase": out.phase[0].numpy()}


def pretraining_demo(data_dir: Path, output_dir: Path, steps: int, batch_size: int, seed: int, use_cpu: bool,
                     num_workers: int | None) -> dict:
    """Steps 1-3: quality, pairs, a short pretraining. Returns what the report needs."""
    from .pairs.build import build_pairs
    from .pairs.dataset import load_pairs
    from .pretraining.recipes import default_training_arguments, loss_weights
    from .pretraining.trainer import pretrain
    from .tasks.vt_false_alarm import read_label_csv

    started = time.perf_counter()
    manifest = build_pairs(data_dir, output_dir / "pairs", num_workers=num_workers)
    windows = windows_by_record(output_dir / "pairs")
    labels = read_label_csv(data_dir / "labels.csv") if (data_dir / "labels.csv").is_file() else {}
    plot_quality_timeline(windows, output_dir / "quality_timeline.png", labels=labels)
    quality_seconds = time.perf_counter() - started
    counts = manifest["counts"]
    if not counts.get("pairs"):
        raise ValueError(
            f"No quality-divergent pairs in {data_dir}: every kept window of each record has the same quality class "
            "(or no window was kept). Pass longer or more varied recordings with --data."
        )

    started = time.perf_counter()
    pairs = load_pairs(output_dir / "pairs")
    # No checkpoints: a demonstration of a few steps has nothing to resume, and a checkpoint with the optimiser's
    # state is 240 MB. The teacher encoder is exported to pretrain/encoder at the end.
    args = default_training_arguments(
        output_dir / "pretrain", max_steps=steps, per_device_train_batch_size=batch_size,
        logging_steps=max(1, steps // 10), save_strategy="no", seed=seed, use_cpu=use_cpu, disable_tqdm=True,
        dataloader_drop_last=len(pairs) >= batch_size,
    )
    trainer = pretrain(pairs, "base", args)  # the default recipe
    config = trainer.model.config
    spectra = spectra_example(trainer.model.cpu(), pairs)
    phase_used = config.phase_loss_weight > 0
    plot_spectra(**spectra, path=output_dir / "spectra.png", show_phase=phase_used,
                 title=f"First pair after {steps} steps: teacher-window target vs student prediction")
    loss_png = output_dir / "pretrain" / "loss_curves.png"
    if loss_png.exists():
        shutil.copyfile(loss_png, output_dir / "loss_curves.png")
    # Keep the exported teacher encoder; the whole self-distillation model beside it (student, teacher, decoder;
    # 77 MB) is of no use after a demonstration.
    for path in (output_dir / "pretrain").iterdir():
        if path.is_file():
            path.unlink()
    losses = [row for row in trainer.state.log_history if "loss" in row and "amplitude_loss" in row]
    return {"data_dir": str(data_dir), "steps": steps, "batch_size": batch_size, "pairs": counts,
            "quality_table": quality_table(windows), "losses": losses, "loss_weights": loss_weights(config),
            "spectra": {k: np.asarray(v) for k, v in spectra.items()},
            "seconds": {"quality_and_pairs": round(quality_seconds, 1),
                        "pretraining": round(time.perf_counter() - started, 1)}}


def run_quickstart(
    output_dir: str | Path = "qualityfm-quickstart",
    data_dir: str | Path | None = None,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    finetune_epochs: float = DEFAULT_FINETUNE_EPOCHS,
    seed: int = 0,
    num_workers: int | None = None,
    n_bootstrap: int = 1000,
    folds: int = DEFAULT_FOLDS,
    tasks: tuple[str, ...] = ("vt-false-alarm", "af"),
    task_data: dict[str, str | Path] | None = None,
) -> dict:
    """Run the quickstart; returns the summary also written to `<output_dir>/summary.json`.

    `data_dir` replaces the bundled full records for steps 1-3 and, when it holds labelled VT alarms, the bundled VT
    records too; `task_data` maps a task to another folder. `tasks` picks the clinical tasks to compare."""
    import torch

    from .finetuning.compare import compare_methods
    from .finetuning.train import training_arguments
    from .reports.quickstart_report import print_results, results_rows, verdicts, write_report

    started = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    task_data = {task: Path(path) for task, path in {**BUNDLED_TASK_DATA, **(task_data or {})}.items()}
    if data_dir is not None:
        task_data["vt-false-alarm"] = Path(data_dir)
    pretrain_dir = Path(data_dir) if data_dir else BUNDLED_RECORDS
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    use_cpu = device == "cpu"

    _say(f"1-3/5 quality, pairs and {steps} pretraining steps on the records in {pretrain_dir}")
    demo = pretraining_demo(pretrain_dir, output_dir, steps, batch_size, seed, use_cpu, num_workers)
    print(demo["quality_table"])

    comparisons = {}
    # Twelve fine-tunings: the terminal gets one line per method (`_say`), not the Trainer's line per log step.
    from .utils.trainer_logs import logger as trainer_log

    trainer_log_level = trainer_log.level
    trainer_log.setLevel(max(logging.WARNING, trainer_log.getEffectiveLevel()))
    try:
        for task in tasks:
            _say(f"4/5 {task}: {folds}-fold cross-validation by record of every method on {task_data[task]}")
            t0 = time.perf_counter()
            args = training_arguments(output_dir / f"{task}-folds", seed=seed, use_cpu=use_cpu,
                                      num_train_epochs=finetune_epochs, disable_tqdm=True, save_only_model=True)
            comparisons[task] = compare_methods(task, task_data[task], args, folds=folds, seed=seed,
                                                n_bootstrap=n_bootstrap, device=device, progress=_say)
            comparisons[task]["data_dir"] = str(task_data[task])
            comparisons[task]["seconds"] = round(time.perf_counter() - t0, 1)
            shutil.rmtree(output_dir / f"{task}-folds", ignore_errors=True)
    finally:
        trainer_log.setLevel(trainer_log_level)

    _say("5/5 report")
    curves = {task: {method: (np.array([p["label"] == 1 for p in rows], dtype=int),
                              np.array([p["probability"] for p in rows]))
                     for method, rows in comparison["predictions"].items()}
              for task, comparison in comparisons.items()}
    plot_roc_curves(curves, output_dir / "roc.png", titles=TASK_TITLES)
    summary = {
        "pretraining": {k: v for k, v in demo.items() if k not in ("spectra", "quality_table")},
        "finetune_epochs": finetune_epochs, "device": device, "seed": seed,
        "tasks": {task: {k: v for k, v in c.items() if k != "predictions"} for task, c in comparisons.items()},
    }
    summary["results"] = results_rows(comparisons)
    summary["verdicts"] = verdicts(demo, comparisons, n_bootstrap=n_bootstrap, seed=seed)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    (output_dir / "predictions.json").write_text(json.dumps(
        {task: c["predictions"] for task, c in comparisons.items()}, indent=1) + "\n")
    write_report(output_dir, summary, demo["quality_table"])
    print_results(summary)
    _say(f"done in {summary['seconds']:.0f} s; report: {output_dir / 'report.md'}")
    return summary


__all__ = ["BUNDLED_DATA", "BUNDLED_RECORDS", "BUNDLED_TASK_DATA", "run_quickstart"]
