"""Quality-paired dataset: segmenting, the pair rule, resumable shards, loaders and bad input.

Real records v100s (II + PLETH), v176s (3 windows with > 20% NaN in II) and v290s (lead I, no PPG) from
PhysioNet 2015 in tests/fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, copy_records

from qualityfm_hf.pairs import (
    FORMAT_VERSION,
    build_pairs,
    load_pairs,
    load_pairs_table,
    make_pairs,
    read_manifest,
)
from qualityfm_hf.pairs import build as pairs_module
from qualityfm_hf.pairs.build import WINDOW_ID_STRIDE
from qualityfm_hf.pairs.dataset import PROVENANCE
from qualityfm_hf.quality import quality_class_index
from qualityfm_hf.recordings.io import Recording, read_recording
from qualityfm_hf.recordings.segmenting import resample_channel, segment_recording

RECORDS = ("v100s", "v176s", "v290s")
E, G, A, P, B = "Excellent", "Good", "Acceptable", "Poor", "Bad"


def _records_dir(root):
    return copy_records(RECORDS, FIXTURES, root)


def _tables(directory):
    """Windows and pairs of a pairs directory, each as one sorted dict of columns."""
    windows = pq.read_table([directory / f for f in sorted(os.listdir(directory)) if f.startswith("windows-")])
    pairs = pq.read_table([directory / f for f in sorted(os.listdir(directory)) if f.startswith("pairs-")])
    windows = windows.sort_by("window_id").to_pydict()
    pairs = pairs.sort_by([("teacher_window_id", "ascending"), ("student_window_id", "ascending")]).to_pydict()
    # NaN != NaN, and a missing channel's quality is NaN: compare it as a string
    windows = {k: ["nan" if isinstance(x, float) and np.isnan(x) else x for x in v] for k, v in windows.items()}
    return windows, pairs


def _synthetic(seconds=400.0, rate=250.0, ppg=True, ecg=True):
    t = np.arange(int(seconds * rate)) / rate
    signals, rates = {}, {}
    if ppg:
        signals["PLETH"] = 2.0 + np.sin(2 * np.pi * 1.2 * t) ** 8  # positive DC, one pulse per beat
        rates["PLETH"] = rate
    if ecg:
        signals["II"] = np.exp(-(((t % (1 / 1.2)) - 0.3) ** 2) / (2 * 0.01**2))  # one narrow R wave per beat
        rates["II"] = rate
    return Recording("synthetic", signals, rates)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Records dir and an uninterrupted reference build of the three fixture records, one record per shard."""
    root = tmp_path_factory.mktemp("pairs")
    records = _records_dir(root / "records")
    manifest = build_pairs(records, root / "reference", records_per_shard=1, progress=False)
    return records, root / "reference", manifest


# =============================================================================
# The pair rule
# =============================================================================
def test_make_pairs_hand_made_sequence_better_window_is_teacher():
    classes = [E, G, G, B, G]
    scores = [0.95, 0.8, 0.75, 0.1, 0.85]
    pairs = make_pairs(classes, scores).tolist()
    # equal classes (1,2), (1,4), (2,4) never pair; the Bad window 3 is the student of everything else
    assert pairs == [[0, 1], [0, 2], [0, 3], [0, 4], [1, 3], [2, 3], [4, 3]]


def test_make_pairs_looks_only_at_next_max_neighbours_windows():
    classes = [4] + [0] * 11  # window 0 differs from every other window
    pairs = make_pairs(classes, np.linspace(1, 0, 12))
    assert pairs.tolist() == [[0, j] for j in range(1, 10)]  # j = 1..9, not 10 or 11
    assert make_pairs([0, 1, 0, 1, 0], [0.1, 0.4, 0.2, 0.3, 0.0], max_neighbours=2).tolist() == [
        [1, 0], [1, 2], [3, 2], [3, 4]
    ]


def test_make_pairs_skips_unscored_and_validates_input():
    assert make_pairs([-1, 3, 1], [np.nan, 0.8, 0.4]).tolist() == [[1, 2]]
    assert make_pairs([], []).shape == (0, 2)
    with pytest.raises(ValueError, match="same length"):
        make_pairs([1, 2], [0.5])


# =============================================================================
# Segmenting
# =============================================================================
def test_segment_real_record_gives_normalised_scored_windows():
    windows = segment_recording(read_recording(FIXTURES / "v100s"), time_range=(0, 300))
    assert windows.status == "ok" and windows.num_windows == 10 and len(windows) == 10
    assert windows.input_values.shape == (10, 2, 9000) and windows.input_values.dtype == np.float32
    # joint min-max: each window spans exactly [-1, 1] over both channels together
    np.testing.assert_allclose(windows.input_values.min(axis=(1, 2)), -1, atol=1e-6)
    np.testing.assert_allclose(windows.input_values.max(axis=(1, 2)), 1, atol=1e-6)
    assert (windows.channel_mask == 1).all()
    np.testing.assert_array_equal(windows.start_seconds, np.arange(10) * 30.0)
    np.testing.assert_allclose(windows.quality, (windows.ecg_quality + windows.ppg_quality) / 2)
    np.testing.assert_array_equal(windows.quality_class, quality_class_index(windows.quality))
    assert windows.channels == {"PPG": "PLETH", "ECG_II": "II"}


def test_segment_falls_back_to_other_lead_and_keeps_missing_ppg_masked():
    windows = segment_recording(read_recording(FIXTURES / "v290s"))
    assert windows.channels == {"PPG": None, "ECG_II": "I"}
    assert any("lead 'I'" in note for note in windows.notes)
    assert len(windows) == 10 and (windows.channel_mask == [0, 1]).all()
    assert (windows.input_values[:, 0] == 0).all()  # missing PPG stays zero
    assert np.isnan(windows.ppg_quality).all()
    np.testing.assert_allclose(windows.quality, windows.ecg_quality)


def test_segment_counts_rejects_by_reason_on_real_record():
    windows = segment_recording(read_recording(FIXTURES / "v176s"), time_range=(0, 300))
    assert windows.num_windows == 10 and len(windows) == 7
    assert dict(windows.rejects) == {"ecg_nan": 3}
    assert np.isfinite(windows.input_values).all()


def test_segment_time_range_drops_the_tail_and_rejects_nan_and_flat_windows():
    recording = _synthetic(seconds=400)
    assert segment_recording(recording).num_windows == 13  # 400 s -> 13 full windows, 10 s tail dropped
    ecg, ppg = recording.signals["II"], recording.signals["PLETH"]
    ecg[30 * 250: 30 * 250 + int(0.25 * 7500)] = np.nan  # window 1: 25% NaN -> rejected
    ecg[60 * 250: 60 * 250 + int(0.10 * 7500)] = np.nan  # window 2: 10% NaN -> kept, interpolated
    ppg[90 * 250: 120 * 250] = 2.0  # window 3: flat PPG
    windows = segment_recording(recording, time_range=(0, 300))
    assert windows.num_windows == 10
    assert dict(windows.rejects) == {"ecg_nan": 1, "ppg_flat": 1}
    assert windows.window_index.tolist() == [0, 2, 4, 5, 6, 7, 8, 9]
    assert windows.start_seconds.max() == 270.0
    assert np.isfinite(windows.input_values).all()


def test_segment_skips_records_without_usable_channels():
    t = np.arange(9000) / 250.0
    assert segment_recording(Recording("r", {"RESP": np.sin(t)}, {"RESP": 250.0})).skip_reason == "no_ppg_or_ecg"
    all_nan = Recording("r", {"II": np.full(9000, np.nan)}, {"II": 250.0})
    assert segment_recording(all_nan).skip_reason == "all_nan"
    empty = Recording("r", {"II": np.zeros(0), "PLETH": np.zeros(0)}, {"II": 250.0, "PLETH": 125.0})
    assert segment_recording(empty).skip_reason == "empty"
    short = segment_recording(_synthetic(seconds=20))
    assert short.status == "no_windows" and "shorter than one window" in short.notes[-1]


def test_resample_channel_marks_missing_samples_at_the_new_rate():
    signal = np.sin(np.arange(2500) / 250.0)
    signal[1000:1250] = np.nan  # 1 s gap at 250 Hz
    values, missing = resample_channel(signal, 250.0, 300)
    assert values.shape == (3000,) and np.isfinite(values).all()
    assert missing.sum() == pytest.approx(300, abs=2)


# =============================================================================
# Build
# =============================================================================
def test_build_stores_each_window_once_and_pairs_within_records(built):
    _, reference, manifest = built
    windows, pairs = _tables(reference)
    ids = windows["window_id"]
    assert len(ids) == len(set(ids)) == manifest["counts"]["windows_kept"] == 10 + 7 + 10
    assert set(pairs["teacher_window_id"]) | set(pairs["student_window_id"]) <= set(ids)
    record_of = dict(zip(ids, windows["record"]))
    assert all(record_of[t] == record_of[s] == r for t, s, r in
               zip(pairs["teacher_window_id"], pairs["student_window_id"], pairs["record"]))
    assert all(t > s for t, s in zip(pairs["teacher_class"], pairs["student_class"]))
    assert all(id_ // WINDOW_ID_STRIDE == RECORDS.index(r) for id_, r in zip(ids, windows["record"]))
    matrix = np.asarray(manifest["class_matrix"]["counts"])
    assert matrix.sum() == manifest["counts"]["pairs"] == len(pairs["record"]) > 0
    assert np.triu(matrix).sum() == 0  # teacher class > student class
    assert manifest["rejects"] == {"ppg_nan": 0, "ecg_nan": 3, "ppg_flat": 0, "ecg_flat": 0}
    assert manifest["complete"] and manifest["format_version"] == FORMAT_VERSION
    assert manifest["records"]["v290s"]["channels"] == {"PPG": None, "ECG_II": "I"}


def test_interrupted_build_resumes_to_the_same_result_without_rewriting(built, tmp_path, monkeypatch):
    records, reference, _ = built
    out = tmp_path / "out"
    write_shard, calls = pairs_module._write_shard, []

    def failing_write_shard(*args, **kwargs):
        if len(calls) == 1:
            raise RuntimeError("injected failure after shard 0")
        calls.append(args[1])
        return write_shard(*args, **kwargs)

    monkeypatch.setattr(pairs_module, "_write_shard", failing_write_shard)
    with pytest.raises(RuntimeError, match="injected"):
        build_pairs(records, out, records_per_shard=1, progress=False)
    monkeypatch.setattr(pairs_module, "_write_shard", write_shard)
    partial = read_manifest(out)
    assert not partial["complete"] and [s["index"] for s in partial["shards"]] == [0]
    first = (out / "windows-00000.parquet").stat()

    # a second, limited run builds one more record; the third run finishes
    assert build_pairs(records, out, records_per_shard=1, max_records=2, progress=False)["counts"]["records_done"] == 2
    manifest = build_pairs(records, out, records_per_shard=1, progress=False)
    assert (out / "windows-00000.parquet").stat().st_mtime_ns == first.st_mtime_ns  # shard 0 never rewritten
    assert manifest["complete"]
    assert _tables(out) == _tables(reference)
    reference_manifest = read_manifest(reference)
    for key in ("counts", "rejects", "class_matrix", "records", "shards"):
        assert manifest[key] == reference_manifest[key]
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_rebuild_with_another_config_is_refused(built, tmp_path):
    records, reference, _ = built
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    with pytest.raises(ValueError, match="records_per_shard: 1 there, 2 now"):
        build_pairs(records, out, records_per_shard=2, progress=False)


def test_other_format_version_is_a_clear_error(built, tmp_path):
    records, reference, _ = built
    out = tmp_path / "old"
    shutil.copytree(reference, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["format_version"] = 0
    (out / "manifest.json").write_text(json.dumps(manifest))
    message = f"version 0, but this qualityfm-hf reads 'qualityfm-pairs' version {FORMAT_VERSION}. Rebuild"
    with pytest.raises(ValueError, match=message):
        load_pairs(out)
    with pytest.raises(ValueError, match="Rebuild"):
        build_pairs(records, out, records_per_shard=1, progress=False)
    with pytest.raises(FileNotFoundError, match="not a pairs directory"):
        load_pairs(tmp_path)


def test_corrupted_shard_names_the_file_and_rebuild_repairs_only_it(built, tmp_path):
    records, reference, _ = built
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    damaged = out / "windows-00001.parquet"
    damaged.write_bytes(damaged.read_bytes()[:1000])  # truncated mid-write by something else
    with pytest.raises(ValueError, match="windows-00001.parquet is damaged"):
        load_pairs(out)
    untouched = (out / "windows-00000.parquet").stat().st_mtime_ns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_pairs(records, out, records_per_shard=1, progress=False)
    assert any("shard 1" in str(w.message) and "rebuilding" in str(w.message) for w in caught)
    assert (out / "windows-00000.parquet").stat().st_mtime_ns == untouched
    assert _tables(out) == _tables(reference)


def test_same_size_corruption_is_caught_by_checksum_and_read_error(built, tmp_path):
    records, reference, _ = built
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    damaged = out / "pairs-00002.parquet"
    damaged.write_bytes(b"\0" * damaged.stat().st_size)
    with pytest.raises(ValueError, match="pairs-00002.parquet is damaged: its sha256 does not match"):
        load_pairs(out)
    with pytest.warns(UserWarning, match="sha256"):
        build_pairs(records, out, records_per_shard=1, progress=False)
    assert _tables(out) == _tables(reference)


def test_bytes_flipped_in_a_readable_shard_are_caught_on_load(built, tmp_path):
    # Issue 10 item 1: same size, still a valid Parquet file, different window values; pretraining trained on them.
    _, reference, _ = built
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    damaged = out / "windows-00000.parquet"
    data = bytearray(damaged.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4] = bytes(255 - b for b in data[middle:middle + 4])
    damaged.write_bytes(bytes(data))
    import pyarrow.parquet as pq

    assert pq.read_table(damaged).num_rows > 0  # readable: only the digest shows the change
    for streaming in (False, True):
        with pytest.raises(ValueError, match="windows-00000.parquet is damaged: its sha256 does not match"):
            load_pairs(out, streaming=streaming)


def test_records_without_ppg_and_ecg_are_skipped_and_counted(tmp_path):
    import wfdb

    records = tmp_path / "records"
    records.mkdir()
    for name in ("v100s.hea", "v100s.mat"):
        shutil.copy(FIXTURES / name, records / name)
    resp = np.sin(np.arange(250 * 60) / 250.0)[:, None]
    wfdb.wrsamp("resp", fs=250, units=["NU"], sig_name=["RESP"], p_signal=resp, fmt=["16"], write_dir=str(records))
    (records / "broken.hea").write_text("broken 2 250 not-a-number\n")
    manifest = build_pairs(records, tmp_path / "out", progress=False)
    assert manifest["skipped_records"] == {"no_ppg_or_ecg": 1, "unreadable": 1}
    assert manifest["counts"]["records_with_windows"] == 1
    assert "could not read WFDB record" in manifest["records"]["broken"]["notes"][0]


# =============================================================================
# Loading
# =============================================================================
def test_streaming_and_in_memory_loaders_give_the_same_pairs(built):
    _, reference, manifest = built
    in_memory = load_pairs(reference, return_provenance=True)
    streamed = list(load_pairs(reference, streaming=True, return_provenance=True, batch_size=7))
    assert len(in_memory) == len(streamed) == manifest["counts"]["pairs"]
    for k in (0, len(streamed) // 2, len(streamed) - 1):
        a, b = in_memory[k], streamed[k]
        assert a.keys() == b.keys()
        for key in a:
            if key.endswith(("input_values", "channel_mask", "quality_scores")):
                assert a[key].shape == ((2, 9000) if key.endswith("values") else (2,))
                assert np.array_equal(a[key].numpy(), b[key].numpy(), equal_nan=True)
            else:
                assert a[key] == b[key]
    assert [(p["teacher_window_id"], p["student_window_id"]) for p in streamed] == [
        (in_memory[k]["teacher_window_id"], in_memory[k]["student_window_id"]) for k in range(len(in_memory))
    ]


def test_loaded_pair_holds_the_stored_windows(built):
    _, reference, _ = built
    windows, _ = _tables(reference)
    item = load_pairs(reference, return_provenance=True, return_tensors="np")[3]
    row = windows["window_id"].index(item["teacher_window_id"])
    np.testing.assert_array_equal(item["teacher_input_values"].ravel(), np.float32(windows["input_values"][row]))
    assert item["teacher_input_values"].dtype == np.float32 and item["teacher_channel_mask"].dtype == np.int64
    # The quality head's target: the stored per-channel scores of that window, [PPG, ECG_II], NaN when not scored.
    np.testing.assert_array_equal(
        item["teacher_quality_scores"],
        np.float32([windows["ppg_quality"][row], windows["ecg_quality"][row]]).astype(np.float32),
    )
    assert set(load_pairs(reference)[0]) == {"teacher_input_values", "student_input_values",
                                             "teacher_channel_mask", "student_channel_mask",
                                             "teacher_quality_scores", "student_quality_scores"}


def test_streaming_splits_shards_over_dataloader_workers(built):
    import torch

    _, reference, manifest = built
    loader = torch.utils.data.DataLoader(load_pairs(reference, streaming=True), batch_size=8, num_workers=2)
    batches = list(loader)
    assert sum(len(b["teacher_input_values"]) for b in batches) == manifest["counts"]["pairs"]
    assert batches[0]["teacher_input_values"].shape[1:] == (2, 9000)


def _pair_key(item) -> tuple[int, int]:
    return int(item["teacher_window_id"]), int(item["student_window_id"])


@pytest.mark.parametrize("return_tensors", ["pt", "np"])
def test_streaming_items_equal_in_memory_items_for_the_same_pair_ids(built, return_tensors):
    _, reference, _ = built
    in_memory = load_pairs(reference, return_provenance=True, return_tensors=return_tensors)
    by_ids = {_pair_key(in_memory[k]): in_memory[k] for k in range(len(in_memory))}
    streamed = list(load_pairs(reference, streaming=True, return_provenance=True,
                               return_tensors=return_tensors, batch_size=5))
    assert len(by_ids) == len(in_memory) == len(streamed)  # pair ids are unique, so they name an item
    for item in streamed:
        expected = by_ids[_pair_key(item)]
        assert list(item) == list(expected)
        for key, value in expected.items():
            if key in PROVENANCE:
                assert type(item[key]) is type(value) and item[key] == value, key
            else:
                assert type(item[key]) is type(value) and item[key].dtype == value.dtype, key
                assert item[key].shape == value.shape, key
                np.testing.assert_array_equal(np.asarray(item[key]), np.asarray(value), err_msg=key)
    # Without provenance: the same item keys as in memory, and the same items in the same (file) order.
    plain = list(load_pairs(reference, streaming=True, return_tensors=return_tensors))
    assert list(plain[0]) == list(load_pairs(reference, return_tensors=return_tensors)[0])
    for k in (0, len(plain) - 1):
        np.testing.assert_array_equal(np.asarray(plain[k]["student_input_values"]),
                                      np.asarray(in_memory[k]["student_input_values"]))


def test_streamed_items_own_their_arrays(built):
    # The collator may augment in place: changing one item must not change the next pass (or another item).
    import torch

    _, reference, _ = built
    dataset = load_pairs(reference, streaming=True)
    first = next(iter(dataset))
    original = first["teacher_input_values"].clone()
    first["teacher_input_values"].fill_(7.0)
    again = next(iter(dataset))
    assert torch.equal(again["teacher_input_values"], original)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        load_pairs(reference, streaming=True, batch_size=0)


@pytest.mark.parametrize("seed", [None, 3])
def test_dataloader_workers_read_disjoint_shards_in_the_documented_order(built, monkeypatch, seed):
    from types import SimpleNamespace

    from qualityfm_hf.pairs import dataset as pairs_dataset

    _, reference, manifest = built
    dataset = load_pairs(reference, streaming=True, shuffle_shards_seed=seed)
    order = [s["index"] for s in manifest["shards"]]  # index order, unless shuffled with the seed
    if seed is not None:
        np.random.default_rng(seed).shuffle(order)
    assert [s["index"] for s in dataset.worker_shards()] == order
    for workers in (1, 2, 4):  # 4 workers for 3 shards: one worker reads nothing
        taken = []
        for worker in range(workers):
            info = SimpleNamespace(id=worker, num_workers=workers)
            monkeypatch.setattr(pairs_dataset, "get_worker_info", lambda info=info: info)
            taken.append([s["index"] for s in dataset.worker_shards()])
        assert sorted(i for shards in taken for i in shards) == sorted(order)
        assert taken == [order[w::workers] for w in range(workers)]


def test_dataloader_workers_yield_each_pair_exactly_once(built):
    import torch

    _, reference, _ = built
    in_memory = load_pairs(reference, return_provenance=True)
    expected = sorted(_pair_key(in_memory[k]) for k in range(len(in_memory)))
    loader = torch.utils.data.DataLoader(load_pairs(reference, streaming=True, return_provenance=True),
                                         batch_size=None, num_workers=2)
    assert sorted(_pair_key(item) for item in loader) == expected


def test_streaming_hashes_each_shard_once_per_process_and_catches_a_replaced_one(built, tmp_path,
                                                                                 monkeypatch):
    from qualityfm_hf.pairs import format as pairs_format

    _, reference, manifest = built
    out = tmp_path / "out"
    shutil.copytree(reference, out)  # new paths: not hashed in this process yet
    hashed = []
    real_sha256 = pairs_format._sha256
    monkeypatch.setattr(pairs_format, "_sha256", lambda path: hashed.append(path.name) or real_sha256(path))
    dataset = load_pairs(out, streaming=True)
    for _ in range(2):
        assert sum(1 for _ in dataset) == manifest["counts"]["pairs"]
    assert sorted(hashed) == sorted(f for f in os.listdir(out) if f.endswith(".parquet"))
    damaged = out / "windows-00001.parquet"  # replaced after the dataset was opened: same size, other bytes
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="windows-00001.parquet is damaged: its sha256 does not match"):
        list(dataset)


def test_streaming_does_not_import_datasets(built):
    # Importing `datasets` took 0.7-4 s per fresh process (each spawned DataLoader worker paid it again).
    import subprocess
    import sys

    _, reference, manifest = built
    code = ("import sys; from qualityfm_hf.pairs import load_pairs; "
            f"n = sum(1 for _ in load_pairs({str(reference)!r}, streaming=True)); "
            "print(n, 'datasets' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(manifest["counts"]["pairs"]), "False"]


def test_load_pairs_table_has_provenance_columns(built):
    _, reference, manifest = built
    table = load_pairs_table(reference)
    assert len(table) == manifest["counts"]["pairs"]
    assert {"teacher_window_id", "record", "teacher_class", "student_quality"} <= set(table.column_names)
    assert set(table["record"]) <= set(RECORDS)
