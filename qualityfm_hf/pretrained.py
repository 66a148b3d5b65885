"""Encoders pretrained by this project and shipped inside the package (`qualityfm_hf/weights/<size>/`).

`pretrained_path("base")` is the folder; every `--model` option of the CLI also takes its name, `pretrained-base`.
How the encoder was trained, on what data and how it compares with random initialisation is in its README.md (the
model card) and in benchmarks/PRETRAINING.md.
"""

from __future__ import annotations

import os
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


HUB_TIMEOUT = 5.0  # seconds the one request that asks the Hub for a repo may take (transformers' retries take ~30 s)
_ON_HUB: set[tuple[str, str]] = set()  # (endpoint, repo id) already found on the Hub: folds ask once per run


def resolve_model(model: str) -> str:
    """`pretrained-<size>` -> the shipped folder; a preset, a model folder or a Hub id (`org/name`) unchanged.

    Anything else raises a one-line `ValueError` at once, instead of reaching transformers, which sends it to the Hub
    as a repo id (retries for ~30 s, then an error about connecting): a path (`./x`, `~/x`, `/a/b`, `runs/vt/final`,
    `runs/x` where `runs/` exists) that is not a folder with config.json, a bare word that is neither a preset nor a
    repo in the local Hub cache, a string that is no valid repo id, and a repo id that is neither in the local Hub
    cache nor on the Hub, or is not cached while the Hub is off (`HF_HUB_OFFLINE=1`) or does not answer within
    `HUB_TIMEOUT` seconds."""
    if not isinstance(model, str):
        return model
    from .modeling.configuration_qualityfm import PRESETS

    if model in PRESETS:  # before folders, as load_model reads it: a folder named `base` does not shadow the preset
        return model
    if model.startswith(NAME_PREFIX):
        return str(pretrained_path(model[len(NAME_PREFIX):]))
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"--model {model}: the folder has no config.json; pass a folder written by "
                             "save_pretrained (a `qualityfm finetune --output`, the encoder/ of a `qualityfm pretrain "
                             "--output`), a preset or pretrained-base.")
        return model
    choices = f"a model folder, a preset {sorted(PRESETS)}, pretrained-base or a Hub repo id (org/name)"
    if path.exists():
        raise ValueError(f"--model {model}: a file, not a folder; pass the folder that holds config.json "
                         f"(or {choices}).")
    if _looks_like_path(model):
        raise ValueError(f"--model {model}: not a folder (no such path); pass {choices}.")
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        raise ValueError(f"--model {model}: not a folder and not a valid Hub repo id (org/name of letters, digits, "
                         f"'-', '_' and '.'); pass {choices}.") from None
    if _in_hub_cache(model):
        return model
    if "/" not in model:  # a bare word: a mistyped folder or preset far more often than a legacy repo id
        raise ValueError(f"--model {model}: not a folder, not a preset {sorted(PRESETS)}, not pretrained-base and "
                         "not a repo in the local Hub cache; pass one of those or a Hub repo id (org/name).")
    _check_on_hub(model)
    return model


def _looks_like_path(model: str) -> bool:
    """A local path rather than `org/name`: `./x`, `~/x`, `/x`, `a/b/c`, `a\\b`, `x/`, or `a/b` where `a` exists."""
    if model.startswith((".", "~", "/", os.sep)) or "\\" in model or model.endswith("/") or model.count("/") > 1:
        return True
    return os.sep in model and Path(model).parent.exists()


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id at all
        return False


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set since (a notebook's `os.environ[...] = "1"`)."""
    from huggingface_hub import constants

    late = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or late.strip().upper() in ("1", "ON", "YES", "TRUE")


def _check_on_hub(repo_id: str) -> None:
    """Ask the Hub once, without retries, for the repo's config.json; raise a one-line `ValueError` unless it is
    there. A repo id that is not in the local cache is otherwise first tried by transformers with retries."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = constants.ENDPOINT
    if (endpoint, repo_id) in _ON_HUB:
        return
    if _hub_offline():
        raise ValueError(f"--model {repo_id}: a Hub repo id, but the Hub is off (HF_HUB_OFFLINE=1) and {repo_id} is not "
                         f"in the local Hub cache ({constants.HF_HUB_CACHE}); download it once while online (`hf "
                         f"download {repo_id}`), or pass a local model folder or pretrained-base.")
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, "config.json"), timeout=HUB_TIMEOUT)
    except GatedRepoError:
        raise ValueError(f"--model {repo_id}: a gated repo on {endpoint}; accept its terms on its page and log in "
                         "(`hf auth login` or HF_TOKEN), or pass a local model folder.") from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ValueError(f"--model {repo_id}: no such repo on {endpoint} (or it is private: log in with `hf auth "
                         "login` or set HF_TOKEN); check the name, or pass a local model folder or pretrained-base.") from None
    except EntryNotFoundError:
        raise ValueError(f"--model {repo_id}: the repo on {endpoint} has no config.json, so it is no model "
                         "checkpoint; pass a QualityFM model repo, a local model folder or pretrained-base.") from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", "?")
        raise ValueError(f"--model {repo_id}: {endpoint} answered HTTP {status}; try again later, or pass a local "
                         "model folder or pretrained-base.") from None
    except (HTTPError, OSError) as err:  # no network, DNS, proxy, timeout
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"--model {repo_id}: a Hub repo id, but the Hub is unreachable ({endpoint}: {reason}; "
                         f"waited at most {HUB_TIMEOUT:g} s) and {repo_id} is not in the local Hub cache; connect and "
                         "retry, or work offline (HF_HUB_OFFLINE=1) with a local model folder or pretrained-base.") from None
    _ON_HUB.add((endpoint, repo_id))


__all__ = ["PRETRAINED_SIZES", "pretrained_path", "resolve_model"]
