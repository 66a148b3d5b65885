"""`qualityfm pretrain`: self-distillation pretraining on a pairs folder (a thin layer over `qualityfm_hf.pretraining`).

Options this command does not know are parsed as `transformers.TrainingArguments` (e.g. `--max_steps 50
--per_device_train_batch_size 8 --bf16`), on top of `pretraining.recipes.DEFAULT_TRAINING_ARGS`; `--output` is their
`output_dir`. `--resume_from_checkpoint OUTPUT/checkpoint-N` continues a run exactly; `--resume_from_checkpoint true`
continues from the newest complete checkpoint in `--output` (one left half-written by a killed run is skipped).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .device import add_device_argument, resolve_device
from .errors import QualityFMCLIError
from .training_args import parse_training_arguments as _parse_training_arguments

EXAMPLES = """examples:
  qualityfm pretrain --pairs pairs/ --preset base --output runs/base --max_steps 600
  qualityfm pretrain --pairs pairs_vt/ pairs_af/ --output runs/base --recipe paper --max_steps 50
  qualityfm pretrain --pairs pairs/ --output runs/base --resume_from_checkpoint true
  torchrun --nproc_per_node 4 -m qualityfm_hf.cli.main pretrain --pairs pairs/ --output runs/base --bf16

--recipe default (the default) is the recipe that learns at our data sizes. The student sees the worse window of
a quality pair (or an augmented copy of the better one; a random 10-30 s crop; one modality dropped 20% of the
time) and is trained on these loss terms, weighted:
  band_power_loss 1    the better window's 64 log band powers, from the pooled embedding (a linear head)
  amplitude_loss  1    the better window's log-power spectrum, through the decoder
  quality_loss    0.3  the pair builder's quality scores of the window the student sees (a linear head)
  koleo_loss      0.1  spreads the pooled embeddings of a batch
and, at weight 0, distillation_loss (DINO, through a projection head), phase_loss and rhythm_loss. AdamW at 3e-4,
10% warm-up, cosine, gradient clipping at 3, batch 32; the exported encoder is the EMA teacher (0.996 -> 1).
Turn a term on or change its weight with --set, e.g. --set distillation_loss_weight=1 (its projection head,
per-prototype centre and teacher-temperature warm-up are set up then), --set rhythm_loss_weight=1.
--recipe paper is the reference code's: per-token distillation on the encoder tokens (weight 1) with 0.1 x the
|FFT| amplitude and phase of the better window; its learning rate is --base-learning-rate x total batch / 256
(1e-4 -> 2e-4 at the paper's batch 512). An explicit --learning_rate is used as is under both.
The log holds each loss term and the collapse monitors: effective rank and pairwise cosine of the pooled
embeddings and, with a distillation term, the teacher entropy and distinct prototypes; it warns when they show
collapse. Writes OUTPUT/checkpoint-*, OUTPUT/model.safetensors (student, teacher and centre), OUTPUT/loss_curves.png
and OUTPUT/encoder (the teacher encoder: AutoModel.from_pretrained after import qualityfm_hf).
"""


def pretrain_command_parser(subparsers):
    parser = subparsers.add_parser(
        "pretrain",
        help="Pretrain on quality pairs (student on the worse window, targets from the better); exports the "
        "EMA teacher encoder.",
        description="Pretrain QualityFM on pairs made by `qualityfm build-pairs`: a student encoder sees the worse "
        "window of each pair and learns the better window's spectrum (what the recipe trains is below); the EMA "
        "teacher is the exported encoder.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pairs", required=True, nargs="+",
                        help="Pairs folder(s) written by `qualityfm build-pairs`; several are trained on together.")
    parser.add_argument("--preset", default="base", choices=("base", "large", "huge"), help="Model size.")
    parser.add_argument("--output", required=True, help="Output folder (TrainingArguments.output_dir).")
    parser.add_argument("--recipe", default="default", choices=("default", "paper"),
                        help="Pretraining recipe (default: spectral and quality targets, distillation off; paper: the "
                        "reference code's token distillation). See below.")
    parser.add_argument("--base-learning-rate", "--base_learning_rate", dest="base_learning_rate", type=float, default=None,
                        help="lr per 256 pairs, scaled by the total batch (paper recipe: 1e-4); ignored when "
                             "--learning_rate is given.")
    parser.add_argument("--spectral-target", "--spectral_target", dest="spectral_target", choices=("magnitude", "power", "log_power"), default=None,
                        help="Reconstruct |FFT| (paper recipe), |FFT|² (paper wording) or the log-power envelope "
                             "(default recipe).")
    parser.add_argument("--modality-dropout", "--modality_dropout", dest="modality_dropout", type=float, default=None,
                        help="Probability of dropping one student modality per pair (beyond the paper; the "
                             "default recipe uses 0.2, the paper recipe 0).")
    parser.add_argument("--set", dest="config_overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="Override one QualityFMConfig field on top of the recipe (repeatable), e.g. "
                        "--set koleo_loss_weight=0 --set num_prototypes=1024. VALUE is read as JSON, else as text.")
    parser.add_argument("--no-augment", "--no_augment", dest="no_augment", action="store_true", help="Turn off the paper's augmentations.")
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    parser.set_defaults(func=pretrain_command, accepts_training_arguments=True)
    return parser


def parse_training_arguments(extra: list[str], output_dir: str, recipe: str = "default", device: str | None = None):
    """`extra` CLI options as `TrainingArguments`, on top of the recipe's defaults (`pretraining.RECIPES`) and of
    what `--device` implies (`device_training_arguments`)."""
    from ..pretraining.recipes import recipe_training_defaults

    return _parse_training_arguments(extra, recipe_training_defaults(output_dir, recipe), "pretrain", device)


def parse_config_overrides(items: list[str]) -> dict:
    """`["koleo_loss_weight=0", "spectral_target=magnitude"]` -> `{"koleo_loss_weight": 0, ...}` (JSON values, else
    text); an unknown field is refused."""
    from ..modeling.configuration_qualityfm import QualityFMConfig

    fields = set(QualityFMConfig.__dataclass_fields__)
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise QualityFMCLIError(f"--set expects FIELD=VALUE (e.g. --set koleo_loss_weight=0); got {item!r}.")
        if key not in fields:
            raise QualityFMCLIError(f"--set {key}: QualityFMConfig has no field {key!r}; see `help(QualityFMConfig)` "
                                    "for the fields.")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


def load_pairs_dataset(directory: Path):
    """The pairs loader of `qualityfm_hf.pairs` (imported lazily: it pulls in pyarrow/datasets)."""
    from ..pairs.dataset import load_pairs

    return load_pairs(directory)


def pairs_description(pairs_dirs: list[Path], datasets: list) -> str:
    """One line per pairs folder for the encoder's card: pairs, records and where they were built from."""
    from ..pairs.format import read_manifest

    parts = []
    for folder, dataset in zip(pairs_dirs, datasets):
        try:
            manifest = read_manifest(folder)
        except (FileNotFoundError, ValueError):  # a dataset that did not come from a pairs folder
            parts.append(f"{len(dataset)} pairs from `{folder}`")
            continue
        counts = manifest.get("counts", {})
        parts.append(f"{len(dataset)} pairs of {counts.get('windows_kept', '?')} 30-s windows from "
                     f"{counts.get('records_with_windows', '?')} records of `{manifest.get('input', folder)}`")
    return "; ".join(parts) + "."


def pretrain_command(args) -> int:
    pairs_dirs = [Path(folder) for folder in args.pairs]
    for pairs_dir in pairs_dirs:
        if not pairs_dir.is_dir():
            raise QualityFMCLIError(f"--pairs {pairs_dir} is not a folder; make one with `qualityfm build-pairs`.")
    training_args = parse_training_arguments(args.extra, args.output, args.recipe, resolve_device(args))
    from ..pretraining.checkpoints import resolve_resume_checkpoint

    try:  # before the pairs are read: a wrong checkpoint costs nothing
        resume = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    except ValueError as err:
        raise QualityFMCLIError(str(err)) from None
    explicit_lr = any(option.split("=")[0] == "--learning_rate" for option in args.extra)

    from huggingface_hub.errors import StrictDataclassError

    from ..modeling.configuration_qualityfm import QualityFMConfig
    from ..pretraining.monitors import MONITORS
    from ..pretraining.recipes import FROM_RECIPE, LOSS_COMPONENTS, get_recipe
    from ..pretraining.trainer import pretrain

    overrides = {key: value for key, value in (("spectral_target", args.spectral_target),
                                                ("modality_dropout", args.modality_dropout)) if value is not None}
    overrides.update(parse_config_overrides(args.config_overrides))
    # The config first: a mistyped --set fails before the pairs are read.
    try:
        config = QualityFMConfig.from_preset(args.preset, **{**get_recipe(args.recipe).config, **overrides})
    except (ValueError, TypeError, StrictDataclassError) as err:  # @strict raises its own error type
        raise QualityFMCLIError(" ".join(str(err).split())) from None
    datasets = []
    for pairs_dir in pairs_dirs:
        try:
            datasets.append(load_pairs_dataset(pairs_dir))
        except (FileNotFoundError, ValueError) as err:  # not a pairs folder, another format, a damaged shard
            raise QualityFMCLIError(str(err)) from None
        if len(datasets[-1]) == 0:
            raise QualityFMCLIError(f"--pairs {pairs_dir} holds no pairs; check its manifest.json.")
    if len(datasets) == 1:
        dataset = datasets[0]
    else:
        from torch.utils.data import ConcatDataset

        dataset = ConcatDataset(datasets)
    if explicit_lr:
        base_learning_rate = None
    else:
        base_learning_rate = FROM_RECIPE if args.base_learning_rate is None else args.base_learning_rate
    trainer = pretrain(
        dataset,
        config,
        training_args,
        recipe=args.recipe,
        base_learning_rate=base_learning_rate,
        augment=not args.no_augment,
        resume_from_checkpoint=resume,
        card={"dataset_description": pairs_description(pairs_dirs, datasets)},
    )
    if not trainer.is_world_process_zero():
        return 0
    output = Path(training_args.output_dir)
    last = next((entry for entry in reversed(trainer.state.log_history) if "loss" in entry), {})
    result = {
        "pairs": len(dataset),
        "steps": trainer.state.global_step,
        "learning_rate": trainer.learning_rate,
        "recipe": args.recipe,
        "last_logged": {k: last[k] for k in ("step", "loss", *LOSS_COMPONENTS, *MONITORS) if k in last},
        "model": str(output),
        "encoder": str(output / "encoder"),
        "loss_curves": str(output / "loss_curves.png"),
    }
    if args.json:
        print(json.dumps(result))  # one line, the last on stdout (the Trainer prints its logs there too)
    else:
        print(f"pretrained {result['steps']} steps on {result['pairs']} pairs (lr {result['learning_rate']:.3g})")
        print(f"encoder: {result['encoder']}  (AutoModel.from_pretrained after `import qualityfm_hf`)")
        print(f"loss curves: {result['loss_curves']}")
    return 0
