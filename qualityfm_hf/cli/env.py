"""`qualityfm env`: versions to paste into a bug report."""

from __future__ import annotations

import json
import platform

PACKAGES = ("qualityfm-hf", "torch", "transformers", "accelerate", "datasets", "evaluate", "huggingface-hub",
            "safetensors", "numpy", "scipy", "wfdb", "neurokit2", "sleepecg")


def env_command_parser(subparsers):
    parser = subparsers.add_parser("env", help="Print versions of qualityfm-hf and its key dependencies.")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    parser.set_defaults(func=env_command)
    return parser


def environment() -> dict:
    """Platform, Python, the versions of the key packages (None when not installed), torch threads and CUDA."""
    from importlib.metadata import PackageNotFoundError, version

    info = {"platform": platform.platform(), "python": platform.python_version(), "packages": {}}
    for name in PACKAGES:
        try:
            info["packages"][name] = version(name)
        except PackageNotFoundError:
            info["packages"][name] = None
    try:
        import torch

        info["torch_threads"], info["cuda_available"] = torch.get_num_threads(), torch.cuda.is_available()
    except ImportError:
        pass
    return info


def env_command(args) -> int:
    info = environment()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"platform: {info['platform']}")
    print(f"python: {info['python']}")
    for name, found in info["packages"].items():
        print(f"{name}: {found or 'not installed'}")
    if "torch_threads" in info:
        print(f"torch threads: {info['torch_threads']}; cuda available: {info['cuda_available']}")
    return 0
