"""Encoders pretrained by this project and shipped inside the package (`qualityfm_hf/weights/<size>/`).

`pretrained_path("base")` is the folder; every `--model` option of the CLI also takes its name, `pretrained-base`.
How the encoder was trained, on what data and how it compares with random initialisation is in its README.md (the
model card) and in benchmarks/PRETRAINING.md.
"""

from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).parent / "weights"
PRETRAINED_SIZES = ("base",)
NAME_PREFIX = "pretrained-"


def pretrained_path(size: str = "base") -> Path:
    """Folder of the shipped pretrained encoder of `size`: `AutoModel.from_pretrained(pretrained_path("base"))`."""
    if size not in PRETRAINED_SIZES:
        raise ValueError(f"no pretrained encoder of size {size!r} ships with qualityfm-hf; choose one of "
                         f"{list(PRETRAINED_SIZES)}.")
    path = PRETRAINED_DIR / size
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the pretrained {size} encoder is missing from {path}; reinstall qualityfm-hf.")
    return path


def resolve_model(model: str) -> str:
    """`pretrained-<size>` -> the shipped folder; any other name (preset, folder, Hub id) unchanged."""
    if isinstance(model, str) and model.startswith(NAME_PREFIX) and not Path(model).exists():
        return str(pretrained_path(model[len(NAME_PREFIX):]))
    return model


__all__ = ["PRETRAINED_SIZES", "pretrained_path", "resolve_model"]
