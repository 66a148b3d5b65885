"""`qualityfm quickstart`: the bundled records, the same-folds comparison, and a report whose verdicts follow its
numbers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from qualityfm_hf.cli.main import main
from qualityfm_hf.quickstart import BUNDLED_RECORDS, BUNDLED_TASK_DATA


def test_bundled_full_records_hold_both_labels_with_ii_pleth_and_abp():
    rows = (BUNDLED_RECORDS / "labels.csv").read_text().splitlines()[1:]
    labels = [row.split(",")[2] for row in rows]
    assert len(rows) == 12 and labels.count("1") == 6 and labels.count("0") == 6
    for row in rows:
        record = row.split(",")[0]
        header = (BUNDLED_RECORDS / f"{record}.hea").read_text()
        assert all(name in header for name in (" II", " PLETH", " ABP")), record
        assert (BUNDLED_RECORDS / f"{record}.mat").stat().st_size > 100_000


def test_bundled_vt_prealarm_records_are_all_231_alarms_with_their_alarm_time():
    folder = BUNDLED_TASK_DATA["vt-false-alarm"]
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 231 and sum(row["label"] == "1" for row in rows) == 59
    for row in rows[::23]:
        header = (folder / f"{row['record']}.hea").read_text()
        assert "# alarm_seconds: 20" in header and ("True alarm" in header) == (row["label"] == "1"), row
        assert "ABP" not in header and "RESP" not in header  # only what the VT task and its baselines read


def test_bundled_af_records_are_the_200_ecgs_with_their_reference():
    folder = BUNDLED_TASK_DATA["af"]
    reference = (folder / "REFERENCE.csv").read_text().split()
    assert len(reference) == 200 and len(list(folder.glob("*.hea"))) == 200
    assert sum(line.endswith(",A") for line in reference) == 33


def test_prealarm_window_equals_the_full_records_window():
    """The trimmed record's `#alarm_seconds: 20` puts the VT window on the same samples as the full record's 300 s."""
    from qualityfm_hf.recordings.io import find_channel, read_recording
    from qualityfm_hf.tasks.vt_false_alarm import alarm_time, record_windows

    for name in ("v254s", "v221l"):  # a true alarm; a long record (30 s after the alarm)
        full, trimmed = read_recording(BUNDLED_RECORDS / name), read_recording(BUNDLED_TASK_DATA["vt-false-alarm"] / name)
        assert alarm_time(full) == 300.0 and alarm_time(trimmed) == 20.0 and alarm_time(trimmed, 15) == 15.0
        (a,), _ = record_windows(full, find_channel)
        (b,), _ = record_windows(trimmed, find_channel)
        assert a["channels"] == b["channels"] and a["signals"].shape == b["signals"].shape == (2, 2500)
        np.testing.assert_array_equal(a["signals"], b["signals"])


def test_a_malformed_alarm_comment_is_a_clear_error():
    from types import SimpleNamespace

    from qualityfm_hf.tasks.vt_false_alarm import alarm_time

    with pytest.raises(ValueError, match="alarm_seconds: twenty.*should give the alarm time in seconds"):
        alarm_time(SimpleNamespace(name="v1", comments=["alarm_seconds: twenty"]))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def _prediction_rows(labels, probabilities):
    return [{"record": f"r{i}", "label": int(y), "probability": float(p), "repeat": 0, "fold": 0}
            for i, (y, p) in enumerate(zip(labels, probabilities))]


def test_paired_difference_is_the_auroc_difference_on_the_same_records():
    from qualityfm_hf.finetuning.compare import paired_difference
    from qualityfm_hf.tasks.metrics.classification import auroc

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    good = _sigmoid(labels + rng.normal(0, 0.5, labels.size))
    poor = _sigmoid(labels + rng.normal(0, 3.0, labels.size))
    predictions = {"good": _prediction_rows(labels, good), "poor": _prediction_rows(labels, poor)}
    d = paired_difference(predictions, "good", "poor", n_bootstrap=300)
    assert d["difference"] == pytest.approx(auroc(labels, good) - auroc(labels, poor))
    assert d["ci95"][0] > 0 and d["records"] == 80
    same = paired_difference(predictions, "good", "good", n_bootstrap=50)
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0]


def _comparison(scores: dict[str, np.ndarray], labels: np.ndarray) -> dict:
    """What `compare_methods` returns, for methods whose out-of-fold scores are given."""
    from qualityfm_hf.finetuning.crossval import Fold, summarize

    records = [f"r{i}" for i in range(labels.size)]
    features = [{"record": r, "labels": np.array(float(y))} for r, y in zip(records, labels)]
    fold = Fold(0, 0, (), tuple(records))
    methods, predictions = {}, {}
    for name, values in scores.items():
        result = [{"fold": fold, "test": features, "scores": np.asarray(values, dtype=float), "info": {},
                   "train_labels": labels.astype(float)}]
        methods[name] = {**summarize("vt-false-alarm", result, n_bootstrap=200), "seconds": 0.0}
        predictions[name] = _prediction_rows(labels, values)
    return {"records": labels.size, "windows": labels.size, "folds": 1, "seed": 0,
            "positives": int(labels.sum()), "methods": methods, "predictions": predictions}


def test_verdicts_follow_the_numbers():
    from qualityfm_hf.reports.quickstart_report import results_rows, task_verdicts

    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 50)
    strong, noise = _sigmoid(labels + rng.normal(0, 0.6, labels.size)), _sigmoid(rng.normal(0, 1, labels.size))
    comparison = _comparison({
        "pretrained-base": noise, "random-init": noise + rng.normal(0, 0.01, labels.size),
        "pretrained-base-probe": strong, "random-init-probe": noise, "baseline:logistic": strong,
        "baseline:gradient_boosting": np.full(labels.size, 0.3)}, labels)
    sentences, differences = task_verdicts("vt-false-alarm", comparison, n_bootstrap=300)
    text = "\n".join(sentences)
    # A chance-level model is called so, with its number; no sentence praises it.
    pooled = comparison["methods"]["pretrained-base"]["pooled_oof"][0]
    assert f"scores AUROC {pooled['auroc']:.3f}" in text and "not distinguishable from chance" in text
    assert "no clear difference between pretrained-base and random-init" in text
    assert "pretrained-base-probe beats random-init-probe" in text
    assert "pretrained-base is worse than baseline:logistic" in text
    assert "baseline:gradient_boosting gives every record the same score (0.300)" in text
    assert {(d["first"], d["second"]) for d in differences} == {
        ("pretrained-base", "random-init"), ("pretrained-base-probe", "random-init-probe"),
        ("pretrained-base", "baseline:logistic")}
    rows = results_rows({"vt-false-alarm": comparison})
    assert {row["method"] for row in rows} == set(comparison["methods"])
    assert all(set(row) >= {"task", "method", "auroc", "auroc_ci"} and len(row["auroc_ci"]) == 2 for row in rows)


def test_pretraining_verdicts_quote_the_losses_and_the_collapse_monitor():
    from qualityfm_hf.reports.quickstart_report import pretraining_verdicts

    losses = [{"loss": 1.0, "amplitude_loss": a, "phase_loss": 0.0, "student_rank": r}
              for a, r in ((1.0, 6.0), (0.9, 5.0), (0.5, 5.0), (0.4, 1.3))]
    demo = {"losses": losses, "loss_weights": {"amplitude_loss": 1.0, "phase_loss": 0.0}, "batch_size": 8,
            "spectra": {"predicted_amplitude": np.full(50, 0.2), "target_amplitude": np.sin(np.arange(50.0))}}
    text = "\n".join(pretraining_verdicts(demo))
    assert "amplitude loss (weight 1) fell: 0.950 in the first 2 logged steps, 0.450 in the last 2" in text
    assert "phase" not in text  # weight 0: not trained, not judged
    assert "effective rank 1.3" in text and "collapse." in text and "no sign of collapse" not in text
    assert "almost flat spectrum" in text


@pytest.mark.parametrize("option,value,message", [("--steps", "0", "--steps must be >= 1"),
                                                  ("--folds", "1", "--folds must be >= 2")])
def test_quickstart_cli_rejects_bad_numbers(tmp_path, capsys, option, value, message):
    assert main(["quickstart", option, value, "--output", str(tmp_path / "o")]) == 1
    assert message in capsys.readouterr().err


def test_quickstart_cli_rejects_a_missing_data_dir(tmp_path, capsys):
    assert main(["quickstart", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 1
    assert "is not a directory" in capsys.readouterr().err


def test_compare_methods_names_the_folds_option_when_a_class_is_too_small(tmp_path):
    from qualityfm_hf.finetuning.compare import compare_methods
    from qualityfm_hf.finetuning.train import training_arguments

    for name in ("v254s", "v122s", "v136s"):  # one true alarm, two false
        for suffix in (".hea", ".mat"):
            (tmp_path / f"{name}{suffix}").write_bytes((BUNDLED_RECORDS / f"{name}{suffix}").read_bytes())
    with pytest.raises(ValueError, match=r"3-fold .* at least 3 records of each class.*'true alarm': 1.*--folds"):
        compare_methods("vt-false-alarm", tmp_path, training_arguments(tmp_path / "ft"), folds=3)


@pytest.mark.slow
def test_quickstart_end_to_end_writes_a_report_that_matches_its_summary(tmp_path, capsys):
    from transformers import AutoModel

    from qualityfm_hf import QualityFMModel

    out = tmp_path / "qs"
    assert main(["quickstart", "--output", str(out), "--steps", "3", "--folds", "2", "--finetune-epochs", "1",
                 "--tasks", "af", "--no-progress"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "eval_auroc" not in captured.err  # one line per method, not the Trainer's line per log step
    summary = json.loads((out / "summary.json").read_text())
    methods = {row["method"] for row in summary["results"]}
    assert methods == {"pretrained-base", "random-init", "pretrained-base-probe", "random-init-probe",
                       "baseline:logistic", "baseline:rhythm_logistic"}
    report = (out / "report.md").read_text()
    for row in summary["results"]:
        assert row["task"] == "af" and 0 <= row["auroc"] <= 1 and row["auroc_ci"][0] <= row["auroc_ci"][1]
        assert f"{row['auroc']:.3f} [{row['auroc_ci'][0]:.2f}, {row['auroc_ci'][1]:.2f}]" in printed
        assert f"| {row['method']} |" in report
    for sentence in summary["verdicts"]["sentences"]:
        assert sentence in report and sentence in printed
    for name in ("quality_timeline.png", "spectra.png", "loss_curves.png", "roc.png", "predictions.json"):
        assert (out / name).stat().st_size > 1000, name
    assert type(AutoModel.from_pretrained(out / "pretrain" / "encoder")) is QualityFMModel
    # Nothing big is left behind: no checkpoint with optimiser state, no fold folders.
    total = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    assert total < 40_000_000 and not list(out.rglob("optimizer.pt")) and not (out / "af-folds").exists()
