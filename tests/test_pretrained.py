"""The encoder shipped in the package: `pretrained_path`, `pretrained-base` everywhere `--model` is taken."""

import json
import re

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
    (tmp_path / "config.json").write_text("{}")
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


# Issue 20 item 5.1: `--model` strings that are no model fail at once, in one line, without ~30 s of Hub retries.
MODEL_COMMANDS = {
    "finetune": ["finetune", "--task", "af", "--data", "DATA", "--output", "OUT"],
    "evaluate": ["evaluate", "--task", "af", "--data", "DATA"],
    "embed": ["embed", "--task", "af", "--data", "DATA", "--output", "OUT/e.parquet"],
    "probe": ["probe", "--task", "af", "--data", "DATA"],
    "predict": ["predict", "DATA"],
}


def run_model_command(command, model, tmp_path):
    from qualityfm_hf.cli.main import main

    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "A00002.hea").write_text("A00002 1 300 9000\n")  # a record file, so data checks pass the model checks
    argv = [arg.replace("DATA", str(data)).replace("OUT", str(tmp_path / "out")) for arg in MODEL_COMMANDS[command]]
    return main([*argv, "--model", model])


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 as a user sets it, with an empty Hub cache. huggingface_hub reads the variable when it is
    first imported (into `constants.HF_HUB_OFFLINE`), so the constant is set too."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    return tmp_path / "hub_cache"


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_an_uncached_repo_id_offline_fails_at_once_in_every_model_command(offline_hub, tmp_path, capsys, command):
    import time

    started = time.perf_counter()
    assert run_model_command(command, "org/qualityfm-af", tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"qualityfm {command}: error: --model org/qualityfm-af: ")
    assert "HF_HUB_OFFLINE=1" in err and "not in the local Hub cache" in err and "hf download" in err
    assert time.perf_counter() - started < 5


def test_a_repo_id_in_the_local_cache_resolves_offline(offline_hub):
    # The cache layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/config.json}.
    repo = offline_hub / "models--org--cached"
    (repo / "snapshots" / "0").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0")
    (repo / "snapshots" / "0" / "config.json").write_text("{}")
    assert resolve_model("org/cached") == "org/cached"
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE=1"):
        resolve_model("org/uncached")


@pytest.fixture
def hub_at(monkeypatch):
    """Point huggingface_hub at `url` in this process: the URL template was built from the endpoint at import."""
    from huggingface_hub import constants

    def point(url):
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    return point


def test_an_unreachable_hub_is_said_at_once(hub_at, tmp_path, monkeypatch):
    import socket
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    with socket.socket() as sock:  # a port nothing listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hub_at(f"http://127.0.0.1:{port}")
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"--model org/qualityfm-af: a Hub repo id, but the Hub is unreachable .*not in "
                                         r"the local Hub cache.*HF_HUB_OFFLINE=1"):
        resolve_model("org/qualityfm-af")
    assert time.perf_counter() - started < 5


def test_a_repo_the_hub_does_not_have_is_said_at_once(hub_at, fake_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    hub_at(fake_hub.url)
    with pytest.raises(ValueError, match=r"--model org/missing: no such repo on http://127\.0\.0\.1"):
        resolve_model("org/missing")


def test_paths_files_and_bad_ids_are_named_for_what_they_are(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.safetensors").write_bytes(b"")
    cases = {
        "runs/vt": "not a folder (no such path)",  # `runs/` exists: a path, not the repo `runs/vt`
        "~/no/such/run": "not a folder (no such path)",
        "empty": "the folder has no config.json",
        "weights.safetensors": "a file, not a folder",
        "bad id!": "not a folder and not a valid Hub repo id",
        "org/na..me": "not a folder and not a valid Hub repo id",
    }
    for model, expected in cases.items():
        with pytest.raises(ValueError, match=re.escape(f"--model {model}: {expected}")):
            resolve_model(model)
