"""Clinical-task data as a `datasets.DatasetDict`: typed, split by record, with its provenance.

    import qualityfm_hf
    from qualityfm_hf.finetuning.task_datasets import load_task_feature_extractor

    data = qualityfm_hf.build_task_dataset("af", "qualityfm_hf/data/physionet2017_af", seed=0)
    data["train"].features["label"].names                  # ['not AF', 'AF']
    inputs = qualityfm_hf.add_model_inputs(data, load_task_feature_extractor("af"), num_proc=2)
    data.save_to_disk("af_windows")                        # or qualityfm_hf.push_task_dataset(data, "org/af-windows")

Each row is one task window as `tasks.<task>.build_dataset` cuts it (`signals` `[PPG, ECG]` at the record's own
rate, `channel_mask`, `sampling_rate`, `record`, `start_seconds`, `channels`) with the label typed: `ClassLabel`
with the task's names for VT alarms and AF, `sbp_mmhg`/`dbp_mmhg` floats for ABP. Records, never windows, are
split into train/validation/test (stratified by label, seeded), so no patient is in two splits. `DatasetInfo`
holds the provenance: `description` is the JSON of `tasks.common.dataset_metadata` (task, seed, fractions, every
record's split, options, records skipped and why), `homepage` the data folder. `save_to_disk` keeps it;
`DatasetDict.push_to_hub` does not (its card holds only features, splits and sizes), so `push_task_dataset` also
writes it into the dataset card, where `task_dataset_provenance(repo_id)` reads it back.

`add_model_inputs` runs the feature extractor through `Dataset.map` (`num_proc` workers; datasets caches the
result for datasets loaded from disk), the same per-window step fine-tuning uses (`task_data.extract_row`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from ..tasks.common import DEFAULT_FRACTIONS, SPLITS, dataset_metadata
from .task_data import build_task_table, extract_row, get_task

ABP_COLUMNS = ("sbp_mmhg", "dbp_mmhg")


def task_features(task: str):
    """The typed `datasets.Features` of `build_task_dataset(task, ...)` rows."""
    import datasets

    module = get_task(task)
    columns = {
        "record": datasets.Value("string"),
        "signals": datasets.List(datasets.List(datasets.Value("float32"))),  # (2, T): [PPG, ECG] at sampling_rate
        "sampling_rate": datasets.Value("float64"),
        "channel_mask": datasets.List(datasets.Value("int64")),
        "start_seconds": datasets.Value("float64"),
        "channels": datasets.Value("string"),
    }
    if module.PROBLEM == "regression":
        columns.update({name: datasets.Value("float32") for name in ABP_COLUMNS})
    else:
        columns["label"] = datasets.ClassLabel(names=[module.ID2LABEL[i] for i in sorted(module.ID2LABEL)])
    return datasets.Features(columns)


def build_task_dataset(task: str, data_dir: str | Path, *, seed: int = 0,
                       fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, **options):
    """The task's windows of `data_dir` as a `DatasetDict` with `train`, `validation` and `test` splits by record.

    Args:
        task (`str`): "vt-false-alarm", "af" or "abp".
        data_dir (`str` or `os.PathLike`): the records (WFDB or `.vital`), as `qualityfm finetune --data` takes.
        seed (`int`, defaults to 0): seed of the record split (stored in the info).
        fractions (`tuple`, defaults to (0.7, 0.15, 0.15)): train/validation/test shares of the records.
        **options: passed to `tasks.<task>.build_dataset` (e.g. `window_seconds`, `labels_csv` for VT alarms).

    Raises:
        `ValueError`: no usable record (the message counts the reasons).
    """
    import datasets

    table = build_task_table(task, data_dir, seed=seed, fractions=fractions, **options)
    metadata = dataset_metadata(table)
    features = task_features(task)
    columns = table.to_dict()
    if get_task(task).PROBLEM == "regression":
        labels = np.asarray(columns.pop("label"), dtype=np.float32).reshape(-1, len(ABP_COLUMNS))
        columns.update({name: labels[:, index].tolist() for index, name in enumerate(ABP_COLUMNS)})
    splits = np.asarray(columns.pop("split"))
    info = datasets.DatasetInfo(description=json.dumps(metadata), homepage=str(data_dir), features=features)
    return datasets.DatasetDict({
        split: datasets.Dataset.from_dict(
            {key: [values[i] for i in np.flatnonzero(splits == split)] for key, values in columns.items()},
            features=features, info=copy.deepcopy(info), split=split,
        )
        for split in SPLITS
    })


PROVENANCE_KEY = "qualityfm_provenance"


def push_task_dataset(data, repo_id: str, **push_kwargs):
    """`data.push_to_hub(repo_id, **push_kwargs)`, then the provenance into the dataset card.

    `push_to_hub` writes features, splits and sizes into the card but drops `DatasetInfo.description`, so the split
    seed and each record's split would be lost on the Hub. Here they go into the card's YAML under
    `qualityfm_provenance` and into a readable section. Returns the `CommitInfo` of the card's commit."""
    from huggingface_hub import DatasetCard

    description = next(iter(data.values())).info.description
    if not description:
        raise ValueError("this DatasetDict has no provenance in its info.description; push one that "
                         "build_task_dataset returned, or call its push_to_hub directly.")
    metadata = json.loads(description)
    data.push_to_hub(repo_id, **push_kwargs)
    hub = {k: push_kwargs[k] for k in ("token", "revision") if push_kwargs.get(k) is not None}
    card = DatasetCard.load(repo_id, repo_type="dataset", **hub)
    card.data[PROVENANCE_KEY] = metadata
    per_split = metadata.get("records_per_split") or {}
    counts = ", ".join(f"{split} {per_split.get(split, 0)}" for split in SPLITS)
    card.text = (card.text.rstrip() + "\n\n## Provenance\n\n"
                 f"Windows of the `{metadata.get('task')}` task cut by qualityfm-hf's `build_task_dataset`; records "
                 f"split by record with seed {metadata.get('seed')} (records per split: {counts}). The full "
                 f"provenance (every record's split, options, records skipped and why) is the `{PROVENANCE_KEY}` "
                 "entry of this card's metadata: `qualityfm_hf.task_dataset_provenance(repo_id)`.\n")
    return card.push_to_hub(repo_id, repo_type="dataset", commit_message="Add the provenance of the task windows",
                            **hub)


def task_dataset_provenance(repo_id: str, **hub_kwargs) -> dict:
    """The provenance `push_task_dataset` wrote into a dataset repo's card (`token`/`revision` as hub_kwargs)."""
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(repo_id, repo_type="dataset", **hub_kwargs)
    if PROVENANCE_KEY not in card.data:
        raise ValueError(f"the dataset card of {repo_id} has no {PROVENANCE_KEY!r} entry; it was not pushed with "
                         "qualityfm_hf.push_task_dataset.")
    return dict(card.data[PROVENANCE_KEY])


def add_model_inputs(data, feature_extractor, num_proc: int | None = None):
    """Add the model's inputs to every row through `Dataset.map`: `input_values` `(2, T)` at 300 Hz,
    `attention_mask` `(T,)`, `model_channel_mask` `(2,)` (a single unusable channel masked, as in fine-tuning) and
    `extraction_note`; rows the feature extractor rejects are dropped. Works on a `Dataset` or a `DatasetDict`."""

    def extract(batch):
        out = {"input_values": [], "attention_mask": [], "model_channel_mask": [], "extraction_note": [], "kept": []}
        for signals, mask, rate in zip(batch["signals"], batch["channel_mask"], batch["sampling_rate"]):
            features, note = extract_row(feature_extractor, np.asarray(signals, dtype=np.float64), mask, rate)
            out["kept"].append(features is not None)
            out["extraction_note"].append(note)
            features = features or {"input_values": np.zeros((2, 0), np.float32),
                                    "attention_mask": np.zeros(0, np.int64), "channel_mask": np.zeros(2, np.int64)}
            out["input_values"].append(np.asarray(features["input_values"], dtype=np.float32))
            out["attention_mask"].append(np.asarray(features["attention_mask"], dtype=np.int64))
            out["model_channel_mask"].append(np.asarray(features["channel_mask"], dtype=np.int64))
        return out

    mapped = data.map(extract, batched=True, batch_size=16, num_proc=num_proc, desc="feature extraction")
    return mapped.filter(lambda kept: kept, input_columns="kept", num_proc=num_proc).remove_columns("kept")


def load_task_feature_extractor(task: str, **options):
    """The feature extractor fine-tuning uses for `task` (`finetuning.task_recipe`), with `options` on top."""
    from ..modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor
    from .train import task_recipe

    return QualityFMFeatureExtractor(**task_recipe(task, feature_extractor=options)["feature_extractor"])


__all__ = [
    "add_model_inputs",
    "build_task_dataset",
    "load_task_feature_extractor",
    "push_task_dataset",
    "task_dataset_provenance",
    "task_features",
]
