"""Shared test helpers. Tests never touch the network: Hub tests use a loopback server or a seeded cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
# ../shared/data beside the checkout (present on developer machines and CI, not in a bare clone).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_slow_tests() -> bool:
    """CI runs the README's test command with CI=true: the same command then runs the slow tests too."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    """Without `-m`, deselect the tests marked gpu, and those marked slow unless `run_slow_tests()`: the README's
    test command stays within minutes on a laptop while CI, running that same command, runs the whole suite."""
    if config.option.markexpr:
        return  # the caller chose with -m
    slow = run_slow_tests()
    dropped = [item for item in items
               if item.get_closest_marker("gpu") or (item.get_closest_marker("slow") and not slow)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def copy_records(names, source: Path, target: Path) -> Path:
    """Copy WFDB records (`.hea` + `.mat`) named `names` from `source` into `target` (created if needed)."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".hea", ".mat"):
            shutil.copy(source / f"{name}{suffix}", target / f"{name}{suffix}")
    return target


def tiny_config(**overrides):
    """A config small enough for seconds-long tests on 2 cores (hidden 16, 2 layers, 4 heads)."""
    from qualityfm_hf import QualityFMConfig

    values = dict(
        hidden_size=16, num_attention_heads=4, num_hidden_layers=2, intermediate_size=32, conv_dim=(4, 8, 16),
        window_size=4,
    )
    values.update(overrides)
    return QualityFMConfig(**values)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A tiny random encoder saved to a folder, for fine-tuning tests (seed 0)."""
    import torch

    from qualityfm_hf import QualityFMModel

    path = tmp_path_factory.mktemp("backbone")
    torch.manual_seed(0)
    QualityFMModel(tiny_config()).save_pretrained(path)
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA

from hub_fixtures import fake_hub, fake_hub_endpoint, hub_env  # noqa: E402,F401  (loopback Hub fixtures)
