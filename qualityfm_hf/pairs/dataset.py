"""Read a pairs directory written by `qualityfm_hf.pairs.build_pairs` as torch datasets.

Every item is one teacher/student pair (paper notes §2):

    {"teacher_input_values": (2, T) float32,  "student_input_values": (2, T) float32,
     "teacher_channel_mask": (2,) int64,       "student_channel_mask": (2,) int64,
     "teacher_quality_scores": (2,) float32,   "student_quality_scores": (2,) float32}

in [PPG, ECG_II] order, min-max normalised to [-1, 1]; T = 9000 (30 s at 300 Hz). The quality scores are each
channel's score in [0, 1] from the pair builder (NaN where a channel was not scored); the quality head's target. With `return_provenance=True`
items also carry `teacher_window_id`, `student_window_id`, `record`, `teacher_start_seconds`,
`student_start_seconds`, `teacher_quality`, `student_quality`, `teacher_class`, `student_class`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .format import read_manifest, shard_file_problem

PROVENANCE = ("teacher_window_id", "student_window_id", "record", "teacher_start_seconds", "student_start_seconds",
              "teacher_quality", "student_quality", "teacher_class", "student_class")
RETURN_TENSORS = ("pt", "np")
# The windows columns an item is built from; the others (record, start, combined quality) would only cost
# decoding time.
WINDOW_COLUMNS = ("window_id", "input_values", "channel_mask", "ppg_quality", "ecg_quality")


def _shards(directory: str | os.PathLike) -> tuple[Path, dict, list[dict]]:
    directory = Path(directory)
    manifest = read_manifest(directory)
    shards = manifest["shards"]
    counts = manifest["counts"]
    if not manifest.get("complete", False):
        warnings.warn(
            f"{directory} is an unfinished build: {counts['records_done']} of {counts['records_planned']} records "
            f"in {len(shards)} shards; loading those. Rerun `qualityfm build-pairs` with the same --input and "
            "--output to finish it.",
            stacklevel=3,
        )
    for shard in shards:
        _check_shard(directory, shard)
    return directory, manifest, shards


def _check_shard(directory: Path, shard: dict) -> None:
    """Raise if a shard's files differ from the manifest: size, then sha256 (each file hashed once per
    process)."""
    problem = shard_file_problem(directory, shard)
    if problem:
        raise ValueError(f"shard file {problem}. Rerun `qualityfm build-pairs` with the same --input and "
                         "--output: it rebuilds only this shard.")


def _read_parquet(path: Path, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError... for damaged files
        raise ValueError(
            f"shard file {path} could not be read ({type(err).__name__}: {err}). Rerun `qualityfm build-pairs` with "
            "the same --input and --output: it checks every shard's sha256 and rebuilds only damaged ones."
        ) from err


def _windows_arrays(table, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids (n,), input_values (n, 2, T) float32, channel_mask (n, 2) int64, quality_scores (n, 2) float32 in channel
    order [PPG, ECG_II], NaN where a channel was not scored) from a windows table."""
    ids = table.column("window_id").to_numpy()
    values = table.column("input_values").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    mask = table.column("channel_mask").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    scores = np.stack([np.asarray(table.column(key).to_numpy(zero_copy_only=False), np.float32)
                       for key in ("ppg_quality", "ecg_quality")], axis=1).reshape(len(ids), 2)
    return ids, values.reshape(len(ids), 2, samples), mask.reshape(len(ids), 2).astype(np.int64), scores


def _check_tensors(return_tensors: str) -> None:
    if return_tensors not in RETURN_TENSORS:
        raise ValueError(f"`return_tensors` is {return_tensors!r}, but has to be one of {list(RETURN_TENSORS)}.")


def _item(values, masks, scores, t_row, s_row, return_tensors, provenance: dict | None) -> dict:
    item = {
        "teacher_input_values": values[t_row],
        "student_input_values": values[s_row],
        "teacher_channel_mask": masks[t_row],
        "student_channel_mask": masks[s_row],
        "teacher_quality_scores": scores[t_row],
        "student_quality_scores": scores[s_row],
    }
    # Copies, so an item can be changed (augmented in place) without touching the shared window store.
    item = {k: torch.from_numpy(np.array(v)) if return_tensors == "pt" else np.array(v) for k, v in item.items()}
    if provenance is not None:
        item.update(provenance)
    return item


def _lookup(ids: np.ndarray, wanted: np.ndarray, where: str) -> np.ndarray:
    order = np.argsort(ids)
    pos = np.searchsorted(ids, wanted, sorter=order)
    pos = np.minimum(pos, len(ids) - 1) if len(ids) else pos
    rows = order[pos] if len(ids) else pos
    if len(wanted) and (not len(ids) or (ids[rows] != wanted).any()):
        raise ValueError(f"{where} refers to window ids that its windows shard lacks; rebuild the pairs directory.")
    return rows


class QualityPairsDataset(Dataset):
    """Map-style dataset of all pairs; each window is held once in memory and looked up by id.

    Args:
        directory (`str` or `os.PathLike`): A pairs directory.
        return_provenance (`bool`, defaults to False): Add the provenance fields (`PROVENANCE`) to each item.
        return_tensors (`str`, defaults to `"pt"`): `"pt"` (torch tensors) or `"np"` (numpy arrays).
    """

    def __init__(self, directory: str | os.PathLike, return_provenance: bool = False, return_tensors: str = "pt"):
        _check_tensors(return_tensors)
        directory, manifest, shards = _shards(directory)
        self.return_provenance, self.return_tensors = return_provenance, return_tensors
        samples = int(round(manifest["config"]["window_seconds"] * manifest["config"]["sampling_rate"]))
        values, masks, scores, teacher_rows, student_rows, tables = [], [], [], [], [], []
        offset = 0
        for shard in shards:
            windows = _read_parquet(directory / shard["windows"]["file"], list(WINDOW_COLUMNS))
            ids, v, m, q = _windows_arrays(windows, samples)
            pairs = _read_parquet(directory / shard["pairs"]["file"])
            where = f"pairs shard {directory / shard['pairs']['file']}"
            teacher_rows.append(offset + _lookup(ids, pairs.column("teacher_window_id").to_numpy(), where))
            student_rows.append(offset + _lookup(ids, pairs.column("student_window_id").to_numpy(), where))
            values.append(v)
            masks.append(m)
            scores.append(q)
            tables.append(pairs)
            offset += len(ids)
        self.values = np.concatenate(values) if values else np.zeros((0, 2, samples), np.float32)  # (windows, 2, T)
        self.channel_mask = np.concatenate(masks) if masks else np.zeros((0, 2), np.int64)  # (windows, 2)
        self.quality_scores = np.concatenate(scores) if scores else np.zeros((0, 2), np.float32)  # (windows, 2)
        self.teacher_rows = np.concatenate(teacher_rows) if teacher_rows else np.zeros(0, np.int64)  # (pairs,)
        self.student_rows = np.concatenate(student_rows) if student_rows else np.zeros(0, np.int64)
        self._provenance = None
        if return_provenance and tables:
            import pyarrow as pa

            self._provenance = pa.concat_tables(tables).select(list(PROVENANCE)).to_pydict()

    def __len__(self) -> int:
        return len(self.teacher_rows)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"pair index {index} out of range for {len(self)} pairs")
        provenance = None if self._provenance is None else {k: v[index] for k, v in self._provenance.items()}
        return _item(self.values, self.channel_mask, self.quality_scores, self.teacher_rows[index], self.student_rows[index],
                     self.return_tensors, provenance)


class StreamingQualityPairsDataset(IterableDataset):
    """Iterable over the pairs, one shard at a time: only one shard's windows are in memory at once.

    Shards are read in index order and pairs in file order, unless `shuffle_shards_seed` is given (then the
    shard order is shuffled with that seed, the same order every epoch). With a `DataLoader(num_workers=k)`,
    worker w takes shards w, w + k, ... of that order, so the workers read disjoint shards and each pair is
    yielded exactly once per epoch overall (a worker without a shard yields nothing); the DataLoader
    interleaves the workers' batches. Items equal those of `QualityPairsDataset` for the same pairs: same
    keys, dtypes and values, each array a copy of its own.

    Each shard is read once per pass with pyarrow (only the columns items need, no `datasets` machinery) into
    numpy arrays, and its items are cut from them as `QualityPairsDataset` cuts its own. Decoding the windows'
    list column (Parquet levels for 18,000 floats per window) is most of a pass and what an epoch costs beyond
    the in-memory one; DataLoader workers decode their shards in parallel. Every shard's sha256 is checked
    when the dataset is created and again before the shard is read (a `stat`; each file is hashed at most once
    per process), so a shard replaced in between is caught too.

    Args:
        directory (`str` or `os.PathLike`): A pairs directory.
        return_provenance (`bool`, defaults to False): Add the provenance fields to each item.
        return_tensors (`str`, defaults to `"pt"`): `"pt"` or `"np"`.
        batch_size (`int`, defaults to 256): Pairs whose provenance is converted to Python values at a time.
        shuffle_shards_seed (`int`, *optional*): Shuffle the shard order with this seed.
    """

    def __init__(self, directory: str | os.PathLike, return_provenance: bool = False, return_tensors: str = "pt",
                 batch_size: int = 256, shuffle_shards_seed: int | None = None):
        # Imported here, in the parent, so forked DataLoader workers do not each pay for the import.
        import pyarrow.parquet  # noqa: F401

        _check_tensors(return_tensors)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        self.directory, manifest, self.shards = _shards(directory)
        self.samples = int(round(manifest["config"]["window_seconds"] * manifest["config"]["sampling_rate"]))
        self.num_pairs = sum(s["pairs"]["rows"] for s in self.shards)
        self.return_provenance, self.return_tensors = return_provenance, return_tensors
        self.batch_size, self.shuffle_shards_seed = batch_size, shuffle_shards_seed

    def __len__(self) -> int:
        # Total pairs, for progress bars; the Trainer needs max_steps with an IterableDataset anyway.
        return self.num_pairs

    def worker_shards(self) -> list[dict]:
        """The manifest entries of the shards this process reads in one pass, in reading order (all of them
        outside a DataLoader worker)."""
        shards = list(self.shards)
        if self.shuffle_shards_seed is not None:
            np.random.default_rng(self.shuffle_shards_seed).shuffle(shards)
        worker = get_worker_info()
        return shards if worker is None else shards[worker.id::worker.num_workers]

    def __iter__(self):
        for shard in self.worker_shards():
            if shard["pairs"]["rows"] == 0:  # a record set without pairs: nothing to read
                continue
            yield from self._shard_items(shard)

    def _shard_items(self, shard: dict):
        """The items of one shard, in file order. A generator of its own, so the shard's arrays are freed as
        soon as its last item is out, before the next shard is read."""
        _check_shard(self.directory, shard)
        columns = list(PROVENANCE) if self.return_provenance else ["teacher_window_id", "student_window_id"]
        pairs = _read_parquet(self.directory / shard["pairs"]["file"], columns)
        windows = _read_parquet(self.directory / shard["windows"]["file"], list(WINDOW_COLUMNS))
        ids, values, masks, scores = _windows_arrays(windows, self.samples)
        where = f"pairs shard {self.directory / shard['pairs']['file']}"
        t_rows = _lookup(ids, pairs.column("teacher_window_id").to_numpy(), where)
        s_rows = _lookup(ids, pairs.column("student_window_id").to_numpy(), where)
        for start in range(0, pairs.num_rows, self.batch_size):
            stop = min(start + self.batch_size, pairs.num_rows)
            # Python values a batch at a time: one conversion per column, not one per field of each item.
            provenance = pairs.slice(start, stop - start).select(list(PROVENANCE)).to_pydict() \
                if self.return_provenance else None
            for k in range(start, stop):
                extra = None if provenance is None else {key: v[k - start] for key, v in provenance.items()}
                yield _item(values, masks, scores, t_rows[k], s_rows[k], self.return_tensors, extra)


def load_pairs(
    directory: str | os.PathLike, streaming: bool = False, return_provenance: bool = False, return_tensors: str = "pt",
    **kwargs,
) -> QualityPairsDataset | StreamingQualityPairsDataset:
    """Pairs of a directory built by `build_pairs`, as a torch dataset of teacher/student items.

    Args:
        directory (`str` or `os.PathLike`): The pairs directory (holds `manifest.json`).
        streaming (`bool`, defaults to False): False: a map-style `QualityPairsDataset` (`__len__`,
            `__getitem__`) holding every window once in memory (2 x 9000 float32 = 72 kB per window). True: a
            `StreamingQualityPairsDataset` (torch `IterableDataset`) that reads one shard at a time;
            DataLoader workers read disjoint shards.
        return_provenance (`bool`, defaults to False): Add `PROVENANCE` fields to each item.
        return_tensors (`str`, defaults to `"pt"`): `"pt"` or `"np"`.
        **kwargs: Passed to `StreamingQualityPairsDataset` (`batch_size`, `shuffle_shards_seed`).

    Raises:
        `ValueError`: another format version, or a damaged shard (the message names the file and the fix).
    """
    if streaming:
        return StreamingQualityPairsDataset(directory, return_provenance, return_tensors, **kwargs)
    if kwargs:
        raise ValueError(f"{sorted(kwargs)} apply only with streaming=True.")
    return QualityPairsDataset(directory, return_provenance, return_tensors)


def load_pairs_table(directory: str | os.PathLike):
    """All pairs with their provenance columns as a `datasets.Dataset` (in memory), for inspection.

    Columns: `teacher_window_id`, `student_window_id`, `record`, `teacher_start_seconds`, `student_start_seconds`,
    `teacher_quality`, `student_quality`, `teacher_class`, `student_class`.
    """
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    directory, _, shards = _shards(directory)
    tables = [_read_parquet(directory / s["pairs"]["file"]) for s in shards]
    if not tables:
        return datasets.Dataset.from_dict({k: [] for k in PROVENANCE})
    return datasets.Dataset(InMemoryTable(pa.concat_tables(tables)))


__all__ = ["PROVENANCE", "QualityPairsDataset", "StreamingQualityPairsDataset", "load_pairs", "load_pairs_table"]
