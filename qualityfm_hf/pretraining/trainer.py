"""Self-distillation pretraining with the transformers Trainer (paper notes §2–§4.2).

`pretrain(pairs, config, args)` trains a `QualityFMForSelfDistillation` on quality-divergent pairs, saves it (student,
teacher and centre, so `--resume_from_checkpoint` continues exactly), plots the loss components and the collapse
monitors, and exports the teacher encoder to `<output_dir>/encoder`, the checkpoint fine-tuning starts from.

The recipes are in `recipes.py`, the batches in `collator.py`, the per-step schedules in `callbacks.py`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, enable_full_determinism, set_seed
from transformers.utils import logging

from ..modeling.configuration_qualityfm import QualityFMConfig
from ..modeling.distillation_qualityfm import QualityFMForSelfDistillation
from ..utils.trainer_logs import adapt as adapt_trainer_logs
from .callbacks import (
    CollatorEpochCallback,
    TeacherEMACallback,
    TeacherTemperatureCallback,
    WeightDecayScheduleCallback,
)
from .collator import PairCollator, check_pair_item
from .monitors import collapse_monitors, collapse_warnings
from .plots import plot_loss_curves
from .recipes import (
    DEFAULT_RECIPE,
    FROM_RECIPE,
    LOSS_COMPONENTS,
    WEIGHT_DECAY_END,
    WEIGHT_DECAY_START,
    default_training_arguments,
    get_recipe,
    loss_weights,
    scaled_learning_rate,
)

logger = logging.get_logger(__name__)


class QualityFMDistillationTrainer(Trainer):
    """Trainer for `QualityFMForSelfDistillation`: paper optimiser, EMA teacher, per-component loss logging.

    Args:
        base_learning_rate (`float`, *optional*): if given, lr = base × total batch / 256 (`scaled_learning_rate`)
            and `args.learning_rate` is ignored; if None, `args.learning_rate` is used as is.
        weight_decay_start / weight_decay_end (`float`): the cosine weight-decay schedule (0.04 -> 0.4).
        decoupled_weight_decay (`bool`, defaults to False): AdamW instead of the reference's Adam with coupled L2.

    Besides the loss and its components, each training log holds the means of the collapse monitors
    (`monitors.MONITORS`) over the logged steps, and a warning goes to the log when they show collapse.
    """

    # The model returns a per-batch mean: the Trainer must divide it by the gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        base_learning_rate: float | None = None,
        weight_decay_start: float = WEIGHT_DECAY_START,
        weight_decay_end: float = WEIGHT_DECAY_END,
        decoupled_weight_decay: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.base_learning_rate = base_learning_rate
        self.weight_decay_start = weight_decay_start
        self.decoupled_weight_decay = decoupled_weight_decay
        self._component_sums: torch.Tensor | None = None
        self._component_count = 0
        self._component_names: tuple[str, ...] = ()
        present = {type(callback) for callback in self.callback_handler.callbacks}
        if TeacherEMACallback not in present:
            self.add_callback(TeacherEMACallback())
        if TeacherTemperatureCallback not in present:
            self.add_callback(TeacherTemperatureCallback())
        if WeightDecayScheduleCallback not in present:
            self.add_callback(WeightDecayScheduleCallback(weight_decay_start, weight_decay_end))
        if hasattr(self.data_collator, "set_epoch") and CollatorEpochCallback not in present:
            self.add_callback(CollatorEpochCallback(self.data_collator))

    @property
    def learning_rate(self) -> float:
        if self.base_learning_rate is None:
            return self.args.learning_rate
        total = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
        return scaled_learning_rate(self.base_learning_rate, total)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """torch Adam (coupled L2 as the reference) or AdamW, foreach; group 0 = weights (scheduled decay), 1 =
        biases/1-D."""
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            decay, no_decay = [], []
            for name, parameter in opt_model.named_parameters():
                if not parameter.requires_grad:
                    continue  # the teacher
                (no_decay if parameter.ndim <= 1 or name.endswith(".bias") else decay).append(parameter)
            optimizer_class = torch.optim.AdamW if self.decoupled_weight_decay else torch.optim.Adam
            self.optimizer = optimizer_class(
                [
                    {"params": decay, "weight_decay": self.weight_decay_start},
                    {"params": no_decay, "weight_decay": 0.0},
                ],
                lr=self.learning_rate,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
                foreach=True,
            )
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            monitors = collapse_monitors(outputs.get("teacher_probabilities"), outputs["student_pooled"],
                                         outputs.get("teacher_pooled"))
            # The same names every step of a run: which monitors exist depends on the config only.
            self._component_names = LOSS_COMPONENTS + tuple(monitors)
            components = torch.stack([outputs[name].detach().float() for name in LOSS_COMPONENTS]
                                     + [torch.tensor(value, device=outputs["loss"].device) for value in monitors.values()])
            self._component_sums = components if self._component_sums is None else self._component_sums + components
            self._component_count += 1
        loss = outputs["loss"]
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Only training-log events carry "loss" (eval logs carry "eval_loss"; the final summary "train_loss"), and every
        # rank reaches them together, so the gather below is safe.
        if "loss" in logs and self._component_count:
            means = (self._component_sums / self._component_count)[None]
            if self.args.world_size > 1:
                means = self.accelerator.gather(means)  # (world_size, components + monitors)
            for name, value in zip(self._component_names, means.mean(0).tolist()):
                logs[name] = round(value, 6)
            self._component_sums, self._component_count = None, 0
            config = self.accelerator.unwrap_model(self.model).config
            prototypes = config.num_prototypes if config.distillation_target == "pooled" else config.hidden_size
            for problem in collapse_warnings(logs, prototypes):
                logger.warning(f"collapse at step {self.state.global_step}: {problem}.")
        super().log(logs, start_time)


def pretrain(
    pairs_dataset,
    config: QualityFMConfig | str = "base",
    training_args: TrainingArguments | None = None,
    *,
    model: QualityFMForSelfDistillation | None = None,
    eval_dataset=None,
    recipe: str = DEFAULT_RECIPE,
    base_learning_rate: float | None | str = FROM_RECIPE,
    augment: bool = True,
    resume_from_checkpoint: str | bool | None = None,
    callbacks: list[TrainerCallback] | None = None,
    export: bool = True,
    card: Mapping | None = None,
) -> QualityFMDistillationTrainer:
    """Self-distillation pretraining; returns the trainer (its `state.log_history` holds the loss components).

    Args:
        pairs_dataset: a torch or `datasets` dataset of pairs: `teacher_input_values` and `student_input_values`
            `(2, 9000)` float32, optional `teacher_channel_mask` / `student_channel_mask` `(2,)`.
        config (`QualityFMConfig` or `str`): a config, used as is, or a preset name ("base", "large", "huge"), to
            which the recipe's config overrides are applied.
        training_args (`TrainingArguments`, *optional*): defaults to the recipe's
            `default_training_arguments("qualityfm-pretrain", recipe)`.
        model (`QualityFMForSelfDistillation`, *optional*): start from it instead of a fresh model.
        recipe (`str`, defaults to "default"): a key of `RECIPES`; it also picks the optimiser (Adam or AdamW).
        base_learning_rate (`float`, *optional*): scaled by total batch / 256; None uses `training_args.learning_rate`
            unscaled; by default the recipe decides (paper: 1e-4 scaled; default: unscaled).
        resume_from_checkpoint: passed to `Trainer.train`.
        export (`bool`, defaults to True): on the main process, write `<output_dir>/encoder` (the teacher encoder plus
            the feature extractor, loadable with `AutoModel.from_pretrained` after `import qualityfm_hf`) and
            `<output_dir>/loss_curves.png`.
        card (`Mapping`, *optional*): model card fields of the exported encoder (`write_encoder_card`), e.g. a
            `dataset_description` of the pairs.
    """
    chosen = get_recipe(recipe)
    training_args = training_args or default_training_arguments("qualityfm-pretrain", recipe)
    if base_learning_rate == FROM_RECIPE:
        base_learning_rate = chosen.base_learning_rate
    if isinstance(config, str):
        config = QualityFMConfig.from_preset(config, **chosen.config)
    if model is None:
        # The Trainer seeds only after the model exists: seed first so two runs start from the same weights.
        enable_full_determinism(training_args.seed) if training_args.full_determinism else set_seed(training_args.seed)
        model = QualityFMForSelfDistillation(config)
    # Fail before the Trainer spends time setting up. A streaming dataset (`load_pairs(dir, streaming=True)`) has a
    # `__getitem__` that raises: its first item comes from iterating.
    if isinstance(pairs_dataset, torch.utils.data.IterableDataset):
        first = next(iter(pairs_dataset), None)
        if first is not None:
            check_pair_item(first, model.config)
    elif hasattr(pairs_dataset, "__getitem__") and hasattr(pairs_dataset, "__len__") and len(pairs_dataset):
        check_pair_item(pairs_dataset[0], model.config)
    collator = PairCollator(
        augment=augment, seed=training_args.data_seed or training_args.seed,
        same_window_fraction=model.config.same_window_fraction,
        student_crop_min_samples=int(round(model.config.student_crop_min_seconds * model.config.sampling_rate)),
        rhythm_features=model.config.rhythm_loss_weight > 0, sampling_rate=model.config.sampling_rate,
    )
    trainer = QualityFMDistillationTrainer(
        model=model,
        args=training_args,
        train_dataset=pairs_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        callbacks=callbacks,
        base_learning_rate=base_learning_rate,
        decoupled_weight_decay=chosen.decoupled_weight_decay,
    )
    adapt_trainer_logs(trainer)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_model()  # student + teacher + centre, on every rank (FSDP gathers), written where should_save
    if export and trainer.is_world_process_zero():
        output_dir = Path(training_args.output_dir)
        args = trainer.args
        total_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        run = {"training_description": (
            f"{trainer.state.global_step} steps of {total_batch} pairs, recipe `{recipe}`, peak learning rate "
            f"{trainer.learning_rate:g}, seed {args.seed}; every setting is in this folder's `config.json` and the "
            "run's `training_args.bin`.")}
        export_encoder(trainer.model, output_dir / "encoder", card={**run, **(card or {})})
        if any("loss" in entry and "step" in entry for entry in trainer.state.log_history):
            plot_loss_curves(trainer.state.log_history, output_dir / "loss_curves.png", loss_weights(trainer.model.config))
        else:  # a run shorter than logging_steps is a normal run; it just has no curve to draw
            warnings.warn(
                f"no training loss was logged ({trainer.state.global_step} steps, logging_steps "
                f"{training_args.logging_steps}), so there is no loss_curves.png; set logging_steps <= max_steps.",
                stacklevel=2,
            )
    trainer.accelerator.wait_for_everyone()
    return trainer


def export_encoder(model: QualityFMForSelfDistillation, directory: str | Path, *,
                   card: Mapping | None = None) -> Path:
    """Save `model.export_teacher_encoder()`, a matching feature extractor and a model card (`README.md`, from
    `model_cards/pretrained_template.md`) to `directory`. `card` fills or overrides card fields (e.g.
    `dataset_description`, `training_description`, `repo_id`); the rest are derived from the config."""
    from ..modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor

    directory = Path(directory)
    encoder = model.export_teacher_encoder()
    encoder.save_pretrained(directory)
    config = model.config
    QualityFMFeatureExtractor(
        sampling_rate=config.sampling_rate,
        channel_names=tuple(config.channel_names),
        segment_seconds=config.segment_seconds,
    ).save_pretrained(directory)
    from ..reports.cards import write_encoder_card

    write_encoder_card(directory, config, sum(p.numel() for p in encoder.parameters()), card or {})
    return directory


__all__ = ["QualityFMDistillationTrainer", "export_encoder", "pretrain"]
