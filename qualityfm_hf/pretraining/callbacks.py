"""Trainer callbacks of self-distillation: the EMA teacher, the teacher temperature, the weight-decay schedule and
the collator's epoch.

They are stateless: everything per step is a function of `state.global_step`, so nothing but the Trainer's own
checkpoint is needed to resume, and a resumed run continues exactly."""

from __future__ import annotations

import math

from transformers import TrainerCallback

from ..modeling.distillation_qualityfm import momentum_at, teacher_temperature_at
from .collator import PairCollator
from .recipes import WEIGHT_DECAY_END, WEIGHT_DECAY_START, weight_decay_at


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



__all__ = ["CollatorEpochCallback", "TeacherEMACallback", "TeacherTemperatureCallback", "WeightDecayScheduleCallback"]
