"""One device rule for every command that runs the model: `--device {cpu,cuda}`, CUDA when torch sees one, else CPU.

    add_device_argument(parser)          # in the command's parser
    device = resolve_device(args)        # "cpu" or "cuda"; `--device cuda` without CUDA is a one-line error
    TrainingArguments(**device_training_arguments(device), ...)   # for the commands that train with the Trainer

Only cpu and cuda: the Trainer takes no device index, so one GPU among several is chosen with CUDA_VISIBLE_DEVICES
by every command alike.
"""

from __future__ import annotations

from .errors import QualityFMCLIError

DEVICES = ("cpu", "cuda")


def add_device_argument(parser) -> None:
    """Add `--device {cpu,cuda}` (default: resolved by `resolve_device`)."""
    # No argparse `choices`: a wrong value is then the usual one-line error of resolve_device, not a usage message.
    parser.add_argument("--device", default=None, metavar="{cpu,cuda}",
                        help="Where the model runs (default: cuda when torch sees a CUDA device, else cpu; pick one "
                        "of several GPUs with CUDA_VISIBLE_DEVICES).")


def resolve_device(args) -> str:
    """`args.device` checked, or the default: "cuda" when torch sees a CUDA device, else "cpu"."""
    import torch

    device = getattr(args, "device", None)
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in DEVICES:
        raise QualityFMCLIError(f"--device is {device!r}; expected cpu or cuda (choose one of several GPUs with "
                                "CUDA_VISIBLE_DEVICES).")
    if device == "cuda" and not torch.cuda.is_available():
        raise QualityFMCLIError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu (or "
                                "leave --device out).")
    return device


def device_training_arguments(device: str) -> dict:
    """TrainingArguments values for `device`: `use_cpu` on CPU (the Trainer would take an accelerator it sees), and
    pinned memory only for CUDA (on CPU torch warns at every data loader, i.e. every evaluation)."""
    return {"use_cpu": True, "dataloader_pin_memory": False} if device == "cpu" else {"dataloader_pin_memory": True}


__all__ = ["DEVICES", "add_device_argument", "device_training_arguments", "resolve_device"]
