"""`qualityfm push`: upload a fine-tuned checkpoint (weights, config, feature extractor, card, remote code)."""

from __future__ import annotations

from pathlib import Path

from .errors import QualityFMCLIError

# Trainer states and local bookkeeping stay on disk.
IGNORE_PATTERNS = ["checkpoints/*", "*.pyc", "__pycache__/*"]


def push_command_parser(subparsers):
    parser = subparsers.add_parser("push", help="Upload a saved checkpoint folder to the Hugging Face Hub.")
    parser.add_argument("--model", required=True, help="Checkpoint folder (from `qualityfm finetune`).")
    parser.add_argument("--repo-id", required=True, help="Hub repository, org/name.")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="Branch to push to (default main).")
    parser.add_argument("--commit-message", default="Upload QualityFM checkpoint")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login).")
    parser.set_defaults(func=push_command)
    return parser


def push_folder(model_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                commit_message: str = "Upload QualityFM checkpoint", token: str | None = None) -> str:
    """Create `repo_id` if needed and upload `model_dir`; returns the commit URL."""
    from huggingface_hub import HfApi

    model_dir = Path(model_dir)
    missing = [name for name in ("config.json", "model.safetensors") if not (model_dir / name).is_file()]
    if missing:
        raise QualityFMCLIError(f"{model_dir} is not a saved checkpoint (missing {missing}); run `qualityfm finetune`.")
    if not any(model_dir.glob("modeling_qualityfm.py")):
        raise QualityFMCLIError(
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


def push_command(args) -> int:
    try:
        url = push_folder(args.model, args.repo_id, private=args.private, revision=args.revision,
                          commit_message=args.commit_message, token=args.token)
    except QualityFMCLIError:
        raise
    except Exception as err:  # httpx / huggingface_hub errors: one line, with the reason
        raise QualityFMCLIError(f"upload to {args.repo_id} failed: {type(err).__name__}: {err}") from None
    print(f"pushed {args.model} to {args.repo_id}: {url}")
    return 0
