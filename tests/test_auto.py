"""Auto classes, remote code, offline Hub cache, and the real-record round trip of issue 2's done-when."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import FIXTURES, tiny_config
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForPreTraining

from qualityfm_hf import QualityFMConfig, QualityFMFeatureExtractor, QualityFMForPretraining, QualityFMModel

FLAT_FILES = {"configuration_qualityfm.py", "modeling_qualityfm.py", "attention_qualityfm.py"}


def run_without_package(code: str, cwd, env_extra: dict | None = None, timeout: int = 180) -> dict:
    """Run `code` in a fresh interpreter that cannot import qualityfm_hf; it prints one JSON line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON"))}
    env.update(env_extra or {})
    # -I: isolated mode ignores PYTHONPATH, the user site and the script's directory; the editable install's
    # finder is hidden by removing its .pth-registered hook before anything imports.
    prelude = textwrap.dedent(
        """
        import sys, importlib.util
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                            and "qualityfm" not in repr(f).lower()]
        sys.path[:] = [p for p in sys.path if "qualityfm" not in p.lower() and p not in ("", ".")]
        assert importlib.util.find_spec("qualityfm_hf") is None, "qualityfm_hf must not be importable here"
        """
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", prelude + textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    return json.loads(last[last.index("{"):])  # transformers may print a y/N prompt before it


def test_auto_classes_dispatch_by_architectures(tmp_path):
    torch.manual_seed(0)
    QualityFMModel(tiny_config()).save_pretrained(tmp_path / "backbone")
    QualityFMForPretraining(QualityFMConfig.from_preset("base")).save_pretrained(tmp_path / "pretraining")
    assert type(AutoConfig.from_pretrained(tmp_path / "backbone")) is QualityFMConfig
    assert type(AutoModel.from_pretrained(tmp_path / "backbone")) is QualityFMModel
    assert type(AutoModel.from_pretrained(tmp_path / "pretraining")) is QualityFMForPretraining
    assert type(AutoModelForPreTraining.from_pretrained(tmp_path / "pretraining")) is QualityFMForPretraining


def test_checkpoint_holds_safetensors_auto_map_and_flat_remote_code(tmp_path):
    QualityFMModel(tiny_config()).save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    assert FLAT_FILES <= files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_qualityfm.QualityFMModel"
    assert config["auto_map"]["AutoConfig"] == "configuration_qualityfm.QualityFMConfig"
    assert config["architectures"] == ["QualityFMModel"]


def test_remote_code_loads_without_the_package(tmp_path):
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    QualityFMFeatureExtractor().save_pretrained(tmp_path / "ckpt")
    x = torch.rand(2, 2, 3000) * 2 - 1
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.no_grad():
        expected = model(x).last_hidden_state.numpy()
    out = run_without_package(
        f"""
        import json, numpy as np, torch
        from transformers import AutoModel, AutoFeatureExtractor
        model = AutoModel.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True).eval()
        fe = AutoFeatureExtractor.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True)
        with torch.no_grad():
            y = model(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))).last_hidden_state.numpy()
        np.save({str(tmp_path / 'y.npy')!r}, y)
        print(json.dumps({{"model": type(model).__module__ + "." + type(model).__name__,
                           "fe": type(fe).__name__}}))
        """,
        cwd=tmp_path,
        env_extra={"HF_HOME": str(tmp_path / "hf_home")},
    )
    assert out["model"].startswith("transformers_modules.") and out["model"].endswith(".QualityFMModel")
    assert out["fe"] == "QualityFMFeatureExtractor"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-6)


def test_without_package_and_without_trust_remote_code_the_error_says_so(tmp_path):
    QualityFMModel(tiny_config()).save_pretrained(tmp_path / "ckpt")
    out = run_without_package(
        f"""
        import json
        from transformers import AutoModel
        try:
            AutoModel.from_pretrained({str(tmp_path / 'ckpt')!r})
            print(json.dumps({{"error": None}}))
        except ValueError as err:
            print(json.dumps({{"error": str(err)}}))
        """,
        cwd=tmp_path,
        env_extra={"HF_HOME": str(tmp_path / "hf_home")},
    )
    assert out["error"] and "trust_remote_code" in out["error"]


def seed_hub_cache(hf_home, repo_id: str, folder) -> None:
    """Lay out `folder` as the cached snapshot of `repo_id`, the way huggingface_hub stores downloads."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())


def test_from_pretrained_by_repo_id_offline_from_seeded_cache(tmp_path):
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    QualityFMFeatureExtractor().save_pretrained(tmp_path / "ckpt")
    seed_hub_cache(tmp_path / "hf_home", "org/qualityfm-base", tmp_path / "ckpt")
    code = """
        import json, torch
        {import_line}
        from transformers import AutoModel, AutoFeatureExtractor
        model = AutoModel.from_pretrained("org/qualityfm-base"{flag}).eval()
        fe = AutoFeatureExtractor.from_pretrained("org/qualityfm-base"{flag})
        torch.manual_seed(1)
        with torch.no_grad():
            y = model(torch.rand(1, 2, 3000)).last_hidden_state
        print(json.dumps({{"cls": type(model).__module__, "sum": float(y.sum()), "fe": type(fe).__name__}}))
        """
    env = {"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    remote = run_without_package(code.format(import_line="", flag=", trust_remote_code=True"), tmp_path, env)
    torch.manual_seed(1)
    with torch.no_grad():
        expected = float(model(torch.rand(1, 2, 3000)).last_hidden_state.sum())
    assert remote["cls"].startswith("transformers_modules.org.qualityfm")
    assert remote["sum"] == pytest.approx(expected, abs=1e-4)
    # A pip user: the package is imported, no flag needed, the installed class is used.
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code.format(import_line="import qualityfm_hf", flag=""))],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    local = json.loads(result.stdout.strip().splitlines()[-1])
    assert local["cls"] == "qualityfm_hf.modeling.modeling_qualityfm" and local["fe"] == "QualityFMFeatureExtractor"
    assert local["sum"] == pytest.approx(expected, abs=1e-4)


def test_real_record_v100s_windows_encode_identically_after_save_and_auto_load(tmp_path):
    """Issue 2 done-when: v100s (II + PLETH, 250 Hz, 300 s) -> (n, 2, 9000) -> AutoModel -> (n, 18, 512)."""
    import wfdb

    record = wfdb.rdrecord(str(FIXTURES / "v100s"))
    names = list(record.sig_name)
    signals = {"PPG": record.p_signal[:, names.index("PLETH")], "ECG_II": record.p_signal[:, names.index("II")]}
    features = QualityFMFeatureExtractor()(signals, sampling_rate=record.fs, return_tensors="pt")
    n = features["input_values"].shape[0]
    assert features["input_values"].shape == (n, 2, 9000) and 1 <= n <= 10

    torch.manual_seed(0)
    model = QualityFMModel(QualityFMConfig.from_preset("base")).eval()
    with torch.no_grad():
        before = model(**features).last_hidden_state
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        after = loaded(**features).last_hidden_state
    assert after.shape == (n, 18, 512)
    assert torch.equal(before, after)


def test_feature_extractor_registered_with_auto_feature_extractor(tmp_path):
    QualityFMModel(tiny_config()).save_pretrained(tmp_path)
    QualityFMFeatureExtractor(segment_seconds=10.0).save_pretrained(tmp_path)
    fe = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(fe) is QualityFMFeatureExtractor and fe.segment_seconds == 10.0
