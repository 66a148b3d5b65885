"""Resuming a pretraining run: which checkpoint `--resume_from_checkpoint` means, and whether a folder is one."""

from __future__ import annotations

from pathlib import Path

from transformers.utils import logging

logger = logging.get_logger(__name__)

CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")  # written by every save (not save_only_model)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why `folder` is not a checkpoint a run can resume from (None when it is).

    The Trainer writes the weights, then the optimizer and scheduler, then `trainer_state.json`; a run killed while
    saving leaves a folder with some of them missing or empty.
    """
    import json

    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} does not exist"
    problems = []
    for name in CHECKPOINT_FILES:
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size == 0:
            problems.append(f"{name} is empty")
    weights = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        problems.append("it holds no model weights")
    elif all(path.stat().st_size == 0 for path in weights):
        problems.append(f"{weights[0].name} is empty")
    if not problems:
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            problems.append("trainer_state.json is not valid JSON")
    return f"{folder} is incomplete ({', '.join(problems)}; the run was probably stopped while saving)" if problems else None


def _checkpoints(output_dir: Path) -> list[Path]:
    found = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))


def resolve_resume_checkpoint(value, output_dir: str | Path) -> str | None:
    """The checkpoint folder `--resume_from_checkpoint VALUE` means, checked before any training starts.

    `None`/`False`/"false" -> None (start afresh). `True`/"true"/"last" -> the newest *complete* checkpoint in
    `output_dir`; incomplete ones (a run killed while saving) are skipped with a warning naming them. A folder must
    be a complete checkpoint.

    Raises:
        `ValueError`: a one-line message naming the folder, what is wrong and which checkpoints can be resumed.
    """
    if value is None or value is False or str(value).lower() in ("", "false", "no", "none"):
        return None
    output_dir = Path(output_dir)
    candidates = _checkpoints(output_dir)
    complete = [p for p in candidates if checkpoint_problem(p) is None]
    choices = ", ".join(str(p) for p in complete) or "none"
    if value is True or str(value).lower() in ("true", "yes", "last"):
        if not complete:
            raise ValueError(
                f"--resume_from_checkpoint {value}: {output_dir} holds no complete checkpoint"
                + (f" ({len(candidates)} incomplete)" if candidates else "")
                + "; start the run without --resume_from_checkpoint."
            )
        for skipped in candidates[candidates.index(complete[-1]) + 1:]:
            logger.warning(f"skipping {checkpoint_problem(skipped)}; resuming from {complete[-1]}.")
        return str(complete[-1])
    problem = checkpoint_problem(value)
    if problem is not None:
        raise ValueError(
            f"--resume_from_checkpoint: {problem}. Complete checkpoints in {output_dir}: {choices}; pass one of "
            "them, or `--resume_from_checkpoint true` for the newest."
        )
    return str(value)


__all__ = ["CHECKPOINT_FILES", "WEIGHT_FILES", "checkpoint_problem", "resolve_resume_checkpoint"]
