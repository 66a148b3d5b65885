"""`qualityfm push`: upload a fine-tuned checkpoint (weights, config, feature extractor, card, remote code)."""

from __future__ import annotations

import json

from .errors import QualityFMCLIError


def push_command_parser(subparsers):
    parser = subparsers.add_parser("push", help="Upload a saved checkpoint folder to the Hugging Face Hub.")
    parser.add_argument("--model", required=True, help="Checkpoint folder (from `qualityfm finetune`).")
    parser.add_argument("--repo-id", required=True, help="Hub repository, org/name.")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="Branch to push to (default main).")
    parser.add_argument("--commit-message", default="Upload QualityFM checkpoint")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login).")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    parser.set_defaults(func=push_command)
    return parser


def push_command(args) -> int:
    from pathlib import Path

    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from ..reports.hub import push_folder

    # Both before any request: a mistyped folder or repo id is not an upload failure.
    if not Path(args.model).is_dir():
        raise QualityFMCLIError(f"--model {args.model} is not a folder; pass the checkpoint folder `qualityfm finetune "
                                "--output` wrote.")
    try:
        validate_repo_id(args.repo_id)
    except HFValidationError:
        raise QualityFMCLIError(f"--repo-id {args.repo_id!r} is not a valid Hub repo id; expected org/name (letters, "
                                "digits, '-', '_' and '.').") from None
    try:
        url = push_folder(args.model, args.repo_id, private=args.private, revision=args.revision,
                          commit_message=args.commit_message, token=args.token)
    except ValueError as err:  # not a checkpoint, no remote code: the message says what to do
        raise QualityFMCLIError(str(err)) from None
    except Exception as err:  # httpx / huggingface_hub errors: one line, with the reason
        raise QualityFMCLIError(f"upload to {args.repo_id} failed: {type(err).__name__}: {err}") from None
    if args.json:
        print(json.dumps({"model": str(args.model), "repo_id": args.repo_id, "revision": args.revision, "url": url}))
    else:
        print(f"pushed {args.model} to {args.repo_id}: {url}")
    return 0
