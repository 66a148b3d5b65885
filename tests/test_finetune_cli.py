"""End to end through the CLI on real records with a tiny backbone: finetune -> evaluate -> predict -> push, and the
fine-tuned checkpoint downloaded from the loopback fake Hub by a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES, REPO_ROOT
from hub_fixtures import fake_hub, fake_hub_endpoint, hub_env, run_hub_python  # noqa: F401
from huggingface_hub import ModelCard

from qualityfm_hf import QualityFMConfig, QualityFMModel
from qualityfm_hf.cli.main import main

AF_2017 = FIXTURES / "physionet2017_af"
BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"
FAST = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--n-bootstrap", "20",
        "--logging_steps", "1"]


@pytest.fixture(scope="module")
def af_model(backbone, tmp_path_factory):
    output = tmp_path_factory.mktemp("af_model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["finetune", "--task", "af", "--data", str(AF_2017), "--model", str(backbone), "--output",
                   str(output), "--cv", "0", *FAST])
    assert rc == 0
    return output


def test_finetune_saves_model_extractor_metrics_card_and_validation_threshold(af_model, backbone):
    files = {p.name for p in af_model.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "metrics.json", "README.md",
            "heads_qualityfm.py", "feature_extraction_qualityfm.py", "rhythm_qualityfm.py", "splits.json"} <= files
    assert "checkpoints" not in files
    metrics = json.loads((af_model / "metrics.json").read_text())
    config = QualityFMConfig.from_pretrained(af_model)
    assert config.architectures == ["QualityFMForAFClassification"]
    # The threshold comes from validation and is what the test metrics used.
    assert config.decision_threshold == metrics["validation"]["threshold"] == metrics["test"]["threshold"]
    splits = json.loads((af_model / "splits.json").read_text())
    assert metrics["test"]["n"] == sum(s == "test" for s in splits.values())
    assert set(metrics["test"]["ci95"]) == {"auroc", "f1", "accuracy"}
    assert metrics["train"]["global_step"] == 2
    # Encoder weights started from the backbone (tiny model, 2 steps at lr 1e-4: still close to it).
    card = ModelCard.load(af_model / "README.md")
    assert card.data.library_name == "transformers" and "qualityfm" in card.data.tags
    assert "atrial fibrillation" in card.text
    # The AF recipe: the head reads the rhythm statistics the saved feature extractor computes.
    assert config.classifier_rhythm_features == 8
    assert json.loads((af_model / "preprocessor_config.json").read_text())["rhythm_features"] is True
    assert "RR-interval statistics" in card.text


def test_evaluate_prints_metrics_json_writes_roc_and_rejects_wrong_task(af_model, tmp_path, capsys):
    plot = tmp_path / "roc.png"
    with pytest.warns(UserWarning, match="trained or early-stopped"):
        assert main(["evaluate", "--task", "af", "--model", str(af_model), "--data", str(AF_2017), "--json",
                     "--plot", str(plot), "--n-bootstrap", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 8 and 0.0 <= result["auroc"] <= 1.0 and plot.stat().st_size > 1000
    # Those 8 records trained (or early-stopped) the model: said in the result, and warned about.
    splits = json.loads((af_model / "splits.json").read_text())
    assert result["records_seen_in_training"] == sum(split != "test" for split in splits.values()) > 0
    assert main(["evaluate", "--task", "vt-false-alarm", "--model", str(af_model), "--data", str(AF_2017)]) == 1
    assert "is a QualityFMForAFClassification checkpoint for task 'af', not 'vt-false-alarm'" in capsys.readouterr().err


def test_predict_gives_a_probability_per_record(af_model, capsys):
    assert main(["predict", "--model", str(af_model), "--json", str(AF_2017 / "A00009"), str(AF_2017 / "A00002.hea")]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in results] == ["af", "af"]
    assert all(0.0 <= r["probability"] <= 1.0 and r["prediction"] in ("AF", "not AF") for r in results)


def test_predict_and_evaluate_take_batch_size_and_device(af_model, capsys):
    records = [str(AF_2017 / "A00009"), str(AF_2017 / "A00002")]
    assert main(["predict", "--model", str(af_model), "--json", *records]) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(["predict", "--model", str(af_model), "--json", "--batch-size", "1", "--device", "cpu", *records]) == 0
    one_by_one = json.loads(capsys.readouterr().out)
    assert [r["probability"] for r in one_by_one] == pytest.approx([r["probability"] for r in default], abs=1e-6)
    assert main(["predict", "--model", str(af_model), "--batch-size", "0", *records]) == 1
    assert "--batch-size must be >= 1" in capsys.readouterr().err
    for command in (["predict", "--model", str(af_model), *records],
                    ["evaluate", "--task", "af", "--model", str(af_model), "--data", str(AF_2017)]):
        assert main([*command, "--device", "gpu7"]) == 1
        assert "--device is 'gpu7'; expected cpu or cuda" in capsys.readouterr().err


def test_predict_accepts_a_folder_of_records(af_model, capsys):
    assert main(["predict", "--model", str(af_model), "--json", str(AF_2017)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert sorted(Path(r["record"]).name for r in results) == sorted(p.stem for p in AF_2017.glob("*.hea"))


def test_predict_goes_on_past_a_truncated_record_and_says_so_in_its_exit_status(af_model, tmp_path, capsys):
    # Issue 10 item 10: one truncated .mat among five records gave exit 1 and no prediction for the four good ones.
    import shutil

    from qualityfm_hf.cli.predict import EXIT_PARTIAL

    names = sorted(p.stem for p in AF_2017.glob("*.hea"))[:5]
    for name in names:
        for suffix in (".hea", ".mat"):
            shutil.copy(AF_2017 / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    truncated = tmp_path / f"{names[2]}.mat"
    truncated.write_bytes(truncated.read_bytes()[:100])
    records = [str(tmp_path / name) for name in names]
    assert main(["predict", "--model", str(af_model), "--json", *records]) == EXIT_PARTIAL == 3
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [Path(r["record"]).name for r in results] == names
    assert [("error" in r) for r in results] == [False, False, True, False, False]
    assert "could not be read" in results[2]["error"]
    assert "1 of 5 records could not be predicted" in captured.err and "Traceback" not in captured.err
    assert main(["predict", "--model", str(af_model), *records]) == EXIT_PARTIAL
    assert f"{records[2]}: skipped (could not be read" in capsys.readouterr().out
    assert main(["predict", "--model", str(af_model), records[2]]) == 1  # nothing predicted
    err = capsys.readouterr().err.strip().splitlines()  # transformers' own "Loading weights" bar comes first
    assert "Traceback" not in "\n".join(err) and "no record could be predicted" in err[-1]


def test_evaluate_refuses_weights_that_do_not_match_config_or_are_truncated(af_model, tmp_path, capsys):
    import shutil

    broken = tmp_path / "layers"
    shutil.copytree(af_model, broken)
    config = json.loads((broken / "config.json").read_text())
    config["num_hidden_layers"] += 1  # a layer the weights do not have
    (broken / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", "--task", "af", "--model", str(broken), "--data", str(AF_2017)]) == 1
    err = capsys.readouterr().err
    assert "config.json does not match the saved weights" in err and "missing keys" in err
    truncated = tmp_path / "truncated"
    shutil.copytree(af_model, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main(["predict", "--model", str(truncated), str(AF_2017 / "A00009")]) == 1
    err = capsys.readouterr().err
    assert "the weights file is damaged" in err and str(truncated) in err and "Traceback" not in err


def test_finetune_abp_with_frozen_backbone_reports_mmhg_metrics(backbone, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["finetune", "--task", "abp", "--data", str(BUNDLED_VT), "--model", str(backbone), "--output",
                   str(tmp_path), "--freeze-backbone", "--cv", "0", *FAST])
    assert rc == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    test = metrics["test"]
    assert {"sbp_mae", "dbp_mae", "sbp_mase", "sbp_bhs_grade", "sbp_aami_passed"} <= set(test)
    assert test["ci95"]["sbp_mae"][1] <= test["sbp_mae"] <= test["ci95"]["sbp_mae"][2]
    config = QualityFMConfig.from_pretrained(tmp_path)
    assert config.problem_type == "regression" and 80 < config.label_mean[0] < 200
    # Frozen backbone: the saved encoder equals the backbone it started from.
    from qualityfm_hf.modeling.heads_qualityfm import QualityFMForABPRegression

    start = QualityFMModel.from_pretrained(backbone).state_dict()
    tuned = QualityFMForABPRegression.from_pretrained(tmp_path).state_dict()
    assert all(torch.equal(tuned[f"qualityfm.{k}"], v) for k, v in start.items())


def test_finetune_reports_an_unusable_split_in_one_line(backbone, tmp_path, capsys):
    data = tmp_path / "two"
    data.mkdir()
    for name in ("A00009", "A00002"):
        for suffix in (".hea", ".mat"):
            (data / f"{name}{suffix}").write_bytes((AF_2017 / f"{name}{suffix}").read_bytes())
    (data / "REFERENCE.csv").write_text("A00009,A\nA00002,N\n")
    assert main(["finetune", "--task", "af", "--data", str(data), "--model", str(backbone), "--output",
                 str(tmp_path / "out"), "--cv", "0", *FAST]) == 1
    assert "left ['validation', 'test'] empty" in capsys.readouterr().err


# Two subprocesses importing transformers and torch (15 s of CPU, 30-80 s on 2 busy cores): the Hub round trip,
# run by CI with the slow tests (.ci/run). Its parts stay in the fast suite: the loopback Hub round trip
# (test_hub_server.py, one process), remote code without the package (test_heads.py) and the saved files (above).
@pytest.mark.slow
def test_push_then_fresh_process_downloads_and_loads(af_model, hub_env):
    push = subprocess.run(
        [sys.executable, "-m", "qualityfm_hf.cli.main", "push", "--model", str(af_model), "--repo-id", "org/qfm-af"],
        env=hub_env, capture_output=True, text=True, timeout=120,
    )
    assert push.returncode == 0, push.stderr[-3000:]
    code = """
import json, numpy as np, torch
from huggingface_hub import list_repo_files
from transformers import AutoFeatureExtractor, AutoModelForSequenceClassification
files = sorted(list_repo_files("org/qfm-af"))
model = AutoModelForSequenceClassification.from_pretrained("org/qfm-af", trust_remote_code=True).eval()
extractor = AutoFeatureExtractor.from_pretrained("org/qfm-af", trust_remote_code=True)
# The AF head also reads the window's rhythm statistics, which the downloaded extractor computes.
inputs = extractor({"ECG_II": np.sin(np.arange(3000) / 20.0)}, sampling_rate=300, return_tensors="pt")
logits = model(**inputs).logits
print(json.dumps({"files": files, "class": type(model).__module__ + "." + type(model).__name__,
                  "extractor": type(extractor).__name__, "threshold": model.config.decision_threshold,
                  "shape": list(logits.shape)}))
"""
    result = json.loads(run_hub_python(code, hub_env).stdout.strip().splitlines()[-1])
    assert {"README.md", "config.json", "model.safetensors", "heads_qualityfm.py", "modeling_qualityfm.py",
            "preprocessor_config.json", "feature_extraction_qualityfm.py", "rhythm_qualityfm.py",
            "metrics.json"} <= set(result["files"])
    assert result["class"].startswith("transformers_modules.") and result["class"].endswith("QualityFMForAFClassification")
    assert result["extractor"] == "QualityFMFeatureExtractor" and result["shape"] == [1, 1]
    assert result["threshold"] == QualityFMConfig.from_pretrained(af_model).decision_threshold


def test_progress_bars_show_on_long_loops_and_no_progress_hides_them_all(af_model, capsys, monkeypatch):
    from qualityfm_hf.utils import progress

    monkeypatch.setattr(progress, "_ENABLED", True)
    monkeypatch.delenv(progress.ENV, raising=False)
    records = [str(AF_2017 / "A00009"), str(AF_2017 / "A00002")]
    assert main(["predict", "--model", str(af_model), "--json", *records]) == 0
    assert "predict: " in capsys.readouterr().err  # leave=False clears the bar at the end
    monkeypatch.setattr("transformers.utils.logging.disable_progress_bar", lambda: None)  # keep global state
    monkeypatch.setattr("datasets.disable_progress_bars", lambda: None)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    assert main(["predict", "--model", str(af_model), "--json", "--no-progress", *records]) == 0
    assert "predict:" not in capsys.readouterr().err and not progress.progress_enabled()


def test_only_the_main_process_writes_the_fine_tuned_outputs(backbone, tmp_path, monkeypatch):
    # Issue 11: under torchrun / accelerate launch every rank ran the writes after training. A rank other than 0
    # (TrainingArguments.process_index) must return the metrics and write nothing.
    from transformers import TrainingArguments

    from qualityfm_hf.finetuning import finetune, training_arguments
    from qualityfm_hf.finetuning.finetune_cv import finetune_cv

    monkeypatch.setattr(TrainingArguments, "process_index", property(lambda self: 1))
    fast = dict(max_steps=2, per_device_train_batch_size=4, disable_tqdm=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        held_out = finetune("af", AF_2017, str(backbone), tmp_path / "hold-out",
                            training_arguments(tmp_path / "hold-out" / "checkpoints", **fast), n_bootstrap=10)
        crossed = finetune_cv("af", AF_2017, str(backbone), tmp_path / "cv",
                              training_arguments(tmp_path / "cv" / "checkpoints", **fast), cv=2, n_bootstrap=10,
                              baselines=False, quiet=True)
    assert "test" in held_out and "cross_validation" in crossed
    for folder in ("hold-out", "cv"):
        written = {p.name for p in (tmp_path / folder).iterdir()} if (tmp_path / folder).exists() else set()
        assert not written & {"metrics.json", "model.safetensors", "README.md", "cv_predictions.json"}, written


def test_training_shows_one_bar_per_run_and_keeps_the_log_dicts_for_debug(backbone, tmp_path, capsys, monkeypatch):
    # Issue 20 item 5.6: an AF fine-tune printed a pin_memory warning per evaluation, the Trainer's evaluation bar
    # drawn inside the training bar (cursor-up codes, `[A` in a log file), transformers' per-file bars and every
    # log dict (eval_runtime, eval_samples_per_second, ...) on the terminal.
    from qualityfm_hf.utils import progress

    monkeypatch.setattr(progress, "_ENABLED", True)
    monkeypatch.delenv(progress.ENV, raising=False)
    args = ["finetune", "--task", "af", "--data", str(AF_2017), "--model", str(backbone), "--cv", "0",
            "--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--logging_steps", "1",
            "--n-bootstrap", "20"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "--output", str(tmp_path / "bar")]) == 0
    err = capsys.readouterr().err
    if not torch.cuda.is_available():
        assert not [w for w in caught if "pin_memory" in str(w.message)]
    assert "\x1b[A" not in err and "Loading weights" not in err and "Writing model shards" not in err
    assert "training: 100%" in err and "eval_auroc=" in err and "train_loss=" in err  # the bar holds the latest
    assert "eval_runtime" not in err and "{'" not in err
    # Without a bar: one compact line per log; every log dict in full at --verbosity debug.
    assert main([*args, "--output", str(tmp_path / "lines"), "--disable_tqdm", "true"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[qualityfm] step ")]
    assert lines and all("eval_runtime" not in line and "{'" not in line for line in lines)
    assert any(" eval_auroc " in line for line in lines) and any(" loss " in line for line in lines)
    assert main(["--verbosity", "debug", *args, "--output", str(tmp_path / "debug"), "--disable_tqdm", "true"]) == 0
    assert "'eval_runtime'" in capsys.readouterr().err
