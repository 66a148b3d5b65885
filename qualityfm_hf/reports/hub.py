"""Publishing a saved checkpoint folder to the Hugging Face Hub (what `qualityfm push` runs)."""

from __future__ import annotations

from pathlib import Path

# Trainer states and local bookkeeping stay on disk.
IGNORE_PATTERNS = ["checkpoints/*", "*.pyc", "__pycache__/*"]


def push_folder(model_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                commit_message: str = "Upload QualityFM checkpoint", token: str | None = None) -> str:
    """Create `repo_id` if needed and upload `model_dir` (weights, config, feature extractor, card, remote code);
    returns the commit URL.

    Raises:
        `ValueError`: `model_dir` is not a saved checkpoint, or has no remote code for users without the package.
    """
    from huggingface_hub import HfApi

    model_dir = Path(model_dir)
    missing = [name for name in ("config.json", "model.safetensors") if not (model_dir / name).is_file()]
    if missing:
        raise ValueError(f"{model_dir} is not a saved checkpoint (missing {missing}); run `qualityfm finetune`.")
    if not any(model_dir.glob("modeling_qualityfm.py")):
        raise ValueError(
            f"{model_dir} has no remote code (modeling_qualityfm.py); save it with qualityfm_hf imported so users "
            "without the package can load it with trust_remote_code=True."
        )
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    commit = api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, revision=revision,
                               commit_message=commit_message, ignore_patterns=IGNORE_PATTERNS)
    return str(getattr(commit, "commit_url", commit))


__all__ = ["IGNORE_PATTERNS", "push_folder"]
