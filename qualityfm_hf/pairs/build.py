"""Quality-divergent pairs of 30-s windows for self-distillation (paper notes §2, §2.2, §4.1).

`build_pairs` turns a directory of recordings into a pairs directory:

    manifest.json            format name + version, config, per-record status, counts, rejects, class matrix
    windows-00000.parquet    each kept window once: window_id, record, start_seconds, input_values, channel_mask,
                             ecg_quality, ppg_quality, quality, quality_class
    pairs-00000.parquet      pairs as window-id references: teacher_window_id, student_window_id, record,
                             teacher/student start_seconds, quality, class
    ...

A window enters up to 18 pairs (9 later and 9 earlier neighbours), so it is stored once and pairs point to it.
Pairs never cross records and a record's windows and pairs share a shard index, so every shard is self-contained
and can be streamed on its own. Each shard is written to a temporary name and renamed; the manifest, rewritten
atomically after every shard, lists the completed shards with their records and checksums. Rerunning a build
skips those, so an interrupted build resumes where it stopped and writes nothing twice.

Records are segmented and scored in local processes (`engine="local"`) or on a Ray cluster (`engine="ray"`,
see `ray.py`); either way the driver writes every shard and the manifest, so both give the same bytes.

`load_pairs` and `load_pairs_table` (`dataset.py`) read the directory back; the package re-exports them.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..quality import QUALITY_CLASSES
from ..recordings.segmenting import (
    CHANNELS,
    MAX_NAN_FRACTION,
    PHYSIONET2015_ALARM_SECONDS,
    REJECT_REASONS,
    SAMPLING_RATE,
    WINDOW_SECONDS,
    RecordWindows,
    is_physionet2015,
    segment_recording,
)
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    _write_atomic,
    _write_json_atomic,
    read_manifest,
    shard_file_problem,
)

MAX_NEIGHBOURS = 9  # "surrounding 5 min" in the reference code: the next 9 kept 30-s windows
RECORDS_PER_SHARD = 32
# window_id = record_index * WINDOW_ID_STRIDE + position on the record's 30-s grid: deterministic, so a resumed
# build gives the same ids as an uninterrupted one. 10**6 windows of 30 s is 347 days per record.
WINDOW_ID_STRIDE = 1_000_000
RECORD_SUFFIXES = (".hea", ".vital")
ENGINES = ("local", "ray")


def _warn(message: str) -> None:
    from ..modeling.feature_extraction_qualityfm import QualityFMWarning

    warnings.warn(message, QualityFMWarning, stacklevel=3)


# =============================================================================
# The pair rule
# =============================================================================
def make_pairs(classes, scores, max_neighbours: int = MAX_NEIGHBOURS) -> np.ndarray:
    """Teacher/student pairs among the kept windows of one recording (paper notes §2.2).

    Window i is paired with each of the next `max_neighbours` kept windows j (j = i+1 ... i+max_neighbours)
    whose class differs. The better window (higher class, then higher score) is the teacher, the worse the
    student. Since classes are thresholds of the score, the score only breaks ties when classes come from
    elsewhere; equal classes never pair. Windows with class < 0 (unscored) never pair.

    Args:
        classes (`Sequence[int]` of length n): Class index of each kept window in time order (0 Bad ... 4
            Excellent), or class names from `QUALITY_CLASSES`.
        scores (`Sequence[float]` of length n): Combined quality score of each window.
        max_neighbours (`int`, defaults to 9): How many following kept windows each window is compared with.

    Returns:
        `np.ndarray` of shape `(n_pairs, 2)`, int64: `(teacher, student)` positions, ordered by i then j.
    """
    classes = np.asarray([QUALITY_CLASSES.index(c) if isinstance(c, str) else int(c) for c in classes], np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if classes.shape != scores.shape:
        raise ValueError(f"classes and scores must have the same length; got {classes.shape} and {scores.shape}.")
    if max_neighbours < 1:
        raise ValueError(f"max_neighbours must be >= 1; got {max_neighbours}.")
    pairs = []
    for i in range(len(classes)):
        if classes[i] < 0:
            continue
        for j in range(i + 1, min(i + 1 + max_neighbours, len(classes))):
            if classes[j] < 0 or classes[j] == classes[i]:
                continue
            i_better = (classes[i], scores[i]) > (classes[j], scores[j])
            pairs.append((i, j) if i_better else (j, i))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


# =============================================================================
# Records and shards
# =============================================================================
def find_records(input_dir: str | os.PathLike) -> list[Path]:
    """Recordings under `input_dir` (recursive): WFDB headers (`*.hea`) and VitalDB files (`*.vital`), sorted by
    relative path. WFDB records are returned as their `.hea` path."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input directory {root} not found; pass a directory of WFDB or .vital records.")
    found = [p for p in root.rglob("*") if p.suffix in RECORD_SUFFIXES and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _record_name(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def _segment_one(task: tuple) -> RecordWindows:
    """Worker: read and segment one record. Failures become a skipped record, never a crashed build."""
    from ..recordings.io import read_recording

    path, name, before_alarm, config = task
    try:
        recording = read_recording(path)
    except (OSError, ValueError) as err:
        windows = RecordWindows(name, status="skipped", skip_reason="unreadable")
        windows.notes.append(str(err))
        return windows
    recording.name = name
    use_range = is_physionet2015(recording) if before_alarm is None else before_alarm
    time_range = (0.0, PHYSIONET2015_ALARM_SECONDS) if use_range else None
    with warnings.catch_warnings():
        # Per-window NaN notices from the scorer are summarised by the manifest's reject counts instead.
        warnings.simplefilter("ignore")
        windows = segment_recording(
            recording,
            time_range=time_range,
            window_seconds=config["window_seconds"],
            sampling_rate=config["sampling_rate"],
            max_nan_fraction=config["max_nan_fraction"],
            num_workers=1,
        )
    if use_range:
        windows.notes.append(f"restricted to [0, {PHYSIONET2015_ALARM_SECONDS:g}) s, before the alarm")
    return windows


def self_pairs(num_windows: int, pairs: np.ndarray) -> np.ndarray:
    """`(i, i)` for each of `num_windows` windows that is in none of `pairs`: a window without a partner of another
    class (a short record, a record of one quality) still enters pretraining, as a same-window view."""
    alone = np.setdiff1d(np.arange(num_windows), pairs.ravel())
    return np.stack([alone, alone], axis=1).astype(np.int64)


def _shard_tables(shard_windows: list[tuple[int, RecordWindows]], max_neighbours: int, with_self_pairs: bool = False):
    """Arrow tables of one shard's windows and pairs, and the per-record pair counts and class matrix."""
    import pyarrow as pa

    cols = {k: [] for k in ("window_id", "record", "start_seconds", "input_values", "channel_mask",
                            "ecg_quality", "ppg_quality", "quality", "quality_class")}
    pair_cols = {k: [] for k in ("teacher_window_id", "student_window_id", "record", "teacher_start_seconds",
                                 "student_start_seconds", "teacher_quality", "student_quality",
                                 "teacher_class", "student_class")}
    matrix = np.zeros((len(QUALITY_CLASSES), len(QUALITY_CLASSES)), dtype=np.int64)
    pair_counts = {}
    for record_index, w in shard_windows:
        n = len(w)
        pairs = make_pairs(w.quality_class, w.quality, max_neighbours) if n else np.zeros((0, 2), np.int64)
        if with_self_pairs and n:
            pairs = np.concatenate([pairs, self_pairs(n, pairs)])
        pair_counts[w.record] = len(pairs)
        if not n:
            continue
        ids = record_index * WINDOW_ID_STRIDE + w.window_index
        cols["window_id"].append(ids)
        cols["record"] += [w.record] * n
        cols["start_seconds"].append(w.start_seconds)
        cols["input_values"].append(w.input_values.reshape(n, -1))  # (n, 2 * T), row-major: PPG then ECG
        cols["channel_mask"].append(w.channel_mask)
        for key in ("ecg_quality", "ppg_quality", "quality", "quality_class"):
            cols[key].append(getattr(w, key))
        t, s = pairs[:, 0], pairs[:, 1]
        pair_cols["teacher_window_id"].append(ids[t])
        pair_cols["student_window_id"].append(ids[s])
        pair_cols["record"] += [w.record] * len(pairs)
        pair_cols["teacher_start_seconds"].append(w.start_seconds[t])
        pair_cols["student_start_seconds"].append(w.start_seconds[s])
        pair_cols["teacher_quality"].append(w.quality[t])
        pair_cols["student_quality"].append(w.quality[s])
        pair_cols["teacher_class"].append(w.quality_class[t])
        pair_cols["student_class"].append(w.quality_class[s])
        np.add.at(matrix, (w.quality_class[t], w.quality_class[s]), 1)

    def cat(parts, dtype, width=None):
        if not parts:
            return np.zeros((0,) if width is None else (0, width), dtype)
        return np.concatenate(parts).astype(dtype, copy=False)

    def fixed_lists(values: np.ndarray, type_):
        # (n, k) -> list<type_> column without a Python loop
        offsets = pa.array(np.arange(values.shape[0] + 1, dtype=np.int64) * values.shape[1], pa.int64())
        return pa.LargeListArray.from_arrays(offsets, pa.array(values.ravel(), type_)).cast(pa.list_(type_))

    width = 2 * max(w.input_values.shape[-1] for _, w in shard_windows)  # 2 * T; 0 if no record kept a window
    windows = pa.table({
        "window_id": pa.array(cat(cols["window_id"], np.int64)),
        "record": pa.array(cols["record"], pa.string()),
        "start_seconds": pa.array(cat(cols["start_seconds"], np.float64)),
        "input_values": fixed_lists(cat(cols["input_values"], np.float32, width), pa.float32()),
        "channel_mask": fixed_lists(cat(cols["channel_mask"], np.int8, 2), pa.int8()),
        "ecg_quality": pa.array(cat(cols["ecg_quality"], np.float64)),
        "ppg_quality": pa.array(cat(cols["ppg_quality"], np.float64)),
        "quality": pa.array(cat(cols["quality"], np.float64)),
        "quality_class": pa.array(cat(cols["quality_class"], np.int8)),
    })
    pairs = pa.table({
        "teacher_window_id": pa.array(cat(pair_cols["teacher_window_id"], np.int64)),
        "student_window_id": pa.array(cat(pair_cols["student_window_id"], np.int64)),
        "record": pa.array(pair_cols["record"], pa.string()),
        **{k: pa.array(cat(pair_cols[k], np.float64)) for k in (
            "teacher_start_seconds", "student_start_seconds", "teacher_quality", "student_quality")},
        "teacher_class": pa.array(cat(pair_cols["teacher_class"], np.int8)),
        "student_class": pa.array(cat(pair_cols["student_class"], np.int8)),
    })
    return windows, pairs, pair_counts, matrix


def _summarise(manifest: dict) -> None:
    """Recompute the totals from the per-record and per-shard entries (so a resumed build sums the same)."""
    manifest["records"] = records = dict(sorted(manifest["records"].items()))
    status = Counter(r["status"] for r in records.values())
    skipped = Counter(r["skip_reason"] for r in records.values() if r["status"] == "skipped")
    rejects = Counter()
    for r in records.values():
        rejects.update(r["rejects"])
    matrix = np.zeros((len(QUALITY_CLASSES),) * 2, dtype=np.int64)
    for shard in manifest["shards"]:
        matrix += np.asarray(shard["class_matrix"], dtype=np.int64)
    manifest["counts"] = {
        "records_planned": manifest["counts"].get("records_planned", len(records)),
        "records_done": len(records),
        "records_with_windows": status["ok"],
        "records_without_windows": status["no_windows"],
        # The two ways to have none: shorter than one window (e.g. 9-30 s AF ECGs), or every window rejected.
        "records_too_short": sum(r["status"] == "no_windows" and r["num_windows"] == 0 for r in records.values()),
        "records_all_rejected": sum(r["status"] == "no_windows" and r["num_windows"] > 0 for r in records.values()),
        "records_skipped": status["skipped"],
        "windows_total": sum(r["num_windows"] for r in records.values()),
        "windows_kept": sum(r["kept"] for r in records.values()),
        "windows_rejected": sum(rejects.values()),
        "pairs": sum(r["pairs"] for r in records.values()),
        "shards": len(manifest["shards"]),
    }
    manifest["rejects"] = {reason: rejects.get(reason, 0) for reason in REJECT_REASONS}
    manifest["skipped_records"] = dict(sorted(skipped.items()))
    manifest["class_matrix"] = {"rows": "teacher class", "columns": "student class",
                                "classes": list(QUALITY_CLASSES), "counts": matrix.tolist()}
    manifest["complete"] = manifest["counts"]["records_done"] == manifest["counts"]["records_planned"]


# =============================================================================
# Build
# =============================================================================
def _check_engine(engine: str, ray_address: str | None) -> None:
    """Fail before any work on an unknown engine, a Ray address without the Ray engine, a missing Ray, or
    a Ray Client address."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}.")
    if ray_address is not None and engine != "ray":
        raise ValueError(f"ray_address={ray_address!r} needs engine='ray'; got engine={engine!r}.")
    if engine == "ray":
        from .ray import check_address, require_ray

        require_ray()
        check_address(ray_address)


def _local_results(todo: list, tasks: dict, pool):
    """`(record_index, windows)` in plan order, one `pool.map` per shard; the next shard is submitted only
    when the caller asks for its first record, that is after it has written the previous shard."""
    for _, idx in todo:
        jobs = [tasks[i] for i in idx]
        results = pool.map(_segment_one, jobs) if pool else map(_segment_one, jobs)
        yield from zip(idx, results)


def _complete_shards(todo: list, results, on_record):
    """Group `(record_index, windows)` results, arriving in any order, by shard: yield `(shard_index,
    [(record_index, windows), ...])` with the records in plan order as soon as a shard's last record is
    back, so the driver holds only the shards still in flight. `on_record()` is called once per record."""
    plan = dict(todo)
    shard_of = {i: index for index, idx in todo for i in idx}
    pending = {index: {} for index in plan}
    for i, windows in results:
        index = shard_of[i]
        pending[index][i] = windows
        on_record()
        if len(pending[index]) == len(plan[index]):
            got = pending.pop(index)
            yield index, [(j, got[j]) for j in plan[index]]


def build_pairs(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    before_alarm: bool | None = None,
    max_neighbours: int = MAX_NEIGHBOURS,
    records_per_shard: int = RECORDS_PER_SHARD,
    num_workers: int | None = 1,
    max_records: int | None = None,
    progress: bool = True,
    self_pairs: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
) -> dict:
    """Build (or resume) a pairs directory from the recordings in `input_dir`.

    Args:
        input_dir (`str` or `os.PathLike`): Directory of WFDB records (`*.hea` + signal files) and/or VitalDB
            `.vital` files, searched recursively.
        output_dir (`str` or `os.PathLike`): Pairs directory; created if needed. If it holds a manifest from an
            earlier build with the same config, completed shards are kept and the build resumes.
        before_alarm (`bool | None`, defaults to `None`): Use only [0, 300) s of each record (PhysioNet 2015:
            the 5 min before the alarm). `None` decides per record: on for PhysioNet 2015 alarm records (header
            comment `True alarm`/`False alarm`), off otherwise.
        max_neighbours (`int`, defaults to 9): Pair rule window, see `make_pairs`.
        records_per_shard (`int`, defaults to 32): Records per shard; record k goes to shard k // this.
        num_workers (`int | None`, defaults to 1): Processes segmenting and scoring records in parallel; `None`
            uses every available core. Local engine only: the Ray engine uses every CPU of the cluster.
        max_records (`int | None`): Build only the first `max_records` records (sorted by path) in this run. A
            later run without the limit resumes and builds the rest.
        progress (`bool`, defaults to True): Show a tqdm progress bar.
        self_pairs (`bool`, defaults to False): Also pair each kept window that has no partner with itself
            (teacher = student = that window; beyond the paper), so records too short for quality pairs, such as
            30-s AF ECGs, join pretraining as same-window views. They sit on the class matrix's diagonal.
        engine (`str`, defaults to `"local"`): Where records are segmented and scored: `"local"` (processes
            on this machine) or `"ray"` (tasks on a Ray cluster through Ray Data; needs `pip install
            qualityfm-hf[ray]`, and `input_dir` readable at the same path on every node). This process
            writes the output either way, with the same bytes.
        ray_address (`str | None`): Ray cluster to connect to with `engine="ray"`: `"auto"` or `"HEAD:6379"`,
            from a node of that cluster (Ray Data does not run through Ray Client, so `ray://` addresses are
            refused). `None` uses the cluster in `RAY_ADDRESS` or starts a local Ray instance. A Ray instance
            already initialised in this process is used as it is.

    Returns:
        `dict`: The manifest as written to `output_dir/manifest.json`.
    """
    from ..utils.progress import progress_bar

    _check_engine(engine, ray_address)
    root, out = Path(input_dir), Path(output_dir)
    paths = find_records(root)
    if not paths:
        raise ValueError(f"no recordings (*.hea, *.vital) found under {root}; point --input at a record directory.")
    if records_per_shard < 1:
        raise ValueError(f"records_per_shard must be >= 1; got {records_per_shard}.")
    names = [_record_name(p, root) for p in paths]
    config = {
        "window_seconds": WINDOW_SECONDS, "sampling_rate": SAMPLING_RATE, "max_neighbours": int(max_neighbours),
        "max_nan_fraction": MAX_NAN_FRACTION, "channels": list(CHANNELS), "normalization": "minmax_joint",
        "before_alarm": "auto" if before_alarm is None else bool(before_alarm),
        "records_per_shard": int(records_per_shard), "window_id": f"record_index * {WINDOW_ID_STRIDE} + window_index",
    }
    if self_pairs:  # only when on, so directories built before the option existed still resume
        config["self_pairs"] = True
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        if manifest["config"] != config:
            changed = {k: (manifest["config"].get(k), v) for k, v in config.items() if manifest["config"].get(k) != v}
            raise ValueError(
                f"{out} was built with another config ({', '.join(f'{k}: {a!r} there, {b!r} now' for k, (a, b) in changed.items())}). "
                "Use a new --output directory, or delete this one to rebuild it."
            )
    else:
        manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": config, "input": str(root),
                    "counts": {}, "shards": [], "records": {}}
    manifest["counts"]["records_planned"] = len(names)

    plan = [list(range(k, min(k + records_per_shard, len(names)))) for k in range(0, len(names), records_per_shard)]
    limit = len(names) if max_records is None else max(0, min(int(max_records), len(names)))
    done = {s["index"]: s for s in manifest["shards"]}
    # A shard is reused only if it holds exactly the records the plan gives it and its files are intact.
    for index, entry in list(done.items()):
        expected = [names[i] for i in plan[index]] if index < len(plan) else None
        problem = "its records changed" if entry["records"] != expected else shard_file_problem(out, entry)
        if problem:
            if entry["records"] == expected:
                _warn(f"shard {index} of {out}: {problem}; rebuilding that shard (1 shard, others kept).")
            del done[index]
            for name in entry["records"]:
                manifest["records"].pop(name, None)
    todo = [(k, [i for i in idx if i < limit]) for k, idx in enumerate(plan) if k not in done and idx[0] < limit]

    worker_config = {k: config[k] for k in ("window_seconds", "sampling_rate", "max_nan_fraction")}
    tasks = {i: (paths[i], names[i], before_alarm, worker_config) for _, idx in todo for i in idx}
    workers = (len(os.sched_getaffinity(0)) if num_workers is None else int(num_workers))
    bar = progress_bar(total=limit, initial=sum(len(e["records"]) for e in done.values() if e["index"] < len(plan)),
                       desc="records", unit="rec", leave=True, disable=not progress)
    pool = None
    if engine == "local" and workers > 1 and tasks:
        import neurokit2  # noqa: F401  imported once here, so forked workers do not each pay ~5 s for it

        from ..utils.processes import worker_pool

        pool = worker_pool(workers)  # workers die with this process, even when it is SIGKILLed
    if engine == "ray":
        from .ray import ray_map

        results = ray_map(_segment_one, tasks, ray_address)  # completion order, shards interleaved
    else:
        results = _local_results(todo, tasks, pool)
    try:
        for index, shard_windows in _complete_shards(todo, results, lambda: bar.update(1)):
            entry, statuses = _write_shard(out, index, shard_windows, max_neighbours, self_pairs)
            done[index] = entry
            manifest["records"].update(statuses)
            manifest["shards"] = [done[k] for k in sorted(done)]
            _summarise(manifest)
            _write_json_atomic(manifest, out / MANIFEST)
    finally:
        bar.close()
        results.close()  # a generator: even on an early exit the Ray engine shuts down a Ray it started
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    manifest["shards"] = [done[k] for k in sorted(done)]
    _summarise(manifest)
    _write_json_atomic(manifest, out / MANIFEST)
    return manifest


def _write_shard(
    out: Path, index: int, shard_windows: list[tuple[int, RecordWindows]], max_neighbours: int,
    with_self_pairs: bool = False,
) -> tuple[dict, dict]:
    """Write one shard (windows, then pairs, each atomically); return its manifest entry and its records'
    statuses, which enter the manifest only once both files exist."""
    windows_table, pairs_table, pair_counts, matrix = _shard_tables(shard_windows, max_neighbours, with_self_pairs)
    entry = {
        "index": index,
        "records": [w.record for _, w in shard_windows],
        "windows": _write_atomic(windows_table, out / f"windows-{index:05d}.parquet"),
        "pairs": _write_atomic(pairs_table, out / f"pairs-{index:05d}.parquet"),
        "class_matrix": matrix.tolist(),
    }
    statuses = {
        w.record: {
            "status": w.status, "skip_reason": w.skip_reason, "shard": index, "num_windows": int(w.num_windows),
            "kept": len(w), "rejects": dict(w.rejects), "pairs": int(pair_counts[w.record]),
            "channels": w.channels, "notes": w.notes,
        }
        for _, w in shard_windows
    }
    return entry, statuses


__all__ = [
    "MAX_NEIGHBOURS",
    "WINDOW_ID_STRIDE",
    "build_pairs",
    "find_records",
    "make_pairs",
]
