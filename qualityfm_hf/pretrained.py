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
    """`pretrained-<size>` -> the shipped folder; a preset, an existing folder or a Hub id (`org/name`) unchanged.

    A path that does not exist (`./x`, `/a/b`, `runs/vt/final`) and a bare word that is neither a preset nor a repo in
    the local Hub cache raise at once, instead of being sent to the Hub as a repo id (five retries, then an error
    about connecting or about the repo id's form)."""
    if not isinstance(model, str) or Path(model).expanduser().exists():
        return model
    if model.startswith(NAME_PREFIX):
        return str(pretrained_path(model[len(NAME_PREFIX):]))
    from .modeling.configuration_qualityfm import PRESETS

    if model in PRESETS:
        return model
    looks_like_path = model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1
    if looks_like_path:
        raise ValueError(f"--model {model}: the folder does not exist; pass an existing model folder, a preset "
                         f"{sorted(PRESETS)}, pretrained-base or a Hub repo id (org/name).")
    if "/" not in model and not _in_hub_cache(model):
        raise ValueError(f"--model {model}: not a folder, not a preset {sorted(PRESETS)}, not pretrained-base and "
                         "not a repo in the local Hub cache; pass one of those or a Hub repo id (org/name).")
    return model


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id at all
        return False


__all__ = ["PRETRAINED_SIZES", "pretrained_path", "resolve_model"]
