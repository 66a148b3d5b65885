"""QualityFM self-distillation wrapper: student, EMA teacher and centre in one module (paper notes §2–§3).

Laid out like dinov2's `SSLMetaArch`: the trainable `student` and the frozen `teacher` are two
`QualityFMForPretraining` submodules and the DINO centre is a buffer, so all three land in every checkpoint and a
resumed run continues exactly. `QualityFMForPretraining` stays the bare paper architecture. This file ships as Hub
remote code: torch, transformers and siblings only.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from .configuration_qualityfm import QualityFMConfig
from .loss_qualityfm import (
    center_and_sharpen,
    distillation_loss,
    koleo_loss,
    log_band_powers,
    masked_mse_loss,
    quality_score_loss,
    spectral_loss,
    spectral_targets,
)
from .modeling_qualityfm import QualityFMForPretraining, QualityFMModel, QualityFMPreTrainedModel


def momentum_at(step: int, max_steps: int, start: float = 0.7, end: float = 1.0) -> float:
    """Cosine schedule from `start` at step 0 to `end` at `max_steps` (teacher EMA momentum 0.7 -> 1.0, §2).

    Same curve as DINO's `cosine_scheduler` (which goes from base to final): end − (end − start)·(1 + cos(π·s/S))/2.
    Steps beyond `max_steps` stay at `end`.
    """
    if max_steps <= 0:
        raise ValueError(f"max_steps must be > 0 to place step {step} on the schedule; got {max_steps}.")
    progress = min(max(step / max_steps, 0.0), 1.0)
    return end - (end - start) * (1.0 + math.cos(math.pi * progress)) / 2.0


def teacher_temperature_at(step: int, max_steps: int, config: QualityFMConfig) -> float:
    """τ_t at `step`: linear from `config.teacher_temperature_start` to `config.teacher_temperature` over the first
    `teacher_temperature_warmup_fraction` of `max_steps` (DINO's warm-up), then constant. Without a start value it is
    `config.teacher_temperature` throughout (the paper)."""
    start, end = config.teacher_temperature_start, config.teacher_temperature
    warmup = config.teacher_temperature_warmup_fraction * max_steps
    if start is None or warmup <= 0 or step >= warmup:
        return end
    return start + (end - start) * max(step, 0) / warmup


class QualityFMProjectionHead(nn.Module):
    """DINO's projection head for the "pooled" distillation target (beyond the paper).

    Pooled embedding (B, d) -> 3-layer MLP (GELU) -> bottleneck -> L2 normalisation -> prototypes whose weight rows
    are normalised too, so each logit is a cosine between the window and a prototype, bounded in [-1, 1] before the
    temperature. Bounded logits are why the head helps: the paper's loss on raw, unbounded encoder tokens lets one
    dimension run away (a teacher entropy of exactly 0 and a flat loss). Used in pretraining only.
    """

    def __init__(self, config: QualityFMConfig):
        super().__init__()
        hidden, bottleneck = config.projection_hidden_size, config.projection_bottleneck_size
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        self.prototypes = nn.Linear(bottleneck, config.num_prototypes, bias=False)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        bottleneck = nn.functional.normalize(self.mlp(pooled), dim=-1)
        return bottleneck @ nn.functional.normalize(self.prototypes.weight, dim=-1).T  # (B, num_prototypes)


@dataclass
class QualityFMSelfDistillationOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` scalar): λ_distill·L_distill + λ_amp·L_amp + λ_pha·L_pha (§3.3) + λ_koleo·L_koleo
            + λ_band·L_band + λ_quality·L_quality + λ_rhythm·L_rhythm.
        distillation_loss / amplitude_loss / phase_loss / koleo_loss / band_power_loss / quality_loss / rhythm_loss
            (`torch.FloatTensor` scalars): the components, unweighted (the quality and rhythm losses are 0 without
            their targets).
        amplitude / phase (`torch.FloatTensor` of shape `(batch, num_channels, num_fft_bins)`): the student's
            predicted spectra of the teacher-input window.
        student_hidden_state / teacher_hidden_state (`torch.FloatTensor` of shape `(batch, tokens, hidden_size)`):
            U_s and U_t (the latter detached; None when `distillation_loss_weight` is 0: the teacher is not run).
        student_channel_mask (`torch.Tensor` of shape `(batch, num_channels)`): the mask the student saw, after
            modality dropout.
        teacher_probabilities (`torch.FloatTensor`): the centred, sharpened teacher distribution the student
            matched, `(batch, num_prototypes)` for the "pooled" target or `(batch, tokens, hidden_size)` for
            "tokens" (detached; the collapse monitors read it). None without a distillation term.
        student_pooled / teacher_pooled (`torch.FloatTensor` of shape `(batch, hidden_size)`): pooled encoder outputs
            (detached; the teacher's None without a distillation term).
    """

    loss: torch.FloatTensor | None = None
    distillation_loss: torch.FloatTensor | None = None
    amplitude_loss: torch.FloatTensor | None = None
    phase_loss: torch.FloatTensor | None = None
    koleo_loss: torch.FloatTensor | None = None
    band_power_loss: torch.FloatTensor | None = None
    quality_loss: torch.FloatTensor | None = None
    rhythm_loss: torch.FloatTensor | None = None
    amplitude: torch.FloatTensor | None = None
    phase: torch.FloatTensor | None = None
    student_hidden_state: torch.FloatTensor | None = None
    teacher_hidden_state: torch.FloatTensor | None = None
    student_channel_mask: torch.Tensor | None = None
    teacher_probabilities: torch.FloatTensor | None = None
    student_pooled: torch.FloatTensor | None = None
    teacher_pooled: torch.FloatTensor | None = None


class QualityFMForSelfDistillation(QualityFMPreTrainedModel):
    """Student + EMA teacher + centre; `forward` returns the pretraining loss and its components.

    The teacher starts as a copy of the student, gets no gradient, runs under `no_grad` and stays in eval mode
    whatever `train()` is called with (the Trainer calls `model.train()` every step; dropout in the teacher would
    silently change its targets). After each optimiser step call `update_teacher(momentum_at(...))`
    (`qualityfm_hf.pretraining.callbacks.TeacherEMACallback` does). Fine-tuning starts from `export_teacher_encoder()`.
    """

    # The losses are per-batch means: the Trainer must divide them for gradient accumulation itself.
    accepts_loss_kwargs = False

    def __init__(self, config: QualityFMConfig):
        super().__init__(config)
        self.student = QualityFMForPretraining(config)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        # Without a distillation term (weight 0) there is no head to train and the teacher only tracks the student
        # (its EMA is still what `export_teacher_encoder` gives).
        self.distills = config.distillation_loss_weight > 0
        pooled = config.distillation_target == "pooled"
        self.student_head = self.teacher_head = None
        if pooled and self.distills:
            self.student_head = QualityFMProjectionHead(config)
            self.teacher_head = copy.deepcopy(self.student_head)
            self.teacher_head.requires_grad_(False)
        # c of §3.1, initialised to 0: one entry per prototype for the pooled target (DINO), per token and feature
        # for the paper's token target (the mean runs over the batch only).
        center_shape = (1, config.num_prototypes) if pooled else (1, config.segment_tokens, config.hidden_size)
        self.register_buffer("center", torch.zeros(center_shape))
        # Student only: its output is a prediction, not a target, so the teacher needs no copy.
        self.band_power_head = (
            nn.Linear(config.hidden_size, config.num_channels * config.num_band_powers)
            if config.band_power_loss_weight > 0
            else None
        )
        # Student only, like the band-power head: it reads the quality of the window the student sees.
        self.quality_head = (
            nn.Linear(config.hidden_size, config.num_channels) if config.quality_loss_weight > 0 else None
        )
        self.rhythm_head = (
            nn.Linear(config.hidden_size, config.num_rhythm_features) if config.rhythm_loss_weight > 0 else None
        )
        # τ_t of the current step: `TeacherTemperatureCallback` sets it from the schedule before every step.
        self.teacher_temperature = config.teacher_temperature
        self.post_init()
        # post_init may (re)initialise each submodule on its own: start the teacher from the student's exact weights.
        with torch.no_grad():
            self.update_teacher(0.0)
        self.teacher.eval()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        # Loading materialises fresh Parameters (requires_grad=True): freeze the teacher again, or the optimizer
        # would train it.
        for module in model.teacher_modules():
            module.requires_grad_(False)
        return model

    def student_modules(self) -> list[nn.Module]:
        """The modules the teacher mirrors (the band-power, quality and rhythm heads have no teacher copy)."""
        return [self.student] + ([self.student_head] if self.student_head is not None else [])

    def teacher_modules(self) -> list[nn.Module]:
        return [self.teacher] + ([self.teacher_head] if self.teacher_head is not None else [])

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.teacher_modules():
            module.train(False)
        return self

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """θ_t ← m·θ_t + (1 − m)·θ_s over every parameter (decoder and projection head included); buffers are copied
        (§2)."""
        teacher_params = [p for module in self.teacher_modules() for p in module.parameters()]
        student_params = [p.detach() for module in self.student_modules() for p in module.parameters()]
        if len(teacher_params) != len(student_params):
            raise ValueError(
                f"teacher has {len(teacher_params)} parameters and student {len(student_params)}; they must share "
                "one architecture."
            )
        # One pass over the weights (lerp: t + (1 − m)·(s − t)), not two (mul_ then add_): at small batches the EMA
        # is memory-bound. torch's lerp is exact at both ends, so m = 1 keeps and m = 0 copies bit for bit.
        torch._foreach_lerp_(teacher_params, student_params, 1.0 - momentum)
        for teacher_buffer, student_buffer in zip(self.teacher.buffers(), self.student.buffers()):
            teacher_buffer.copy_(student_buffer)

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor, token_mask: torch.Tensor | None = None) -> None:
        """c ← m·c + (1 − m)·mean over the batch of the teacher output (§3.1), all-reduced across ranks when distributed.

        Args:
            teacher_out (`torch.Tensor` of shape `(batch, tokens, hidden)` or `(batch, num_prototypes)`): teacher
                encoder output U_t ("tokens" target) or teacher head logits ("pooled" target).
            token_mask (`torch.Tensor` of shape `(batch, tokens)`, *optional*): real tokens; a token no sample
                covers keeps its centre.
        """
        if teacher_out.dim() == 2:
            mask = torch.ones(teacher_out.shape[0], 1, device=teacher_out.device)
        else:
            if token_mask is None:
                token_mask = torch.ones(teacher_out.shape[:2], dtype=torch.bool, device=teacher_out.device)
            mask = token_mask.to(torch.float32)[:, :, None]
        total = (teacher_out.float() * mask).sum(0, keepdim=True)  # (1, tokens, hidden) or (1, K)
        count = mask.sum(0, keepdim=True)  # (1, tokens, 1) or (1, 1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Without this each rank's centre drifts with its own batches and the ranks' losses disagree.
            torch.distributed.all_reduce(total)
            torch.distributed.all_reduce(count)
        if total.shape != self.center.shape:
            raise ValueError(
                f"teacher output has {total.shape[1]} tokens but the centre holds {self.center.shape[1]}; "
                f"pretraining windows must be {self.config.segment_seconds} s ({self.config.segment_samples} samples)."
            )
        batch_center = total / count.clamp(min=1.0)
        momentum = self.config.center_momentum
        updated = self.center.float() * momentum + batch_center * (1.0 - momentum)
        self.center.copy_(torch.where(count > 0, updated, self.center.float()).to(self.center.dtype))

    def drop_modality(
        self, input_values: torch.Tensor, channel_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """With probability `config.modality_dropout` per pair, zero one random channel of the student input and mark
        it absent (beyond the paper). Draws from torch's global RNG, which the Trainer checkpoints, so a resumed run
        draws the same channels."""
        batch, channels, _ = input_values.shape
        if channel_mask is None:
            channel_mask = torch.ones(batch, channels, device=input_values.device, dtype=input_values.dtype)
        drop = torch.rand(batch, device=input_values.device) < self.config.modality_dropout
        which = torch.randint(channels, (batch,), device=input_values.device)
        dropped = torch.nn.functional.one_hot(which, channels).bool() & drop[:, None]  # (B, C)
        keep = (~dropped).to(channel_mask.dtype)
        return input_values * keep[:, :, None].to(input_values.dtype), channel_mask * keep

    def forward(
        self,
        teacher_input_values: torch.Tensor,
        student_input_values: torch.Tensor,
        teacher_attention_mask: torch.Tensor | None = None,
        student_attention_mask: torch.Tensor | None = None,
        teacher_channel_mask: torch.Tensor | None = None,
        student_channel_mask: torch.Tensor | None = None,
        student_quality_scores: torch.Tensor | None = None,
        student_rhythm_features: torch.Tensor | None = None,
        return_loss: bool = True,
        return_dict: bool | None = None,
        **kwargs,
    ) -> QualityFMSelfDistillationOutput | tuple:
        r"""
        Args:
            teacher_input_values (`torch.FloatTensor` of shape `(batch, 2, 9000)`): the better-quality 30-s window
                of each pair, [PPG, ECG_II] at 300 Hz, joint min-max to [-1, 1].
            student_input_values (`torch.FloatTensor` of shape `(batch, 2, 9000)`): the worse-quality window.
            teacher_attention_mask / student_attention_mask (`torch.Tensor` of shape `(batch, 9000)`, *optional*):
                1 for real samples.
            teacher_channel_mask / student_channel_mask (`torch.Tensor` of shape `(batch, 2)`, *optional*): 1 =
                channel present.
            student_quality_scores (`torch.FloatTensor` of shape `(batch, 2)`, *optional*): the quality score of each
                channel of the student's window (NaN where not scored), the target of the quality head. Without it
                the quality loss is 0.
            student_rhythm_features (`torch.FloatTensor` of shape `(batch, num_rhythm_features)`, *optional*): the
                standardised RR statistics of the student's window (NaN where undefined), the rhythm head's target;
                ignored where the student's ECG is absent. Without it the rhythm loss is 0.
            return_loss (`bool`, defaults to True): compute the losses (its presence also tells the Trainer this
                model returns a loss without `labels`, so evaluation reports `eval_loss`).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if self.training and self.config.modality_dropout > 0:
            student_input_values, student_channel_mask = self.drop_modality(student_input_values, student_channel_mask)
        if student_channel_mask is None and self.student.qualityfm.absent_channel_embedding is not None:
            # An all-present mask keeps the absent-channel embedding in the graph, so DDP with
            # find_unused_parameters=False finds a gradient (of zero) for it on every step.
            student_channel_mask = student_input_values.new_ones(student_input_values.shape[:2])

        teacher = None
        if self.distills:
            with torch.no_grad():
                teacher = self.teacher(
                    teacher_input_values, teacher_attention_mask, teacher_channel_mask, return_dict=True
                )
        student = self.student(student_input_values, student_attention_mask, student_channel_mask, return_dict=True)

        losses = (None,) * 8
        teacher_probs = None
        if return_loss and not self.distills:
            distill = student.pooler_output.new_zeros((), dtype=torch.float32)
        elif return_loss:
            if teacher.last_hidden_state.shape != student.last_hidden_state.shape:
                raise ValueError(
                    f"teacher and student windows must give the same tokens; got "
                    f"{tuple(teacher.last_hidden_state.shape)} and {tuple(student.last_hidden_state.shape)}."
                )
            if self.student_head is not None:
                # Window level: the two windows of a pair lie minutes apart, so only their pooled embeddings
                # correspond; token i of one has no time correspondence with token i of the other.
                with torch.no_grad():
                    teacher_out = self.teacher_head(teacher.pooler_output)
                student_out, token_mask = self.student_head(student.pooler_output), None
            else:
                teacher_out, student_out = teacher.last_hidden_state, student.last_hidden_state
                token_mask = teacher.token_mask & student.token_mask
            teacher_probs = center_and_sharpen(teacher_out, self.center, self.teacher_temperature)
            distill = distillation_loss(student_out, teacher_probs, self.config.student_temperature, token_mask)
        if return_loss:
            koleo = koleo_loss(student.pooler_output) if self.config.koleo_loss_weight else distill.new_zeros(())
            with torch.no_grad():
                target_signal = teacher_input_values
                if teacher_attention_mask is not None:
                    target_signal = target_signal * teacher_attention_mask[:, None, :].to(target_signal.dtype)
                if teacher_channel_mask is not None:
                    target_signal = target_signal * teacher_channel_mask[:, :, None].to(target_signal.dtype)
                amplitude_target, phase_target = spectral_targets(
                    target_signal, self.config.num_fft_bins, self.config.spectral_target
                )
                if self.band_power_head is not None:
                    band_target = log_band_powers(
                        target_signal, self.config.sampling_rate, self.config.num_band_powers,
                        self.config.band_power_low_hz, self.config.band_power_high_hz,
                    )
            band_loss = distill.new_zeros(())
            if self.band_power_head is not None:
                band_pred = self.band_power_head(student.pooler_output).view_as(band_target)
                band_loss = spectral_loss(band_pred, band_target, teacher_channel_mask)
            quality_loss = distill.new_zeros(())
            if self.quality_head is not None:
                quality_pred = self.quality_head(student.pooler_output)
                if student_quality_scores is not None:
                    quality_loss = quality_score_loss(quality_pred, student_quality_scores, student_channel_mask)
                else:  # keep the head in the graph (DDP) with a zero gradient
                    quality_loss = quality_pred.sum() * 0.0
            rhythm_loss = distill.new_zeros(())
            if self.rhythm_head is not None:
                rhythm_pred = self.rhythm_head(student.pooler_output)
                if student_rhythm_features is not None:
                    ecg_seen = None
                    if student_channel_mask is not None:  # [PPG, ECG_II]: no ECG seen, no rhythm to read
                        ecg_seen = (student_channel_mask[:, -1:] > 0).expand_as(rhythm_pred)
                    rhythm_loss = masked_mse_loss(rhythm_pred, student_rhythm_features, ecg_seen)
                else:
                    rhythm_loss = rhythm_pred.sum() * 0.0
            amplitude_loss = spectral_loss(student.amplitude, amplitude_target, teacher_channel_mask)
            phase_loss = spectral_loss(student.phase, phase_target, teacher_channel_mask)
            # Every term stays in the graph even at weight 0, so DDP finds a gradient for every parameter.
            loss = (
                self.config.distillation_loss_weight * distill
                + self.config.amplitude_loss_weight * amplitude_loss
                + self.config.phase_loss_weight * phase_loss
                + self.config.koleo_loss_weight * koleo
                + self.config.band_power_loss_weight * band_loss
                + self.config.quality_loss_weight * quality_loss
                + self.config.rhythm_loss_weight * rhythm_loss
            )
            losses = (loss, distill.detach(), amplitude_loss.detach(), phase_loss.detach(), koleo.detach(),
                      band_loss.detach(), quality_loss.detach(), rhythm_loss.detach())
            if self.training and self.distills:
                # After the loss, as the reference's EMALoss: this step's targets used the previous centre.
                self.update_center(teacher_out, teacher.token_mask)

        output = QualityFMSelfDistillationOutput(
            loss=losses[0],
            distillation_loss=losses[1],
            amplitude_loss=losses[2],
            phase_loss=losses[3],
            koleo_loss=losses[4],
            band_power_loss=losses[5],
            quality_loss=losses[6],
            rhythm_loss=losses[7],
            amplitude=student.amplitude,
            phase=student.phase,
            student_hidden_state=student.last_hidden_state,
            teacher_hidden_state=None if teacher is None else teacher.last_hidden_state,
            student_channel_mask=student_channel_mask,
            teacher_probabilities=teacher_probs,
            student_pooled=student.pooler_output.detach(),
            teacher_pooled=None if teacher is None else teacher.pooler_output,
        )
        return output if return_dict else output.to_tuple()

    def export_teacher_encoder(self) -> QualityFMModel:
        """The teacher's encoder as a standalone `QualityFMModel` (the weights fine-tuning starts from, §2).

        The config is copied with `architectures=["QualityFMModel"]`, so `save_pretrained` gives a checkpoint that
        `AutoModel.from_pretrained` loads as the encoder. Returned in eval mode, on the teacher's device and dtype.
        """
        config = copy.deepcopy(self.config)
        config.architectures = ["QualityFMModel"]
        encoder = QualityFMModel(config)
        source = self.teacher.qualityfm
        parameter = next(source.parameters())
        encoder.to(device=parameter.device, dtype=parameter.dtype)
        encoder.load_state_dict(source.state_dict())
        return encoder.eval()


__all__ = [
    "QualityFMForSelfDistillation",
    "QualityFMProjectionHead",
    "QualityFMSelfDistillationOutput",
    "momentum_at",
    "teacher_temperature_at",
]
