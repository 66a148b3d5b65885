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

from .pairs_format import read_manifest, shard_file_problem

PROVENANCE = ("teacher_window_id", "student_window_id", "record", "teacher_start_seconds", "student_start_seconds",
              "teacher_quality", "student_quality", "teacher_class", "student_class")
RETURN_TENSORS = ("pt", "np")


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
        problem = shard_file_problem(directory, shard)
        if problem:
            raise ValueError(f"shard file {problem}. Rerun `qualityfm build-pairs` with the same --input and "
                             "--output: it rebuilds only this shard.")
    return directory, manifest, shards


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
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
            ids, v, m, q = _windows_arrays(_read_parquet(directory / shard["windows"]["file"]), samples)
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
    """Iterable over the pairs, one shard at a time through `datasets.load_dataset("parquet", streaming=True)`.

    Only one shard's windows are in memory at once. With a `DataLoader(num_workers=k)`, worker w reads shards
    w, w + k, ...; each pair is yielded exactly once overall. Shards are read in index order and pairs in file
    order, unless `shuffle_shards_seed` is given (then the shard order is shuffled with that seed).

    Args:
        directory (`str` or `os.PathLike`): A pairs directory.
        return_provenance (`bool`, defaults to False): Add the provenance fields to each item.
        return_tensors (`str`, defaults to `"pt"`): `"pt"` or `"np"`.
        batch_size (`int`, defaults to 256): Rows read per Arrow batch.
        shuffle_shards_seed (`int`, *optional*): Shuffle the shard order with this seed.
    """

    def __init__(self, directory: str | os.PathLike, return_provenance: bool = False, return_tensors: str = "pt",
                 batch_size: int = 256, shuffle_shards_seed: int | None = None):
        _check_tensors(return_tensors)
        self.directory, manifest, self.shards = _shards(directory)
        self.samples = int(round(manifest["config"]["window_seconds"] * manifest["config"]["sampling_rate"]))
        self.num_pairs = sum(s["pairs"]["rows"] for s in self.shards)
        self.return_provenance, self.return_tensors = return_provenance, return_tensors
        self.batch_size, self.shuffle_shards_seed = batch_size, shuffle_shards_seed

    def __len__(self) -> int:
        # Total pairs, for progress bars; the Trainer needs max_steps with an IterableDataset anyway.
        return self.num_pairs

    def _stream(self, path: Path):
        import datasets

        try:
            stream = datasets.load_dataset("parquet", data_files=str(path), split="train", streaming=True)
            yield from stream.with_format("arrow").iter(batch_size=self.batch_size)
        except Exception as err:  # pyarrow's ArrowInvalid is a ValueError, but names no file
            raise ValueError(
                f"shard file {path} could not be streamed ({type(err).__name__}: {err}). Rerun `qualityfm "
                "build-pairs` with the same --input and --output: it rebuilds only damaged shards."
            ) from err

    def __iter__(self):
        import pyarrow as pa

        shards = list(self.shards)
        if self.shuffle_shards_seed is not None:
            np.random.default_rng(self.shuffle_shards_seed).shuffle(shards)
        worker = get_worker_info()
        if worker is not None:
            shards = shards[worker.id::worker.num_workers]
        for shard in shards:
            # An empty Parquet file has no row groups, which datasets' streaming reader cannot batch; skip it.
            if shard["pairs"]["rows"] == 0:
                continue
            windows_path = self.directory / shard["windows"]["file"]
            batches = list(self._stream(windows_path))
            if not batches:
                continue
            ids, values, masks, scores = _windows_arrays(pa.concat_tables(batches), self.samples)
            where = f"pairs shard {self.directory / shard['pairs']['file']}"
            for batch in self._stream(self.directory / shard["pairs"]["file"]):
                t_rows = _lookup(ids, batch.column("teacher_window_id").to_numpy(), where)
                s_rows = _lookup(ids, batch.column("student_window_id").to_numpy(), where)
                provenance = batch.select(list(PROVENANCE)).to_pydict() if self.return_provenance else None
                for k in range(batch.num_rows):
                    extra = None if provenance is None else {key: v[k] for key, v in provenance.items()}
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
            `StreamingQualityPairsDataset` (torch `IterableDataset`) that streams one shard at a time.
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
