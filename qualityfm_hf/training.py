"""Self-distillation pretraining with the transformers Trainer (paper notes §2–§4.2).

`pretrain(pairs, config, args)` trains a `QualityFMForSelfDistillation` on quality-divergent pairs, saves it (student,
teacher and centre, so `--resume_from_checkpoint` continues exactly), plots the loss components and the collapse
monitors, and exports the teacher encoder to `<output_dir>/encoder`, the checkpoint fine-tuning starts from.

Two recipes (`RECIPES`):

- "paper", the reference code's (§4.2): per-token distillation on the raw encoder tokens, z-scored |FFT| and phase
  targets, Adam (coupled L2) with weights in one group and biases/1-D parameters in another; lr = 1e-4 × total
  batch / 256, cosine to 1e-6, no warm-up; weight decay 0.04 -> 0.4 (cosine, first group); teacher EMA 0.7 -> 1.0;
  no gradient clipping. It collapses at the data sizes we have (benchmarks/PRETRAINING.md).
- "default", the recipe that learns at our data sizes. The student sees the worse window of a quality pair (or,
  for half the items, an augmented copy of the better one; a random 10-30 s crop; one modality dropped 20 % of the
  time) and predicts the better window's spectrum twice: its log band powers from the pooled embedding (a linear
  head) and its log-power envelope through the paper's decoder (phase off); a KoLeo term spreads the batch. AdamW
  at 3e-4 with a 10 % linear warm-up, cosine decay and gradient clipping at 3; the EMA teacher (0.996 -> 1) is what
  is exported. The DINO distillation term is built (projection head, per-prototype centre, teacher temperature
  warm-up 0.04 -> 0.07) but weighted 0: on the shared records, at weight 1 it lowered the VT and AF probes in
  both paired comparisons and at 0.1 it kept VT but lowered AF and quality (benchmarks/PRETRAINING.md); `--set
  distillation_loss_weight=1` turns it on. A linear quality head predicts the pair builder's quality scores of the
  student's window at weight 0.3 (`quality_loss_weight`): without it the encoder learns to ignore quality; at
  weight 1 the heads fine-tuned from it were worse (PRETRAINING.md section 6). The rhythm head
  (`rhythm_loss_weight`) is off: it lowered the probes. Every departure from the paper is a `QualityFMConfig` field
  or a TrainingArguments value, so a run's config.json says what it did.

Everything per step is a function of `state.global_step`, so nothing but the Trainer's own checkpoint is needed to
resume.
"""

from __future__ import annotations

import copy
import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, enable_full_determinism, set_seed
from transformers.utils import logging

from .modeling.configuration_qualityfm import QualityFMConfig
from .modeling.distillation_qualityfm import QualityFMForSelfDistillation, momentum_at, teacher_temperature_at
from .modeling.rhythm_qualityfm import scale_rhythm
from .monitors import collapse_monitors, collapse_warnings
from .utils.trainer_logs import adapt as adapt_trainer_logs

logger = logging.get_logger(__name__)

BASE_LEARNING_RATE = 1e-4  # per 256 pairs: lr = BASE_LEARNING_RATE × total_batch / 256 (2e-4 at the paper's 512)
REFERENCE_BATCH_SIZE = 256
MIN_LEARNING_RATE = 1e-6
WEIGHT_DECAY_START, WEIGHT_DECAY_END = 0.04, 0.4
LOSS_COMPONENTS = ("distillation_loss", "amplitude_loss", "phase_loss", "koleo_loss", "band_power_loss", "quality_loss",
                   "rhythm_loss")
PAIR_KEYS = ("teacher_input_values", "student_input_values")
MASK_KEYS = ("teacher_channel_mask", "student_channel_mask")
SCORE_KEY = "student_quality_scores"  # the quality head's target; the teacher's scores matter for same-window items
RHYTHM_KEY = "student_rhythm_features"  # the rhythm head's target, computed by the collator


# TrainingArguments of `default_training_arguments` (and of `qualityfm pretrain`) where they differ from transformers'.
DEFAULT_TRAINING_ARGS = dict(
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    num_train_epochs=1,
    learning_rate=BASE_LEARNING_RATE,
    lr_scheduler_type="cosine_with_min_lr",
    lr_scheduler_kwargs={"min_lr": MIN_LEARNING_RATE},
    warmup_steps=0,
    weight_decay=WEIGHT_DECAY_START,
    max_grad_norm=0.0,  # the reference code clips nothing
    logging_steps=10,
    save_strategy="steps",
    save_steps=500,
    save_total_limit=3,
    report_to="none",
    remove_unused_columns=False,  # the collator needs every pair column
    label_names=[],
    prediction_loss_only=True,
    ddp_find_unused_parameters=False,  # every student parameter gets a gradient; True costs a reducer pass
    dataloader_drop_last=True,  # as DINO: equal batches, so every centre update averages the same count
    dataloader_num_workers=0,
    seed=42,
)


@dataclass(frozen=True)
class Recipe:
    """A named pretraining recipe.

    Args:
        config: `QualityFMConfig` overrides applied on top of a preset.
        training_args: TrainingArguments values on top of `DEFAULT_TRAINING_ARGS` (the CLI's defaults; options given
            on the command line win).
        base_learning_rate: lr per 256 pairs, scaled by the total batch; None uses `learning_rate` as is.
        decoupled_weight_decay: AdamW (True) or the reference's Adam with coupled L2 (False).
    """

    config: dict = field(default_factory=dict)
    training_args: dict = field(default_factory=dict)
    base_learning_rate: float | None = BASE_LEARNING_RATE
    decoupled_weight_decay: bool = False


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(),
    "default": Recipe(
        config=dict(
            # Off by default: at our data sizes the distillation term at weight 1 lowered the VT and AF probes in both
            # paired comparisons; at 0.1 it kept VT but lowered AF and quality (benchmarks/PRETRAINING.md). Its settings below apply with --set
            # distillation_loss_weight=1: window level, through the projection head (no token correspondence).
            distillation_loss_weight=0.0,
            distillation_target="pooled",
            teacher_temperature=0.07,
            teacher_temperature_start=0.04,
            teacher_temperature_warmup_fraction=0.3,
            teacher_momentum_start=0.996,  # DINO; the paper's 0.7 makes the teacher nearly a copy of the student
            spectral_target="log_power",
            amplitude_loss_weight=1.0,
            phase_loss_weight=0.0,  # the phase of a window minutes away is not predictable
            koleo_loss_weight=0.1,
            band_power_loss_weight=1.0,  # the pooled embedding itself must carry the better window's spectrum
            modality_dropout=0.2,  # single-channel inputs (ECG-only AF recordings) are common downstream
            student_crop_min_seconds=10.0,  # downstream windows are 10-30 s
            same_window_fraction=0.5,
            # Beyond the paper: the student also predicts the quality scores of the window it sees. Without it the
            # recipe rewards invariance to quality (quality probe +0.04 over random); at 0.3 it is +0.07 over three
            # seeds with the fine-tuned VT and AF heads unchanged; at 1 the heads were worse (PRETRAINING.md §6).
            quality_loss_weight=0.3,
        ),
        training_args=dict(
            per_device_train_batch_size=32,
            learning_rate=3e-4,
            warmup_steps=0.1,  # a fraction of the steps (transformers 5 merged warmup_ratio into warmup_steps)
            max_grad_norm=3.0,
        ),
        base_learning_rate=None,  # batch scaling gives 3e-6 at batch 8: far too small to move the student
        decoupled_weight_decay=True,
    ),
}
DEFAULT_RECIPE = "default"
FROM_RECIPE = "recipe"


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"recipe is {name!r}, but has to be one of {list(RECIPES)}.")
    return RECIPES[name]


def scaled_learning_rate(base_learning_rate: float, total_batch_size: int) -> float:
    """The linear scaling rule of the reference code: base × total_batch / 256 (total over devices and GA steps)."""
    return base_learning_rate * total_batch_size / REFERENCE_BATCH_SIZE


def weight_decay_at(step: int, max_steps: int, start: float = WEIGHT_DECAY_START, end: float = WEIGHT_DECAY_END):
    """Cosine weight-decay schedule 0.04 -> 0.4 (§4.2); the same curve as the teacher momentum."""
    return momentum_at(step, max_steps, start, end)


# ----------------------------------------------------------------------------------------------------------------
# Data


class PairCollator:
    """Stack pair items into a batch and augment each window independently (§2, augmentation table).

    Per window, in order: Gaussian noise (p 0.5, σ 0.01); amplitude scaling (p 0.5, ×U(0.9, 1.1)); per-channel DC shift
    (p 0.3, U(−0.1, 0.1)); one contiguous zero span over both channels (p 0.3, length U[T/20, T/10)).

    The random draws are seeded by (`seed`, epoch, the pair's bytes), not by a call counter: the Trainer skips the
    batches of a resumed epoch without collating them and prefetches ahead, and workers hold copies, so a counter would
    drift. This way a pair gets the same augmentation in the same epoch whatever the workers, ranks or resumption.
    The epoch comes from `set_epoch`, which `QualityFMDistillationTrainer` calls at each epoch start.

    With `same_window_fraction` > 0 (beyond the paper), that fraction of items, drawn from the same seeded generator,
    gives the student the teacher's window (and channel mask) instead of the worse one; the two views then differ only
    by their independent augmentations, as in DINO.

    When every item carries `teacher_quality_scores` and `student_quality_scores` (as `load_pairs` items do), the
    batch holds `student_quality_scores`, the quality head's target: the scores of the window the student sees (the
    teacher's for a same-window item; a crop keeps its whole window's scores).

    With `student_crop_min_samples` > 0 (beyond the paper), the student sees a random contiguous crop of its window
    (length uniform from that minimum to the whole window), min-max normalised again over its present channels as the
    feature extractor would, placed at the start and right-padded with zeros; the batch then holds a
    `student_attention_mask`. Downstream windows are often shorter than 30 s (10 s before a VT alarm), so the pooled
    embedding must mean the same at any length; the targets stay those of the teacher's whole window.

    Args:
        augment (`bool`, defaults to True): False only stacks (evaluation).
        seed (`int`, defaults to 0)
        same_window_fraction (`float`, defaults to 0.0): see above; `pretrain` passes `config.same_window_fraction`.
        student_crop_min_samples (`int`, defaults to 0): see above; `pretrain` passes
            `config.student_crop_min_seconds × config.sampling_rate`. 0 turns cropping off.
    """

    def __init__(self, augment: bool = True, seed: int = 0, same_window_fraction: float = 0.0,
                 student_crop_min_samples: int = 0, rhythm_features: bool = False, sampling_rate: float = 300.0):
        self.rhythm_features = bool(rhythm_features)
        self.sampling_rate = float(sampling_rate)
        self._rhythm_cache: dict[int, np.ndarray] = {}
        self.augment = augment
        self.seed = int(seed)
        self.same_window_fraction = float(same_window_fraction)
        self.student_crop_min_samples = int(student_crop_min_samples)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, features: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("PairCollator got an empty batch.")
        batch: dict[str, list[np.ndarray]] = {key: [] for key in PAIR_KEYS}
        masks = [key for key in MASK_KEYS if all(feature.get(key) is not None for feature in features)]
        with_scores = all(feature.get(key) is not None for feature in features
                          for key in ("teacher_quality_scores", SCORE_KEY))
        for feature in features:
            missing = [key for key in PAIR_KEYS if key not in feature]
            if missing:
                raise ValueError(
                    f"a pair item must hold {list(PAIR_KEYS)} (each (2, 9000) float32); this one lacks {missing} "
                    f"and has {sorted(feature)}. Load pairs with qualityfm_hf.pairs.load_pairs."
                )
            windows = [np.asarray(_to_numpy(feature[key]), dtype=np.float32) for key in PAIR_KEYS]
            mask_values = {key: np.asarray(_to_numpy(feature[key]), dtype=np.float32) for key in masks}
            scores = None
            if with_scores:
                scores = np.asarray(_to_numpy(feature[SCORE_KEY]), dtype=np.float32)
            rng = np.random.default_rng([self.seed, self.epoch, _fingerprint(windows)])
            if self.same_window_fraction > 0 and rng.random() < self.same_window_fraction:
                windows[1] = windows[0]
                if masks:
                    mask_values[MASK_KEYS[1]] = mask_values[MASK_KEYS[0]]
                if with_scores:
                    scores = np.asarray(_to_numpy(feature["teacher_quality_scores"]), dtype=np.float32)
            if self.rhythm_features:
                batch.setdefault(RHYTHM_KEY, []).append(self._rhythm(windows[1], mask_values.get(MASK_KEYS[1])))
            if self.augment:
                windows = [augment_window(window, rng) for window in windows]
            if self.student_crop_min_samples > 0:
                present = mask_values.get(MASK_KEYS[1])
                windows[1], length = crop_window(windows[1], self.student_crop_min_samples, rng, present)
                batch.setdefault("student_attention_mask", []).append(np.arange(windows[1].shape[1]) < length)
            for key, window in zip(PAIR_KEYS, windows):
                batch[key].append(window)
            for key in masks:
                batch.setdefault(key, []).append(mask_values[key])
            if with_scores:
                batch.setdefault(SCORE_KEY, []).append(scores)
        return {key: torch.from_numpy(np.stack(values)) for key, values in batch.items()}

    def _rhythm(self, window: np.ndarray, channel_mask: np.ndarray | None) -> np.ndarray:
        # A deterministic function of the window: computed once per window (about 3 ms), then cached.
        key = _fingerprint([window])
        if key not in self._rhythm_cache:
            self._rhythm_cache[key] = rhythm_targets(window, channel_mask, self.sampling_rate)
        return self._rhythm_cache[key]


def rhythm_targets(window: np.ndarray, channel_mask: np.ndarray | None, sampling_rate: float) -> np.ndarray:
    """The rhythm head's target for one `(2, T)` [PPG, ECG_II] window: the R-peak statistics of
    `baselines.af_features` of its ECG, standardised and clipped by `rhythm_qualityfm.scale_rhythm`; float32 `(8,)`,
    NaN where a statistic is undefined (fewer than 4 beats, no ECG)."""
    from .baselines import af_features

    mask = np.ones(2, np.int64) if channel_mask is None else np.asarray(channel_mask)
    values = af_features(np.asarray(window, dtype=np.float64), mask, float(sampling_rate))
    return scale_rhythm(values).astype(np.float32)


def crop_window(window: np.ndarray, min_samples: int, rng: np.random.Generator,
                channel_mask: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """A random contiguous crop of `window` (C, T), length uniform in [min_samples, T], jointly min-max normalised to
    [-1, 1] over the present channels, at the start of a zero (C, T) array; returns it and the crop length."""
    channels, time = window.shape
    length = int(rng.integers(min(min_samples, time), time + 1))
    start = int(rng.integers(0, time - length + 1))
    crop = window[:, start:start + length]
    present = np.ones(channels, bool) if channel_mask is None else np.asarray(channel_mask) > 0
    out = np.zeros_like(window)
    if present.any():
        low, high = crop[present].min(), crop[present].max()
        scale = 2.0 / (high - low) if high > low else 0.0
        out[present, :length] = (crop[present] - low) * scale - (1.0 if scale else 0.0)
    return out, length


def _to_numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _fingerprint(windows: list[np.ndarray]) -> int:
    digest = hashlib.blake2b(digest_size=8)
    for window in windows:
        digest.update(np.ascontiguousarray(window).tobytes())
    return int.from_bytes(digest.digest(), "little")


def augment_window(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The paper's four augmentations on one `(channels, time)` window; returns a new float32 array."""
    window = window.copy()
    channels, time = window.shape
    if rng.random() < 0.5:
        window += rng.normal(0.0, 0.01, size=window.shape).astype(np.float32)
    if rng.random() < 0.5:
        window *= np.float32(rng.uniform(0.9, 1.1))
    if rng.random() < 0.3:
        window += rng.uniform(-0.1, 0.1, size=(channels, 1)).astype(np.float32)
    if rng.random() < 0.3:
        length = int(rng.integers(time // 20, time // 10))  # 450–899 samples at 9,000
        start = int(rng.integers(0, time - length + 1))
        window[:, start : start + length] = 0.0
    return window


def check_pair_item(item: Mapping, config: QualityFMConfig) -> None:
    """Validate one dataset item against the input contract, with expected / found / fix."""
    shape = (config.num_channels, config.segment_samples)
    for key in PAIR_KEYS:
        if key not in item:
            raise ValueError(
                f"pairs dataset items must hold {list(PAIR_KEYS)} of shape {shape}; the first item has "
                f"{sorted(item)}. Build pairs with `qualityfm_hf.pairs.build_pairs` and load them with `load_pairs`."
            )
        found = tuple(np.shape(_to_numpy(item[key])))
        if found != shape:
            raise ValueError(
                f"{key} must be {shape} = ({', '.join(config.channel_names)}) × {config.segment_seconds} s at "
                f"{config.sampling_rate} Hz; the first item has {found}. Cut windows with QualityFMFeatureExtractor."
            )


# ----------------------------------------------------------------------------------------------------------------
# Callbacks (stateless: everything derives from state.global_step, so a resumed run continues exactly)


class TeacherEMACallback(TrainerCallback):
    """After each optimiser step: θ_t ← m·θ_t + (1 − m)·θ_s with m = momentum_at(step just taken, max_steps).

    The 0-based index of the step just taken follows dinov2/DINO (`momentum_schedule[it]` after step `it`).
    `model` is the Trainer's unwrapped model.
    """

    def on_step_end(self, args, state, control, model=None, **kwargs):
        config = model.config
        model.update_teacher(
            momentum_at(state.global_step - 1, state.max_steps, config.teacher_momentum_start, config.teacher_momentum_end)
        )


class TeacherTemperatureCallback(TrainerCallback):
    """Before each optimiser step, set the model's τ_t from `teacher_temperature_at(step, max_steps, config)`."""

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        model.teacher_temperature = teacher_temperature_at(state.global_step, state.max_steps, model.config)


class WeightDecayScheduleCallback(TrainerCallback):
    """Before each optimiser step, set the first parameter group's weight decay to `weight_decay_at(step)`."""

    def __init__(self, start: float = WEIGHT_DECAY_START, end: float = WEIGHT_DECAY_END):
        self.start, self.end = start, end

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        optimizer.param_groups[0]["weight_decay"] = weight_decay_at(state.global_step, state.max_steps, self.start, self.end)


class CollatorEpochCallback(TrainerCallback):
    """Hand the epoch to the collator (its augmentation seed) before the epoch's dataloader is iterated."""

    def __init__(self, collator: PairCollator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is `epoch + finished fraction`; exactly e.0 at a fresh epoch, e.f when resuming inside one.
        self.collator.set_epoch(math.floor((state.epoch or 0.0) + 1e-9))


# ----------------------------------------------------------------------------------------------------------------
# Trainer


class QualityFMDistillationTrainer(Trainer):
    """Trainer for `QualityFMForSelfDistillation`: paper optimiser, EMA teacher, per-component loss logging.

    Args:
        base_learning_rate (`float`, *optional*): if given, lr = base × total batch / 256 (`scaled_learning_rate`)
            and `args.learning_rate` is ignored; if None, `args.learning_rate` is used as is.
        weight_decay_start / weight_decay_end (`float`): the cosine weight-decay schedule (0.04 -> 0.4).
        decoupled_weight_decay (`bool`, defaults to False): AdamW instead of the reference's Adam with coupled L2.

    Besides the loss and its components, each training log holds the means of the collapse monitors
    (`qualityfm_hf.monitors.MONITORS`) over the logged steps, and a warning goes to the log when they show collapse.
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


# ----------------------------------------------------------------------------------------------------------------
# Resuming

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


def recipe_training_defaults(output_dir: str | Path, recipe: str = DEFAULT_RECIPE) -> dict:
    """`DEFAULT_TRAINING_ARGS` with the recipe's values on top: the defaults of `qualityfm pretrain --recipe R`."""
    return dict(copy.deepcopy(DEFAULT_TRAINING_ARGS), **get_recipe(recipe).training_args, output_dir=str(output_dir),
                dataloader_pin_memory=torch.cuda.is_available())


def default_training_arguments(output_dir: str | Path, recipe: str = DEFAULT_RECIPE, **overrides) -> TrainingArguments:
    """TrainingArguments of a recipe (`RECIPES`), with settings that work for pair data on CPU or GPU.

    For the "paper" recipe `learning_rate` is only used when `pretrain(..., base_learning_rate=None)`; by default its
    lr is 1e-4 × total batch / 256, cosine to 1e-6 without warm-up, no gradient clipping, batch 8 per device (the
    paper trains with batch 512 on GPUs). The "default" recipe uses batch 32, lr 3e-4 with a 10 % warm-up and
    clipping at 3. Both drop the last partial batch.
    """
    return TrainingArguments(**{**recipe_training_defaults(output_dir, recipe), **overrides})


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
    from .modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor

    directory = Path(directory)
    encoder = model.export_teacher_encoder()
    encoder.save_pretrained(directory)
    config = model.config
    QualityFMFeatureExtractor(
        sampling_rate=config.sampling_rate,
        channel_names=tuple(config.channel_names),
        segment_seconds=config.segment_seconds,
    ).save_pretrained(directory)
    from .cards import write_encoder_card

    write_encoder_card(directory, config, sum(p.numel() for p in encoder.parameters()), card or {})
    return directory


def loss_weights(config: QualityFMConfig) -> dict[str, float]:
    """λ of each loss component (`LOSS_COMPONENTS`): the config's `<component>_weight`."""
    return {name: float(getattr(config, f"{name}_weight")) for name in LOSS_COMPONENTS}


def plot_loss_curves(log_history: list[dict], path: str | Path, weights: Mapping[str, float] | None = None) -> Path:
    """Plot the loss, its components and the collapse monitors against the optimiser step to a PNG (Agg).

    `weights` (component name -> λ, e.g. `loss_weights(config)`) puts each component's weight in its panel title,
    so the plot says how much each curve counts in the total.

    A panel whose positive values span more than a factor of 20 uses a log scale, so a teacher entropy sliding towards
    0 stays visible instead of flattening into the axis.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    entries = [entry for entry in log_history if "loss" in entry and "step" in entry]
    if not entries:
        raise ValueError(
            f"log_history has no training-loss entries ({len(log_history)} entries in all); set logging_steps to "
            "at most max_steps so the Trainer logs the loss."
        )
    panels = [("loss", ("loss",))] + [(name, (name,)) for name in LOSS_COMPONENTS] + [
        ("teacher entropy (nats)", ("teacher_entropy", "teacher_batch_entropy")),
        ("distinct argmax prototypes", ("distinct_prototypes",)),
        ("effective rank of pooled embeddings", ("student_rank", "teacher_rank")),
        ("mean pairwise cosine", ("student_cosine", "teacher_cosine")),
    ]
    # A term that is off (weight 0 in the recipe, e.g. KoLeo in the paper's) logs exactly 0: no panel for it.
    panels = [(title, names) for title, names in panels
              if any(entry.get(name, 0) != 0 for entry in entries for name in names)]
    columns = 3
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(13, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    evals = [entry for entry in log_history if "eval_loss" in entry]
    for axis, (title, names) in zip(axes, panels):
        values = []
        for name in names:
            points = [(entry["step"], entry[name]) for entry in entries if name in entry]
            if points:
                axis.plot(*zip(*points), marker="o", markersize=2, label=name.replace("_", " "))
                values += [value for _, value in points]
        if title == "loss" and evals:
            axis.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], marker="s", label="eval loss")
        positive = [value for value in values if value > 0]
        if positive and len(positive) == len(values) and max(positive) > 20 * min(positive):
            axis.set_yscale("log")
        weight = (weights or {}).get(title)
        axis.set_title(title.replace("_", " ") + (f" (λ = {weight:g})" if weight is not None else ""))
        axis.set_xlabel("optimiser step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    figure.suptitle("QualityFM self-distillation: losses and collapse monitors")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


__all__ = [
    "BASE_LEARNING_RATE",
    "DEFAULT_TRAINING_ARGS",
    "CollatorEpochCallback",
    "PairCollator",
    "QualityFMDistillationTrainer",
    "RECIPES",
    "Recipe",
    "TeacherTemperatureCallback",
    "TeacherEMACallback",
    "WeightDecayScheduleCallback",
    "augment_window",
    "default_training_arguments",
    "get_recipe",
    "recipe_training_defaults",
    "export_encoder",
    "plot_loss_curves",
    "pretrain",
    "scaled_learning_rate",
    "weight_decay_at",
]
