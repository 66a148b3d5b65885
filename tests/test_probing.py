"""Frozen-encoder embeddings and record-level probes (`qualityfm embed`, `qualityfm probe`, `qualityfm_hf.finetuning.probing`).

Embedding tests run on the 12 bundled PhysioNet 2015 records (6 true, 6 false VT alarms, with II, PLETH and ABP); the
probe statistics are checked on synthetic embeddings whose answer is known.
"""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO_ROOT, tiny_config

from qualityfm_hf import QualityFMModel
from qualityfm_hf.cli.main import main
from qualityfm_hf.finetuning.probing import (
    embed_task,
    embedding_matrix,
    probe_embeddings,
    probe_frame,
    read_embeddings,
    record_folds,
    write_embeddings,
)
from qualityfm_hf.finetuning.task_data import build_task_table, collate, extract_features
from qualityfm_hf.finetuning.train import load_feature_extractor

BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"


def bundled_labels() -> dict[str, float]:
    with open(BUNDLED_VT / "labels.csv", newline="") as handle:
        return {row["record"]: float(row["label"]) for row in csv.DictReader(handle)}


def synthetic_windows(n_records=40, windows_per_record=3, dims=8, signal=6.0, seed=0):
    """Embeddings whose dimension 3 is `signal` x the record's 0/1 label plus unit noise (other dimensions noise)."""
    rng = np.random.default_rng(seed)
    record_labels = np.arange(n_records) % 2
    groups = np.repeat([f"r{i:03d}" for i in range(n_records)], windows_per_record)
    labels = np.repeat(record_labels, windows_per_record)
    embeddings = rng.normal(size=(len(labels), dims))
    embeddings[:, 3] += signal * labels
    return embeddings, labels, groups, record_labels


@pytest.fixture(scope="module")
def vt_parquet(tmp_path_factory):
    """`qualityfm embed --model base` on the bundled records (random init, seed 0)."""
    path = tmp_path_factory.mktemp("embed") / "vt.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["embed", "--model", "base", "--task", "vt-false-alarm", "--data", str(BUNDLED_VT), "--output",
                   str(path), "--no-progress", "--json"])
    assert rc == 0
    return path


def test_embed_cli_writes_one_row_per_bundled_record_with_its_label(vt_parquet):
    schema = pq.read_schema(vt_parquet)
    assert schema.names == ["record", "label", "window_start", "embedding"]
    assert schema.field("record").type == pa.string() and schema.field("label").type == pa.float64()
    assert schema.field("embedding").type == pa.list_(pa.float32())
    frame = read_embeddings(vt_parquet)
    labels = bundled_labels()
    assert len(frame) == 12 and sorted(frame["record"]) == sorted(labels)
    assert [labels[r] for r in frame["record"]] == frame["label"].tolist()
    # The VT window is the 10 s before the alarm at 300 s.
    assert np.allclose(frame["window_start"], 290.0)
    matrix = embedding_matrix(frame)
    assert matrix.shape == (12, 512) and matrix.dtype == np.float32 and np.isfinite(matrix).all()
    assert matrix.std(0).max() > 0  # different records give different embeddings
    assert frame.attrs == {"task": "vt-false-alarm", "model": "base", "hidden_size": 512}


def test_embed_task_rows_equal_the_encoder_run_one_window_at_a_time():
    torch.manual_seed(0)
    encoder = QualityFMModel(tiny_config()).train()  # embed_windows must run it in eval mode, then restore this
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = embed_task(encoder, "vt-false-alarm", BUNDLED_VT, batch_size=5, progress=False)
        features, _ = extract_features(build_task_table("vt-false-alarm", BUNDLED_VT),
                                       load_feature_extractor("base"))
    assert encoder.training
    encoder.eval()
    with torch.no_grad():
        expected = {f["record"]: encoder(**collate([{k: f[k] for k in ("input_values", "attention_mask",
                                                                          "channel_mask")}])).pooler_output[0].numpy()
                    for f in features}
    for record, embedding in zip(frame["record"], frame["embedding"]):
        np.testing.assert_allclose(embedding, expected[record], atol=1e-5)


def test_embed_task_abp_keeps_sbp_and_dbp_of_each_window():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = embed_task(QualityFMModel(tiny_config()), "abp", BUNDLED_VT, progress=False)
    assert {"sbp", "dbp"} <= set(frame.columns) and len(frame) > 12  # several 30-s windows per record
    np.testing.assert_array_equal(frame["label"], frame["sbp"])
    assert (frame["sbp"] > frame["dbp"]).all() and frame["dbp"].between(20, 200).all()
    assert np.allclose(frame["window_start"] % 30.0, 0.0)


def test_probe_cli_on_real_record_embeddings_reports_records_folds_and_repeats(vt_parquet, capsys):
    args = ["probe", "--task", "vt-false-alarm", "--embeddings", str(vt_parquet), "--folds", "3", "--repeats", "2",
            "--n-bootstrap", "50"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["n_windows"], result["n_records"], result["n_positive_records"]) == (12, 12, 6)
    assert result["folds"] == 3 and result["repeats"] == 2 and result["unlabelled_windows_excluded"] == 0
    for method in ("linear", "knn"):
        per_repeat = result[method]["auroc_per_repeat"]
        assert len(per_repeat) == 2 and all(0.0 <= v <= 1.0 for v in per_repeat)
        low, high = result[method]["ci95"]
        assert 0.0 <= low <= high <= 1.0
    assert len(result["linear_C_chosen"]) == 2 and all(len(folds) == 3 for folds in result["linear_C_chosen"])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "12 windows from 12 records (6 positive), 3 record-level folds × 2 repeats" in out
    assert f"linear probe AUROC {result['linear']['auroc_mean']:.3f} ± " in out and "k-NN AUROC" in out


def test_write_read_round_trip_keeps_columns_nan_labels_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "record": ["a", "a", "b"],
        "label": [120.0, np.nan, 95.5],
        "window_start": [0.0, 30.0, 0.0],
        "sbp": [120.0, np.nan, 95.5],
        "dbp": [80.0, np.nan, 60.0],
        "embedding": list(rng.normal(size=(3, 8)).astype(np.float32)),
    })
    frame.attrs.update(task="abp", model="base", hidden_size=8)
    back = read_embeddings(write_embeddings(frame, tmp_path / "sub" / "e.parquet"))
    assert list(back.columns) == list(frame.columns) and back.attrs == frame.attrs
    pd.testing.assert_frame_equal(back.drop(columns="embedding"), frame.drop(columns="embedding"))
    np.testing.assert_array_equal(embedding_matrix(back), embedding_matrix(frame))


def test_read_embeddings_names_the_file_and_the_missing_column(tmp_path):
    path = tmp_path / "no_embedding.parquet"
    pq.write_table(pa.table({"record": ["a"], "label": [1.0], "window_start": [0.0]}), path)
    with pytest.raises(ValueError, match=r"no_embedding.parquet has no 'embedding' column"):
        read_embeddings(path)
    with pytest.raises(ValueError, match="does not exist"):
        read_embeddings(tmp_path / "missing.parquet")


@pytest.mark.parametrize("problem", ["binary", "regression"])
def test_record_folds_never_put_a_record_in_training_and_test(problem):
    rng = np.random.default_rng(1)
    groups = np.repeat([f"r{i}" for i in range(23)], rng.integers(1, 6, 23))  # 1-5 windows per record
    record_label = {g: i % 3 == 0 for i, g in enumerate(dict.fromkeys(groups))}  # 8 positive records of 23
    labels = np.array([record_label[g] for g in groups], dtype=int)
    for seed in range(4):
        folds = record_folds(labels, groups, 5, seed, problem=problem)
        assert folds.n_splits == 5 and folds.note is None
        tested = []
        for train, test in folds.splits:
            assert not set(groups[train]) & set(groups[test])
            assert len(train) + len(test) == len(groups)
            tested += sorted(set(groups[test]))
            if problem == "binary":
                assert set(labels[test]) == {0, 1}  # stratified: every test fold sees both classes
        assert sorted(tested) == sorted(set(groups))  # each record is tested exactly once


def test_record_folds_reduce_folds_when_a_class_has_few_records_and_reject_one():
    groups = np.array([f"r{i}" for i in range(12)])
    labels = np.array([1, 1, 1] + [0] * 9)
    folds = record_folds(labels, groups, 5, 0)
    assert folds.n_splits == len(folds.splits) == 3 and folds.requested_splits == 5
    assert folds.note == "only 3 records of class 1: using 3 folds instead of 5"
    with pytest.raises(ValueError, match="at least 2 records of class 1; found 1"):
        record_folds(np.array([1] + [0] * 11), groups, 5, 0)


def test_probe_embeddings_finds_an_encoded_label_and_not_a_shuffled_one():
    embeddings, labels, groups, record_labels = synthetic_windows()
    kwargs = dict(folds=5, repeats=2, seed=0, n_bootstrap=200)
    result = probe_embeddings(embeddings, labels, groups, **kwargs)
    assert (result["n_windows"], result["n_records"], result["n_positive_records"]) == (120, 40, 20)
    for method in ("linear", "knn"):
        assert result[method]["auroc_mean"] > 0.95, method
        assert result[method]["ci95"][0] > 0.85, method
    # Labels shuffled by record keep each record's windows consistent but carry no signal.
    shuffled = np.repeat(np.random.default_rng(7).permutation(record_labels), 3)
    null = probe_embeddings(embeddings, shuffled, groups, **kwargs)
    for method in ("linear", "knn"):
        assert 0.3 < null[method]["auroc_mean"] < 0.7, method
    assert probe_embeddings(embeddings, labels, groups, **kwargs) == result  # seeded: identical reruns


def test_probe_embeddings_rejects_a_single_class():
    embeddings, labels, groups, _ = synthetic_windows(n_records=6)
    with pytest.raises(ValueError, match="all 18 windows .6 records. have label 0"):
        probe_embeddings(embeddings, np.zeros_like(labels), groups)


def test_probe_embeddings_regression_beats_the_training_mean_baseline():
    rng = np.random.default_rng(0)
    n_records, per = 40, 3
    targets = np.stack([120 + 15 * rng.normal(size=n_records), 70 + 8 * rng.normal(size=n_records)], 1)
    labels = np.repeat(targets, per, axis=0) + rng.normal(scale=2.0, size=(n_records * per, 2))
    groups = np.repeat([f"r{i}" for i in range(n_records)], per)
    embeddings = rng.normal(size=(len(labels), 16))
    embeddings[:, 0] += (labels[:, 0] - 120) / 5  # SBP, and DBP below, each in one dimension
    embeddings[:, 1] += (labels[:, 1] - 70) / 3
    result = probe_embeddings(embeddings, labels, groups, problem="regression", repeats=2, n_bootstrap=100)
    for target in ("sbp", "dbp"):
        baseline = result["baseline_mae"][target]["mae_mean"]
        assert baseline > 5.0
        assert result["linear"][target]["mae_mean"] < 0.5 * baseline, target
        assert result["knn"][target]["mae_mean"] < baseline, target
    assert result["n_positive_records"] is None and len(result["linear_alpha_chosen"]) == 2


def test_probe_cli_prints_mae_per_target_and_the_baseline_for_abp(tmp_path, capsys):
    rng = np.random.default_rng(0)
    sbp, dbp = 120 + 15 * rng.normal(size=30), 70 + 8 * rng.normal(size=30)
    embeddings = rng.normal(size=(30, 6)).astype(np.float32)
    embeddings[:, 0] += (sbp - 120) / 5
    frame = pd.DataFrame({"record": [f"r{i // 2}" for i in range(30)], "label": sbp, "window_start": 0.0,
                          "sbp": sbp, "dbp": dbp, "embedding": list(embeddings)})
    frame.attrs["task"] = "abp"
    path = write_embeddings(frame, tmp_path / "abp.parquet")
    assert main(["probe", "--task", "abp", "--embeddings", str(path), "--repeats", "1", "--n-bootstrap", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "abp: 30 windows from 15 records, 5 record-level folds × 1 repeats, seed 0"
    assert [line.split(":")[0] for line in lines[1:]] == ["linear probe MAE (mmHg)", "k-NN MAE (mmHg)",
                                                          "training-mean baseline MAE (mmHg)"]
    assert all("SBP " in line and ", DBP " in line and "95% CI" in line for line in lines[1:])


def test_probe_frame_excludes_unlabelled_windows():
    embeddings, labels, groups, _ = synthetic_windows(n_records=12, windows_per_record=1)
    frame = pd.DataFrame({"record": groups, "label": labels.astype(float), "window_start": 0.0,
                          "embedding": list(embeddings.astype(np.float32))})
    frame.loc[[0, 1], "label"] = np.nan
    result = probe_frame(frame, "vt-false-alarm", folds=3, repeats=1, n_bootstrap=0)
    assert result["unlabelled_windows_excluded"] == 2 and result["n_records"] == 10
    assert result["notes"] == []


def error_cases(tmp_path):
    no_embedding = tmp_path / "no_embedding.parquet"
    pq.write_table(pa.table({"record": ["a"], "label": [1.0], "window_start": [0.0]}), no_embedding)
    one_class = tmp_path / "one_class.parquet"
    write_embeddings(pd.DataFrame({"record": ["a", "b", "c"], "label": [0.0] * 3, "window_start": [0.0] * 3,
                                   "embedding": list(np.ones((3, 4), np.float32))}), one_class)
    empty = tmp_path / "empty"
    empty.mkdir()
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    embed = ["embed", "--task", "vt-false-alarm", "--output", str(tmp_path / "out.parquet"), "--no-progress"]
    probe = ["probe", "--task", "vt-false-alarm"]
    return [
        ([*embed, "--model", "base", "--data", str(tmp_path / "missing")], "data folder .* does not exist"),
        ([*embed, "--model", "base", "--data", str(empty)], "holds no records"),
        ([*embed, "--model", str(no_config), "--data", str(BUNDLED_VT)], "has no config.json"),
        ([*embed, "--model", str(tmp_path / "nope"), "--data", str(BUNDLED_VT)], "model folder .* does not exist"),
        ([*probe, "--embeddings", str(no_embedding)], "has no 'embedding' column"),
        ([*probe, "--embeddings", str(one_class)], "needs records of both classes"),
    ]


def test_cli_errors_are_one_line_with_exit_code_1(tmp_path, capsys):
    import re

    for argv, expected in error_cases(tmp_path):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith(f"qualityfm {argv[0]}: error: ") and re.search(expected, err), err


@pytest.mark.parametrize("command", ["embed", "probe"])
def test_a_folder_without_the_tasks_labels_is_a_one_line_error(tmp_path, capsys, command):
    # Issue 20 item 5.5: `qualityfm embed --task af` on the VT alarms wrote 0 labelled rows without a word.
    from conftest import FIXTURES, copy_records

    vt_records = copy_records(("v100s", "v176s", "v290s"), FIXTURES, tmp_path / "vt")
    argv = [command, "--task", "af", "--model", "base", "--data", str(vt_records), "--no-progress",
            *(["--output", str(tmp_path / "af.parquet")] if command == "embed" else [])]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"qualityfm {command}: error: {vt_records}: none of its 3 "
                                                         "records has a label for the af task, which expects")
    assert "REFERENCE.csv" in err and not (tmp_path / "af.parquet").exists()
