"""Shared pieces of the clinical task datasets: the reader contract, record splits, windows and the Dataset build.

`tasks/` sits between `modeling/` and `qualityfm_hf/` (modeling <- tasks <- qualityfm_hf), so it does not import the
package's WFDB reader. Builders take the reader as arguments instead:

- `reader(path) -> recording`, where `recording` has `name`, `signals` (channel -> 1-D float array, physical units,
  NaN = missing), `sampling_rates` (channel -> Hz) and `comments` (header comment lines);
- `find_channel(recording, kind) -> str | None` for kind "PPG", "ECG" (lead II else the first ECG lead) or "ABP".

`qualityfm_hf.recordings.io.read_recording` and `qualityfm_hf.recordings.io.find_channel` fit; `qualityfm_hf.finetuning.task_data.build_task_table`
passes them. Every dataset row is one model input window with columns `record`, `signals` (`(2, T)` float32 in the
order [PPG, ECG_II], NaN for missing samples and absent channels), `sampling_rate` (Hz), `channel_mask` (`(2,)`,
1 = present), `start_seconds`, `label` and `split`.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHANNEL_ORDER = ("PPG", "ECG_II")
SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
Reader = Callable[[Path], Any]
ChannelFinder = Callable[[Any, str], "str | None"]


class TaskDataWarning(UserWarning):
    """Records or windows were skipped while building a task dataset (the message gives counts and reasons)."""


@dataclass
class BuildReport:
    """What a builder kept and skipped, by reason; stored in the dataset's metadata."""

    records_found: int = 0
    records_used: int = 0
    windows: int = 0
    skipped_records: Counter = field(default_factory=Counter)
    skipped_windows: Counter = field(default_factory=Counter)

    def skip_record(self, reason: str) -> None:
        self.skipped_records[reason] += 1

    def as_dict(self) -> dict:
        return {
            "records_found": self.records_found,
            "records_used": self.records_used,
            "windows": self.windows,
            "skipped_records": dict(self.skipped_records),
            "skipped_windows": dict(self.skipped_windows),
        }

    def warn(self, task: str) -> None:
        for what, counts in (("records", self.skipped_records), ("windows", self.skipped_windows)):
            if counts:
                summary = ", ".join(f"{n} x {reason}" for reason, n in counts.most_common())
                warnings.warn(f"{task}: skipped {sum(counts.values())} {what} ({summary}).", TaskDataWarning, stacklevel=3)


def require_reader(reader: Reader | None, find_channel: ChannelFinder | None) -> None:
    if reader is None or find_channel is None:
        raise ValueError(
            "task dataset builders need `reader` and `find_channel`; pass reader=qualityfm_hf.recordings.io.read_recording, "
            "find_channel=qualityfm_hf.recordings.io.find_channel, or call "
            "qualityfm_hf.finetuning.task_data.build_task_table."
        )


def list_records(data_dir: str | Path, pattern: str = "*.hea") -> list[Path]:
    """Record paths (without suffix) under `data_dir`, sorted, searched recursively."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data directory {data_dir} does not exist; pass a folder of WFDB records (.hea + .mat/.dat).")
    return sorted(p.with_suffix("") for p in data_dir.rglob(pattern))


def channel_on_grid(recording, name: str | None, rate: float, length: int) -> tuple[np.ndarray, bool]:
    """Channel `name` resampled to `rate` Hz and cut/padded (NaN) to `length` samples; all-NaN when absent."""
    if name is None:
        return np.full(length, np.nan), False
    values = np.asarray(recording.signals[name], dtype=np.float64)
    source = float(recording.sampling_rates[name])
    if source != rate:
        from ..modeling.feature_extraction_qualityfm import resample_channel

        # The package's one resampler; the gaps it bridged are put back as NaN for the feature extractor to judge.
        resampled, missing = resample_channel(values, source, rate)
        resampled[missing] = np.nan
        values = resampled
    out = np.full(length, np.nan)
    out[: min(length, values.size)] = values[:length]
    return out, True


MAX_MISSING_FRACTION = 0.2  # the feature extractor's default `max_nan_fraction`


def usable_ecg_channel(recording, find_channel: ChannelFinder, start_seconds: float = 0.0,
                       stop_seconds: float | None = None) -> str | None:
    """Lead II when it is usable between `start_seconds` and `stop_seconds`, else the next ECG lead that is.

    "Usable" means at most 20% missing samples and not flat, the feature extractor's rules, so a record whose lead II
    is disconnected (all NaN) or flat at the moment that matters is read from another lead instead of being dropped.
    Leads are tried in `find_channel`'s order; when none is usable the first is returned (and later rejected with
    its reason). None when the record has no ECG.
    """
    view, first = recording, None
    while (name := find_channel(view, "ECG")) is not None:
        first = first or name
        rate = float(recording.sampling_rates[name])
        stop = None if stop_seconds is None else int(round(stop_seconds * rate))
        window = np.asarray(recording.signals[name], dtype=np.float64)[int(round(start_seconds * rate)):stop]
        finite = np.isfinite(window)
        if window.size and finite.mean() >= 1.0 - MAX_MISSING_FRACTION and np.ptp(window[finite]) > 0:
            return name
        # The same recording without that lead, so `find_channel` offers the next one.
        view = _Without(view, name)
    return first


class _Without:
    """A read-only view of a recording without one channel (for `find_channel`, which looks at channel names)."""

    def __init__(self, recording, channel: str):
        self._recording = recording
        self.signals = {k: v for k, v in recording.signals.items() if k != channel}

    def __getattr__(self, name):
        return getattr(self._recording, name)


def window_starts(num_samples: int, window: int, hop: int | None = None) -> list[int]:
    """Non-overlapping (or `hop`-spaced) window starts; a signal shorter than one window gives one start (0)."""
    hop = hop or window
    return list(range(0, num_samples - window + 1, hop)) or [0]


def split_by_record(
    records: Iterable[str],
    strata: Iterable[Any] | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> dict[str, str]:
    """Assign each record (patient) to train / validation / test, seeded and stratified by `strata`.

    Every window of a record lands in the record's split, so no recording is in two splits. With strata (the label of
    each record), each stratum is shuffled and cut by `fractions` separately, and every split gets at least one record
    of a stratum that has three or more, so the validation split can choose a decision threshold.

    Returns:
        `dict[str, str]`: record -> "train" | "validation" | "test".
    """
    records = list(records)
    if len(set(records)) != len(records):
        raise ValueError("split_by_record got duplicate record names; pass one entry per record.")
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers (train, validation, test) summing to 1; got {fractions}.")
    strata = list(strata) if strata is not None else [0] * len(records)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for stratum in sorted(set(strata), key=str):
        members = sorted(r for r, s in zip(records, strata) if s == stratum)
        rng.shuffle(members)
        n = len(members)
        n_val, n_test = (int(round(fractions[1] * n)), int(round(fractions[2] * n)))
        if n >= 3:  # one of each split at least, so validation and test see every class
            n_val, n_test = max(n_val, 1 if fractions[1] > 0 else 0), max(n_test, 1 if fractions[2] > 0 else 0)
        n_train = n - n_val - n_test
        for i, record in enumerate(members):
            assignment[record] = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
    return assignment


def make_dataset(task: str, rows: list[dict], report: BuildReport, options: dict, strata_key: str | None, seed: int,
                 fractions: tuple[float, float, float]):
    """Assign splits by record and build the `datasets.Dataset`; metadata goes to `info.description` as JSON."""
    import datasets

    if not rows:
        reasons = ", ".join(f"{n} x {r}" for r, n in report.skipped_records.most_common()) or "no records found"
        raise ValueError(f"{task}: no usable records in {options.get('data_dir')} ({reasons}).")
    records = list(dict.fromkeys(row["record"] for row in rows))
    strata = None
    if strata_key is not None:
        first = {}
        for row in rows:
            first.setdefault(row["record"], row[strata_key])
        strata = [first[r] for r in records]
    splits = split_by_record(records, strata, fractions, seed)
    for row in rows:
        row["split"] = splits[row["record"]]
    report.records_used, report.windows = len(records), len(rows)
    metadata = {
        "task": task,
        "seed": seed,
        "split_fractions": list(fractions),
        "split_unit": "record",
        "records_per_split": dict(Counter(splits.values())),
        "splits": splits,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()},
        **report.as_dict(),
    }
    report.warn(task)
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    columns["signals"] = [np.asarray(s, dtype=np.float32) for s in columns["signals"]]
    return datasets.Dataset.from_dict(columns, info=datasets.DatasetInfo(description=json.dumps(metadata)))


def dataset_metadata(dataset) -> dict:
    """The metadata dict `make_dataset` stored (task, seed, record splits, skip counts)."""
    return json.loads(dataset.info.description or "{}")


__all__ = [
    "BuildReport",
    "CHANNEL_ORDER",
    "DEFAULT_FRACTIONS",
    "SPLITS",
    "TaskDataWarning",
    "channel_on_grid",
    "dataset_metadata",
    "list_records",
    "make_dataset",
    "require_reader",
    "split_by_record",
    "usable_ecg_channel",
    "window_starts",
]
