"""Which process writes, and the TrainingArguments a multi-process CPU launch needs.

Under `torchrun` / `accelerate launch` every rank runs the same code; only rank 0 writes outputs and prints results.
On a machine without an accelerator, transformers starts the gloo process group but, unless `use_cpu=True`, reports
the run as not distributed: every rank then has `process_index` 0, trains on all the data and writes the same files
at the same time. `cpu_launch_defaults` sets `use_cpu` for exactly that case (an explicit `--use_cpu` still wins).
"""

from __future__ import annotations

import os


def launched_processes() -> int:
    """Processes in this launch: `WORLD_SIZE` as torchrun and accelerate set it, 1 otherwise."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def cpu_launch_defaults() -> dict:
    """`{"use_cpu": True}` for a multi-process launch on a machine without an accelerator, else `{}`."""
    if launched_processes() < 2:
        return {}
    import torch

    return {} if torch.accelerator.is_available() else {"use_cpu": True}


def is_main_process(training_args) -> bool:
    """True on the process that writes outputs: rank 0 of a distributed run, or the only process."""
    return getattr(training_args, "process_index", 0) == 0
