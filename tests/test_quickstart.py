"""`qualityfm quickstart` end to end with a tiny number of steps on the bundled real records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoModel

from qualityfm_hf import QualityFMModel
from qualityfm_hf.cli.main import main
from qualityfm_hf.quickstart import BUNDLED_RECORDS


def test_bundled_records_hold_both_labels_with_ii_pleth_and_abp():
    rows = (BUNDLED_RECORDS / "labels.csv").read_text().splitlines()[1:]
    labels = [row.split(",")[2] for row in rows]
    assert len(rows) == 12 and labels.count("1") == 6 and labels.count("0") == 6
    for row in rows:
        record = row.split(",")[0]
        header = (BUNDLED_RECORDS / f"{record}.hea").read_text()
        assert all(name in header for name in (" II", " PLETH", " ABP")), record
        assert (BUNDLED_RECORDS / f"{record}.mat").stat().st_size > 100_000


def test_quickstart_tiny_run_writes_report_figures_and_loadable_models(tmp_path, capsys):
    from qualityfm_hf.quickstart import run_quickstart

    out = tmp_path / "qs"
    summary = run_quickstart(out, steps=2, batch_size=4, finetune_epochs=1, n_bootstrap=50, num_workers=1)
    printed = capsys.readouterr().out
    assert "| record | windows | Excellent | Good | Acceptable | Poor | Bad |" in printed
    assert summary["pairs"]["pairs"] > 0 and summary["pairs"]["records_done"] == 12
    for name in ("report.md", "quality_timeline.png", "spectra.png", "loss_curves.png", "roc.png", "summary.json"):
        assert (out / name).stat().st_size > 1000, name
    report = (out / "report.md").read_text()
    assert "![ROC](roc.png)" in report and "**Checks.**" in report and isinstance(summary["checks"], list)
    assert "| pretrained | 12 |" in report and "| scratch | 12 |" in report and "| baseline: logistic | 12 |" in report
    assert type(AutoModel.from_pretrained(out / "pretrain" / "encoder")) is QualityFMModel
    for name in ("vt-pretrained", "vt-scratch"):
        model = AutoModel.from_pretrained(out / name)
        assert type(model).__name__ == "QualityFMForVTFalseAlarm"
        assert (out / name / "README.md").exists()
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["cross_validation"]["folds"] == 5 and metrics["cross_validation"]["records"] == 12
        predictions = json.loads((out / name / "cv_predictions.json").read_text())
        assert len(predictions) == len({p["record"] for p in predictions}) == 12  # each record once, out of fold


def test_quickstart_cli_rejects_a_missing_data_dir(tmp_path, capsys):
    assert main(["quickstart", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 1
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_quickstart_cli_rejects_non_positive_steps(tmp_path, capsys, steps):
    assert main(["quickstart", "--steps", steps, "--output", str(tmp_path / "o")]) == 1
    assert "--steps must be >= 1" in capsys.readouterr().err


def test_report_checks_flag_collapse_a_flat_decoder_and_a_one_score_model():
    from types import SimpleNamespace

    from qualityfm_hf.quickstart import report_checks

    trainer = SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(distillation_target="pooled",
                                                                           num_prototypes=512, hidden_size=512)))
    healthy = report_checks(trainer, [{"student_rank": 20.0}],
                            {"predicted_amplitude": np.sin(np.arange(100.0)), "target_amplitude": np.cos(np.arange(100.0))},
                            {"pretrained": (np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9]))})
    assert healthy == []
    checks = report_checks(trainer, [{"student_rank": 1.1}],
                           {"predicted_amplitude": np.full(100, 0.3), "target_amplitude": np.cos(np.arange(100.0))},
                           {"scratch": (np.array([0, 1, 1]), np.full(3, 0.41))})
    assert len(checks) == 3
    assert "collapse" in checks[0] and "student rank is 1.10" in checks[0]
    assert "almost flat spectrum" in checks[1]
    assert "fine-tuning from scratch: every record gets the same score (0.410)" in checks[2]
