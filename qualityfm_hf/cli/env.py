"""`qualityfm env`: versions to paste into a bug report."""

from __future__ import annotations

import platform


def env_command_parser(subparsers):
    parser = subparsers.add_parser("env", help="Print versions of qualityfm-hf and its key dependencies.")
    parser.set_defaults(func=env_command)
    return parser


def env_command(args) -> int:
    from importlib.metadata import PackageNotFoundError, version

    print(f"platform: {platform.platform()}")
    print(f"python: {platform.python_version()}")
    for name in ("qualityfm-hf", "torch", "transformers", "accelerate", "datasets", "evaluate",
                 "huggingface-hub", "safetensors", "numpy", "scipy", "wfdb", "neurokit2"):
        try:
            print(f"{name}: {version(name)}")
        except PackageNotFoundError:
            print(f"{name}: not installed")
    try:
        import torch

        print(f"torch threads: {torch.get_num_threads()}; cuda available: {torch.cuda.is_available()}")
    except ImportError:
        pass
    return 0
