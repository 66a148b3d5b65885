"""The encoder shipped in the package: `pretrained_path`, `pretrained-base` everywhere `--model` is taken."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel

import qualityfm_hf
from qualityfm_hf import QualityFMConfig, QualityFMModel
from qualityfm_hf.cli.main import main
from qualityfm_hf.pretrained import resolve_model
from qualityfm_hf.quickstart import BUNDLED_RECORDS


def test_pretrained_base_loads_with_automodel_and_is_the_base_encoder():
    path = qualityfm_hf.pretrained_path("base")
    encoder = AutoModel.from_pretrained(path)
    assert type(encoder) is QualityFMModel
    assert sum(p.numel() for p in encoder.parameters()) == 4_255_005
    assert (path / "preprocessor_config.json").is_file() and (path / "model.safetensors").is_file()
    # Trained weights, not a fresh initialisation.
    torch.manual_seed(0)
    fresh = QualityFMModel(QualityFMConfig.from_preset("base"))
    trained, initial = dict(encoder.named_parameters()), dict(fresh.named_parameters())
    for name in ("encoder.temporal_conv.convs.0.weight", "encoder.temporal_conv.norms.2.weight"):
        assert not torch.allclose(trained[name], initial[name]), name


def test_shipped_remote_code_is_the_package_code():
    # The shipped encoder's folder carries the modeling files for trust_remote_code users; a fix made in modeling/
    # and not copied there would reach in-process users only.
    from pathlib import Path

    from qualityfm_hf.modeling import modeling_qualityfm

    folder = Path(qualityfm_hf.pretrained_path("base"))
    package = Path(qualityfm_hf.__file__).resolve().parent
    modeling = Path(modeling_qualityfm.__file__).resolve().parent
    shipped = sorted(folder.glob("*.py"))
    assert {p.name for p in shipped} >= {"modeling_qualityfm.py", "configuration_qualityfm.py",
                                         "attention_qualityfm.py", "feature_extraction_qualityfm.py"}
    for path in shipped:
        source = modeling / path.name
        source = source if source.is_file() else package / path.name
        assert path.read_text() == source.read_text(), f"{path} differs from {source}: copy it over"


def test_pretrained_base_model_card_names_data_licence_recipe_and_results():
    card = (qualityfm_hf.pretrained_path("base") / "README.md").read_text()
    for needle in ("ODC-By", "PhysioNet", "Clifford", "default recipe", "random initialisation", "AUROC",
                   "not a medical device"):
        assert needle in card, needle
    config = json.loads((qualityfm_hf.pretrained_path("base") / "config.json").read_text())
    assert config["architectures"] == ["QualityFMModel"] and config["student_crop_min_seconds"] == 10


def test_model_names_resolve_and_unknown_sizes_say_what_exists(tmp_path):
    assert resolve_model("pretrained-base") == str(qualityfm_hf.pretrained_path("base"))
    assert resolve_model("base") == "base" and resolve_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ValueError, match=r"choose one of \['base'\]"):
        resolve_model("pretrained-huge")


def test_embed_cli_accepts_pretrained_base(tmp_path):
    out = tmp_path / "vt.parquet"
    code = main(["embed", "--model", "pretrained-base", "--task", "vt-false-alarm", "--data", str(BUNDLED_RECORDS),
                 "--output", str(out), "--no-progress"])
    assert code == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 12 and set(frame["label"]) == {0.0, 1.0}
    embeddings = np.stack(frame["embedding"].to_numpy())
    assert embeddings.shape == (12, 512) and np.isfinite(embeddings).all()
    assert np.linalg.matrix_rank(embeddings) > 6  # twelve different alarms, not one collapsed vector


@pytest.mark.parametrize("command", ["finetune", "evaluate"])
@pytest.mark.parametrize("name", ["./no_such_run", "runs/vt/final", "nosuchmodel"])
def test_a_model_that_is_neither_a_folder_preset_nor_repo_id_fails_at_once(tmp_path, capsys, monkeypatch, command,
                                                                          name):
    import time

    from qualityfm_hf.cli.main import main

    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    args = ["--task", "af", "--model", name, "--data", str(tmp_path)]
    assert main([command, *args, *(["--output", str(tmp_path / "o")] if command == "finetune" else [])]) == 1
    err = capsys.readouterr().err
    assert f"--model {name}: " in err and ("does not exist" in err or "not a folder" in err)
    assert time.perf_counter() - started < 5  # no Hub retries
