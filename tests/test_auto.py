"""Auto classes, remote code, offline Hub cache, and the real-record round trip of issue 2's done-when."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, REPO_ROOT, tiny_config
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForPreTraining

from qualityfm_hf import QualityFMConfig, QualityFMFeatureExtractor, QualityFMForPretraining, QualityFMModel

FLAT_FILES = {"configuration_qualityfm.py", "modeling_qualityfm.py", "attention_qualityfm.py"}


# What "a machine without the package" hides: exactly these top-level modules, wherever they would come from.
HIDDEN_MODULES = ("qualityfm_hf", "qualityfm_cli")


def run_without_package(code: str, cwd, env_extra: dict | None = None, timeout: int = 180) -> dict:
    """Run `code` in a fresh interpreter that cannot import qualityfm_hf; it prints one JSON line.

    Only the package is hidden, never by matching "qualityfm" in a path: a clone in a folder named qualityfm-hf
    keeps its .venv (torch, transformers) there too. -I ignores PYTHONPATH, the user site and the script's
    directory; the repository root is dropped from sys.path by exact path comparison (a legacy editable install
    puts it there); a meta-path finder placed first refuses qualityfm_hf and qualityfm_cli before the editable
    install's finder or a regular install in site-packages is consulted. transformers' check_imports then reports a
    remote-code file that imports qualityfm_hf as a missing package, so such a checkpoint fails here.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON"))}
    env["HF_HOME"] = str(Path(cwd) / "hf_home")  # remote-code modules are copied under HF_HOME/modules
    env.update(env_extra or {})
    prelude = textwrap.dedent(
        f"""
        import os, sys
        class _HidePackage:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {HIDDEN_MODULES!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
                return None
        sys.meta_path.insert(0, _HidePackage())
        _root = os.path.realpath({str(REPO_ROOT)!r})
        sys.path[:] = [p for p in sys.path if p in ("", ".") or os.path.realpath(p) != _root]
        try:
            import qualityfm_hf
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("qualityfm_hf must not be importable here")
        """
    )
    epilogue = textwrap.dedent(
        f"""
        _loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {HIDDEN_MODULES!r})
        assert not _loaded, f"the package was loaded after all: {{_loaded}}"
        """
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", prelude + textwrap.dedent(code) + epilogue],
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


@pytest.fixture(scope="module")
def no_package(tmp_path_factory):
    """One interpreter without the package (it takes seconds to start): a checkpoint without trust_remote_code,
    the same with it, and a copy whose remote code imports qualityfm_hf (the control: it must not load)."""
    tmp_path = tmp_path_factory.mktemp("no package")  # a space, as in a clone's path
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    QualityFMFeatureExtractor().save_pretrained(tmp_path / "ckpt")
    x = torch.rand(2, 2, 3000) * 2 - 1
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.no_grad():
        expected = model(x).last_hidden_state.numpy()
    shutil.copytree(tmp_path / "ckpt", tmp_path / "ckpt_needs_package")
    modeling = tmp_path / "ckpt_needs_package" / "modeling_qualityfm.py"
    modeling.write_text("import qualityfm_hf  # noqa: F401\n" + modeling.read_text())
    out = run_without_package(
        f"""
        import json, numpy as np, torch
        from transformers import AutoModel, AutoFeatureExtractor
        try:
            AutoModel.from_pretrained({str(tmp_path / 'ckpt')!r})
            error = None
        except ValueError as err:
            error = str(err)
        model = AutoModel.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True).eval()
        fe = AutoFeatureExtractor.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True)
        with torch.no_grad():
            y = model(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))).last_hidden_state.numpy()
        np.save({str(tmp_path / 'y.npy')!r}, y)
        try:
            AutoModel.from_pretrained({str(tmp_path / 'ckpt_needs_package')!r}, trust_remote_code=True)
            control = None
        except ImportError as err:
            control = str(err)
        print(json.dumps({{"error": error, "model": type(model).__module__ + "." + type(model).__name__,
                           "fe": type(fe).__name__, "control": control}}))
        """,
        cwd=tmp_path,
    )
    return {"out": out, "expected": expected, "y": np.load(tmp_path / "y.npy")}


def test_remote_code_loads_without_the_package(no_package):
    out = no_package["out"]
    assert out["model"].startswith("transformers_modules.") and out["model"].endswith(".QualityFMModel")
    assert out["fe"] == "QualityFMFeatureExtractor"
    np.testing.assert_allclose(no_package["y"], no_package["expected"], atol=1e-6)
    # The process really lacked the package: remote code that imports it did not load there.
    assert out["control"] and "qualityfm_hf" in out["control"], out["control"]


def test_without_package_and_without_trust_remote_code_the_error_says_so(no_package):
    assert no_package["out"]["error"] and "trust_remote_code" in no_package["out"]["error"]


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


def seeded_tiny_checkpoint(tmp_path):
    """A tiny encoder with its feature extractor, saved and seeded into `tmp_path/hf_home` as org/qualityfm-base."""
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    QualityFMFeatureExtractor().save_pretrained(tmp_path / "ckpt")
    seed_hub_cache(tmp_path / "hf_home", "org/qualityfm-base", tmp_path / "ckpt")
    return model


def test_from_pretrained_by_repo_id_reads_a_seeded_cache_in_process(tmp_path):
    """The fast half of the next test: a repo id resolves from the Hub cache alone, to the installed classes."""
    model = seeded_tiny_checkpoint(tmp_path)
    cache = dict(cache_dir=tmp_path / "hf_home" / "hub", local_files_only=True)
    loaded = AutoModel.from_pretrained("org/qualityfm-base", **cache).eval()
    assert type(loaded) is QualityFMModel
    assert type(AutoFeatureExtractor.from_pretrained("org/qualityfm-base", **cache)) is QualityFMFeatureExtractor
    x = torch.rand(1, 2, 3000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).last_hidden_state, model(x).last_hidden_state, rtol=0, atol=0)


# Two fresh interpreters (one without the package, one a pip user's) offline on a seeded HF_HOME.
@pytest.mark.slow
def test_from_pretrained_by_repo_id_offline_from_seeded_cache(tmp_path):
    model = seeded_tiny_checkpoint(tmp_path)
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
