"""Task data shared by fine-tuning, evaluation, probing and the pipelines: the task registry, a task's windows as a
table, one window through the feature extractor, crops and batches.

One path for a window of a clinical task: `build_task_table` (the task module cuts windows from the records) ->
`extract_row` (the feature extractor; a single unusable channel is masked) -> `window_crops` (test-time crops for a
model fine-tuned on crops) -> `collate` (a padded batch). `finetuning` trains on it and `evaluation` scores with it;
neither imports the other for it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np

from ..modeling import heads_qualityfm
from ..modeling.configuration_qualityfm import QualityFMConfig
from ..recordings.io import find_channel, read_recording
from ..tasks import abp, af, vt_false_alarm

TASKS: dict[str, ModuleType] = {"vt-false-alarm": vt_false_alarm, "af": af, "abp": abp}
HEAD_TO_TASK = {module.HEAD_CLASS: name for name, module in TASKS.items()}


def get_task(task: str) -> ModuleType:
    if task not in TASKS:
        raise ValueError(f"task is {task!r}, but has to be one of {list(TASKS)}.")
    return TASKS[task]


def head_class(task: str) -> type:
    return getattr(heads_qualityfm, get_task(task).HEAD_CLASS)


def build_task_table(task: str, data_dir: str | Path, **options):
    """`tasks.<task>.build_dataset` with the package's WFDB/VitalDB reader (`qualityfm_hf.recordings.io`): one flat
    `datasets.Dataset` of windows with a `split` column (what fine-tuning, evaluation and probing read). The typed
    `DatasetDict` for users is `qualityfm_hf.build_task_dataset`."""
    from ..utils.progress import progress_bar

    bar = progress_bar(desc=f"{task}: reading records", unit="record")

    def reader(path):
        bar.update(1)  # the task module reads each record once through this reader
        return read_recording(path)

    try:
        return get_task(task).build_dataset(data_dir, reader=reader, find_channel=find_channel, **options)
    finally:
        bar.close()


def checkpoint_task(model_dir: str | Path) -> str | None:
    """Task of a saved checkpoint from `config.json`'s `architectures`, None for a bare backbone."""
    return config_task(QualityFMConfig.from_pretrained(str(model_dir)))


def config_task(config) -> str | None:
    """Task of the head a config's `architectures` names, None for a bare backbone."""
    return next((HEAD_TO_TASK[name] for name in config.architectures or [] if name in HEAD_TO_TASK), None)


# What the feature extractor hands a task head: `rhythm_features` only when it was asked for (`rhythm_features=True`).
MODEL_INPUTS = ("input_values", "attention_mask", "channel_mask", "rhythm_features")


def extract_row(feature_extractor, signals: np.ndarray, channel_mask, sampling_rate: float) -> tuple[dict | None, str]:
    """Feature-extract one task window `(2, T)`. When one channel is unusable (flat, missing) and the other is fine,
    the window is kept with that channel masked, as for a record without it: pretraining dropped whole channels
    (modality dropout), and a disconnected lead is itself evidence (e.g. of a false alarm) that dropping the record
    would hide. Returns `(features or None, note)` with the reason of any change."""
    names = feature_extractor.channel_names
    present = {name: signals[i] for i, name in enumerate(names) if channel_mask[i]}
    note = ""
    for _ in range(2):
        try:
            out = feature_extractor(present, sampling_rate=float(sampling_rate), segment_seconds=None,
                                    return_rejected=True)
            return {k: out[k][0] for k in MODEL_INPUTS if k in out}, note
        except ValueError as err:
            message = str(err)
            reason = message.split("first: ", 1)[1].split(":")[0] if "first: " in message else "rejected"
            bad = next((name for name in names if reason.startswith(name)), None)
            if bad is not None and bad in present and len(present) > 1 and not note:
                present.pop(bad)  # retry with that channel masked
                note = f"{reason} -> {bad.split('_')[0]} masked"
                continue
            return None, f"{note}; {reason}" if note else reason
    return None, note


def extract_features(dataset, feature_extractor) -> tuple[list[dict], Counter]:
    """Run the feature extractor on each row (one window each; the task already windowed).

    Returns:
        `(features, notes)`: one dict per kept row with `input_values` `(2, T)` float32, `attention_mask` `(T,)`,
        `channel_mask` `(2,)`, `labels`, `record`, `split`, `row`; and a count by reason of rows rejected or kept
        with the PPG masked.
    """
    from ..utils.progress import progress_bar

    features, notes = [], Counter()
    for index, row in enumerate(progress_bar(dataset.with_format("numpy"), desc="feature extraction",
                                             unit="window")):
        out, note = extract_row(feature_extractor, np.asarray(row["signals"], dtype=np.float64), row["channel_mask"],
                                row["sampling_rate"])
        if note:
            notes[note if out is not None else f"{note} -> row dropped"] += 1
        if out is None:
            continue
        features.append({
            **out,
            "labels": np.asarray(row["label"], dtype=np.float32),
            "record": str(row["record"]),
            "split": str(row.get("split", "")),
            "row": index,
        })
    if notes:
        summary = ", ".join(f"{n} x {r}" for r, n in notes.most_common())
        warnings.warn(f"feature extractor: {sum(notes.values())} rows affected ({summary}).", stacklevel=2)
    return features, notes


def crop_inputs(item: dict, start: int, length: int) -> dict:
    """`input_values` and `attention_mask` of `length` real samples of a window from `start` (training crops and
    the test-time crops of `evaluation.window_crops`)."""
    return {"input_values": item["input_values"][:, start:start + length],
            "attention_mask": np.ones(length, dtype=np.int64)}


def collate(batch: list[dict]) -> dict:
    """Right-pad `input_values` `(2, T)` and `attention_mask` to the longest window of the batch (multiples of 500);
    stack `channel_mask`, `rhythm_features` and `labels`."""
    import torch

    longest = max(item["input_values"].shape[-1] for item in batch)
    values = torch.zeros(len(batch), batch[0]["input_values"].shape[0], longest)
    mask = torch.zeros(len(batch), longest, dtype=torch.long)
    for i, item in enumerate(batch):
        length = item["input_values"].shape[-1]
        values[i, :, :length] = torch.as_tensor(item["input_values"])
        mask[i, :length] = torch.as_tensor(item["attention_mask"])
    out = {
        "input_values": values,
        "attention_mask": mask,
        "channel_mask": torch.as_tensor(np.stack([item["channel_mask"] for item in batch])),
    }
    for key in ("rhythm_features", "labels"):  # whole-window values: a crop keeps its window's
        if key in batch[0]:
            out[key] = torch.as_tensor(np.stack([item[key] for item in batch]))
    return out


def crop_starts(length: int, crop: int, hop: int) -> list[int]:
    """Starts of `crop`-sample crops every `hop` samples over `length` real samples, the last flush with the end, so
    every sample is covered; one start (0) when the window is no longer than a crop."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, hop))
    return starts if starts[-1] == length - crop else [*starts, length - crop]


def window_crops(item: dict, crop: int | None, hop: int | None = None) -> list[dict]:
    """Model inputs of one window, or of its overlapping `crop`-sample crops (half-overlapping by default)."""
    inputs = {k: item[k] for k in MODEL_INPUTS if k in item}
    length = int(np.asarray(item["attention_mask"]).sum())
    if not crop or length <= crop:
        return [inputs]
    return [{**inputs, **crop_inputs(inputs, s, crop)} for s in crop_starts(length, crop, hop or crop // 2)]


def inference_crop_samples(config) -> int | None:
    """`config.crop_seconds` (set by fine-tuning with random crops) in samples, None when the model sees whole
    windows."""
    seconds = getattr(config, "crop_seconds", None)
    return int(round(seconds * config.sampling_rate)) if seconds else None


__all__ = [
    "HEAD_TO_TASK",
    "MODEL_INPUTS",
    "TASKS",
    "build_task_table",
    "checkpoint_task",
    "collate",
    "config_task",
    "crop_inputs",
    "crop_starts",
    "extract_features",
    "extract_row",
    "get_task",
    "head_class",
    "inference_crop_samples",
    "window_crops",
]
