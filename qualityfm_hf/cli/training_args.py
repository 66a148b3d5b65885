"""Options a command does not define are `transformers.TrainingArguments` (`--max_steps 50 --bf16 ...`).

`main` collects them with `parse_known_args` into `args.extra`, for the commands that set
`accepts_training_arguments=True`; the others reject them as usual.
"""

from __future__ import annotations

from .errors import QualityFMCLIError


def parse_training_arguments(extra: list[str], defaults: dict, command: str, device: str | None = None):
    """`extra` CLI options parsed as `TrainingArguments` on top of `defaults` (which include `output_dir`) and of
    what `--device` implies (`device.device_training_arguments`)."""
    from transformers import HfArgumentParser, TrainingArguments

    from .device import device_training_arguments

    parser = HfArgumentParser(TrainingArguments, allow_abbrev=False)  # `--num_train_epoch` is not an option
    parser.set_defaults(**{**defaults, **(device_training_arguments(device) if device is not None else {})})
    try:
        args, rest = parser.parse_args_into_dataclasses(args=extra, return_remaining_strings=True)
    except (SystemExit, ValueError) as err:
        raise QualityFMCLIError(f"bad TrainingArguments option in {extra}: {err}") from None
    if rest:
        raise QualityFMCLIError(
            f"unrecognised options {rest}; see `qualityfm {command} --help` and transformers.TrainingArguments."
        )
    return args
