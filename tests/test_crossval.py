"""Record-level cross-validation: folds never leak a record, every record is scored once per repeat, the metrics
follow the scores, and `qualityfm finetune --cv` reports the model and the baselines on the same folds."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from qualityfm_hf import QualityFMModel
from qualityfm_hf.cli.main import main
from qualityfm_hf.finetuning.crossval import Fold, cross_validate, inner_split, record_folds, summarize

AF_2017 = FIXTURES / "physionet2017_af"
FAST = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--n-bootstrap", "20",
        "--logging_steps", "1"]


def _records(n_pos=7, n_neg=13):
    return [f"r{i:02d}" for i in range(n_pos + n_neg)], [1] * n_pos + [0] * n_neg


def test_each_record_is_tested_exactly_once_per_repeat_and_never_trained_on_in_its_fold():
    records, labels = _records()
    folds = record_folds(records, labels, k=5, repeats=3, seed=4)
    assert len(folds) == 15
    for repeat in range(3):
        tested = Counter(r for f in folds if f.repeat == repeat for r in f.test)
        assert set(tested) == set(records) and set(tested.values()) == {1}
    for fold in folds:
        assert not set(fold.train) & set(fold.test)
        assert set(fold.train) | set(fold.test) == set(records)
        # Stratified: 7 positives over 5 folds gives every fold one or two.
        assert 1 <= sum(labels[records.index(r)] for r in fold.test) <= 2


def test_folds_are_reproducible_by_seed_and_repeats_reshuffle():
    records, labels = _records()
    a, b = record_folds(records, labels, 5, 2, seed=1), record_folds(records, labels, 5, 2, seed=1)
    assert a == b
    assert {f.test for f in a if f.repeat == 0} != {f.test for f in a if f.repeat == 1}
    assert {f.test for f in a} != {f.test for f in record_folds(records, labels, 5, 2, seed=2)}


def test_folds_refuse_a_class_with_fewer_records_than_folds():
    records, labels = _records(n_pos=3)
    with pytest.raises(ValueError, match="at least 5 records of each class"):
        record_folds(records, labels, k=5)
    with pytest.raises(ValueError, match="k >= 2"):
        record_folds(records, labels, k=1)


def _windows(records, labels, per_record=2):
    return [{"record": r, "labels": np.array([y], dtype=np.float32), "row": i * per_record + j}
            for i, (r, y) in enumerate(zip(records, labels)) for j in range(per_record)]


def test_inner_split_keeps_records_whole():
    records, labels = _records()
    train, validation = inner_split("af", _windows(records, labels), seed=0)
    assert validation and not {f["record"] for f in train} & {f["record"] for f in validation}
    assert {f["record"] for f in train} | {f["record"] for f in validation} == set(records)


def test_cross_validate_never_shows_test_records_and_metrics_follow_the_scores():
    records, labels = _records()
    windows = _windows(records, labels)
    folds = record_folds(records, labels, k=4, repeats=2, seed=0)

    def oracle(fold: Fold, train, test):
        assert not {f["record"] for f in train} & set(fold.test)
        assert {f["record"] for f in test} == set(fold.test)
        return np.array([float(f["labels"][0]) * 0.8 + 0.1 for f in test]), {}

    def inverted(fold, train, test):
        return 1.0 - oracle(fold, train, test)[0], {}

    good = summarize("af", cross_validate("af", windows, folds, oracle), n_bootstrap=50)
    bad = summarize("af", cross_validate("af", windows, folds, inverted), n_bootstrap=50)
    assert good["over_folds"]["auroc"]["mean"] == 1.0 and good["over_folds"]["auroc"]["n"] == 8
    assert [p["auroc"] for p in good["pooled_oof"]] == [1.0, 1.0]
    assert all(p["records"] == len(records) for p in good["pooled_oof"])
    assert bad["over_folds"]["auroc"]["mean"] == 0.0


def test_regression_summary_scales_mase_by_the_training_folds():
    records = [f"r{i}" for i in range(10)]
    rng = np.random.default_rng(0)
    windows = [{"record": r, "labels": np.array([120 + 20 * rng.standard_normal(), 70.0], dtype=np.float32), "row": i}
               for i, r in enumerate(records)]
    folds = record_folds(records, None, k=5, seed=0)

    def training_mean(fold, train, test):
        mean = np.stack([f["labels"] for f in train]).mean(0)
        return np.tile(mean, (len(test), 1)), {}

    summary = summarize("abp", cross_validate("abp", windows, folds, training_mean), n_bootstrap=20)
    # The training-mean predictor scores MASE close to 1 by construction (it is the MASE scale).
    assert 0.6 < summary["pooled_oof"][0]["sbp_mase"] < 1.6
    assert summary["over_folds"]["sbp_mae"]["n"] == 5


def test_finetune_cv_reports_model_and_baselines_on_the_same_folds_then_saves_the_final_model(backbone, tmp_path,
                                                                                              capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["finetune", "--task", "af", "--data", str(AF_2017), "--model", str(backbone), "--output",
                   str(tmp_path), "--cv", "2", "--repeats", "2", "--json", *FAST])
    assert rc == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # stdout is the JSON result alone; the Trainer's log dicts are on stderr
    assert "step 1: loss " in captured.err and "grad_norm" not in captured.err  # compact; the dicts at debug
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    cv = metrics["cross_validation"]
    assert (cv["folds"], cv["repeats"], cv["records"]) == (2, 2, 8)
    assert {"model", "baseline:logistic"} <= set(cv) and set(printed["cross_validation"]) >= {"model"}
    assert len(cv["model"]["folds"]) == len(cv["baseline:logistic"]["folds"]) == 4
    # Same folds: the same records are tested in each fold for the model and the baseline.
    assert [f["test_records"] for f in cv["model"]["folds"]] == [f["test_records"] for f in cv["baseline:logistic"]["folds"]]
    predictions = json.loads((tmp_path / "cv_predictions.json").read_text())
    for repeat in (0, 1):
        assert Counter(p["record"] for p in predictions if p["repeat"] == repeat) == Counter(
            {r: 1 for r in {p["record"] for p in predictions}})
    config = json.loads((tmp_path / "config.json").read_text())
    assert 0.0 <= config["decision_threshold"] <= 1.0 and config["decision_threshold"] == metrics["decision_threshold"]
    assert (tmp_path / "preprocessor_config.json").is_file() and not (tmp_path / "checkpoints").exists()
    card = (tmp_path / "README.md").read_text()
    assert "cross-validation by record" in card and "baseline: logistic" in card


def test_finetune_cv_prints_a_readable_summary_without_json(backbone, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["finetune", "--task", "af", "--data", str(AF_2017), "--model", str(backbone), "--output",
                     str(tmp_path), "--cv", "2", "--no-final", *FAST]) == 0
    captured = capsys.readouterr()
    assert "[qualityfm] repeat 1, fold 1:" in captured.err  # progress messages through logging, at INFO
    lines = captured.out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("af: 2-fold cross-validation by record"))
    assert "1 repeat(s), 8 records" in lines[start]
    assert lines[start + 1].split()[0] == "model" and "auroc" in lines[start + 1] and "pooled auroc [" in lines[start + 1]
    assert lines[start + 2].split()[0] == "baseline:logistic"
    assert lines[-1].startswith("per-record out-of-fold predictions in") and "final model" not in lines[-1]


def test_finetune_cv_rejects_one_fold(backbone, tmp_path, capsys):
    assert main(["finetune", "--task", "af", "--data", str(AF_2017), "--model", str(backbone), "--output",
                 str(tmp_path), "--cv", "1"]) == 1
    assert "--cv must be 0" in capsys.readouterr().err


def test_default_folds_shrink_to_the_smallest_class():
    from qualityfm_hf.finetuning.finetune_cv import default_folds

    assert default_folds([1] * 3 + [0] * 5) == 3
    assert default_folds([1] * 30 + [0] * 50) == 5
    assert default_folds([1] + [0] * 50) == 2  # record_folds then refuses with a clear message
    assert default_folds(None) == 5


def test_recipe_options_are_saved_with_the_model_and_used_by_evaluate(backbone, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["finetune", "--task", "af", "--data", str(AF_2017), "--model", str(backbone), "--output",
                     str(tmp_path), "--cv", "0", "--bandpass", "--normalization", "robust_channel",
                     "--crop-seconds", "5", "--no-rhythm-features", *FAST]) == 0
    extractor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert extractor["bandpass"] is True and extractor["normalization"] == "robust_channel"
    assert extractor["rhythm_features"] is False  # the AF recipe's default, turned off
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["crop_seconds"] == 5.0 and config["classifier_rhythm_features"] == 0
    card = (tmp_path / "README.md").read_text()
    assert "band-pass (PPG 0.5-8 Hz" in card and "random 5-s crops" in card and "RR-interval" not in card
    capsys.readouterr()
    assert main(["evaluate", "--task", "af", "--model", str(tmp_path), "--data", str(AF_2017), "--json",
                 "--n-bootstrap", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 8


def test_test_time_crops_cover_the_window_and_average():
    from qualityfm_hf.finetuning.task_data import crop_starts, window_crops

    assert crop_starts(3000, 1500, 750) == [0, 750, 1500]
    assert crop_starts(3100, 1500, 750) == [0, 750, 1500, 1600]  # the last crop ends flush with the window
    assert crop_starts(1000, 1500, 750) == [0]
    item = {"input_values": np.arange(2 * 3500, dtype=np.float32).reshape(2, 3500),
            "attention_mask": np.r_[np.ones(3100), np.zeros(400)].astype(np.int64), "channel_mask": np.ones(2)}
    crops = window_crops(item, 1500)
    assert len(crops) == 4 and all(c["input_values"].shape == (2, 1500) for c in crops)
    assert crops[-1]["input_values"][0, -1] == 3099  # never reaches into the padding


def test_lp_ft_trains_the_head_on_the_frozen_encoder_first_then_everything(backbone, tmp_path):
    from qualityfm_hf.finetuning.task_data import build_task_table, extract_features
    from qualityfm_hf.finetuning.train import load_feature_extractor, train_head, training_arguments

    features, _ = extract_features(build_task_table("af", AF_2017), load_feature_extractor(str(backbone)))
    args = training_arguments(tmp_path, max_steps=2, per_device_train_batch_size=4, disable_tqdm=True,
                              eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
    start = QualityFMModel.from_pretrained(backbone).state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net, info = train_head("af", str(backbone), features, [], args, probe_epochs=1)
    assert not net.backbone_frozen and all(p.requires_grad for p in net.parameters())
    # The encoder moved in the fine-tuning phase (it cannot have in the probe phase alone).
    assert any(not torch.equal(net.qualityfm.state_dict()[k], v) for k, v in start.items())
    assert info["global_step"] == 2


@pytest.mark.parametrize("cv", ["0", "2"])
def test_finetune_on_one_class_refuses_in_one_line_before_training(backbone, tmp_path, capsys, cv):
    data = tmp_path / "normal_only"
    data.mkdir()
    for name in ("A00002", "A00006", "A00011"):
        for suffix in (".hea", ".mat"):
            (data / f"{name}{suffix}").write_bytes((AF_2017 / f"{name}{suffix}").read_bytes())
    (data / "REFERENCE.csv").write_text("A00002,N\nA00006,N\nA00011,N\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["finetune", "--task", "af", "--data", str(data), "--model", str(backbone), "--output",
                     str(tmp_path / "out"), "--cv", cv, *FAST]) == 1
    err = capsys.readouterr().err
    assert "all 3 usable records" in err and "have label 0 (not AF)" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_verbosity_sets_which_package_messages_show(capsys):
    from qualityfm_hf.utils.log import get_logger, set_verbosity

    logger = get_logger("qualityfm_hf.finetuning.finetune_cv")
    try:
        set_verbosity("warning")
        logger.info("an info line")
        logger.warning("a warning line")
        err = capsys.readouterr().err
        assert "an info line" not in err and "[qualityfm] a warning line" in err
        set_verbosity("info")
        logger.info("now shown")
        assert "[qualityfm] now shown" in capsys.readouterr().err
    finally:
        set_verbosity("info")
