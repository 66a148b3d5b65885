"""QualityFM task heads: false VT alarm, AF and ABP (paper notes §5).

Each head is the encoder (`self.qualityfm`, a `QualityFMModel`, so `base_model_prefix = "qualityfm"` lets a saved
backbone load into a head with the head freshly initialised) plus dropout and one linear layer on the pooled tokens
(`config.pooling`: "mean" over real tokens as in the paper, "first" or "max").

Head options are `QualityFMConfig` fields, validated there and stored in a fine-tuned checkpoint's `config.json`
(read with `getattr` and a default, so configs saved before they were fields still load):

- `pos_weight` (`float`, defaults to 1.0): BCE weight of the positive class (the paper used 3.54 for VTaC).
- `class_weights` (`list[float]`, *optional*): cross-entropy weight per class for multi-class AF.
- `regression_loss` (`str`, defaults to "mse"): "mse" or "smooth_l1" for ABP.
- `label_mean` / `label_std` (`list[float]`, defaults to 0 / 1): ABP label scaling, mmHg. The linear layer predicts
  `(y - mean) / std`; the returned logits are back in mmHg and the loss is computed in normalised units.
- `classifier_rhythm_features` (`int`, defaults to 0): when > 0 the linear layer reads the pooled embedding and that
  many ECG rhythm statistics (`rhythm_features`, from the feature extractor), concatenated in that order.

This file ships as Hub remote code: torch, transformers and siblings only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_qualityfm import REGRESSION_LOSSES, QualityFMConfig
from .modeling_qualityfm import QualityFMModel, QualityFMPreTrainedModel


class QualityFMTaskHead(QualityFMPreTrainedModel):
    """Shared body of the task heads: encoder -> pooled tokens -> dropout -> Linear(hidden_size, num_outputs), with
    `config.classifier_rhythm_features` rhythm statistics appended to the pooled tokens when it is > 0."""

    # Losses are per-batch means; the Trainer must scale them for gradient accumulation itself.
    accepts_loss_kwargs = False

    def __init__(self, config: QualityFMConfig, num_outputs: int):
        super().__init__(config)
        self.num_outputs = num_outputs
        self.qualityfm = QualityFMModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.num_rhythm_inputs = int(getattr(config, "classifier_rhythm_features", 0) or 0)
        self.classifier = nn.Linear(config.hidden_size + self.num_rhythm_inputs, num_outputs)
        self.backbone_frozen = False
        self.post_init()

    def freeze_backbone(self, freeze: bool = True) -> None:
        """Train the head only (a linear probe): no gradients into the encoder, which also stays in eval mode so
        its dropout does not perturb the frozen features. `freeze_backbone(False)` undoes it."""
        self.backbone_frozen = freeze
        self.qualityfm.requires_grad_(not freeze)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "backbone_frozen", False):
            self.qualityfm.eval()
        return self

    def head_outputs(self, input_values, attention_mask, channel_mask, output_hidden_states, output_attentions,
                     rhythm_features=None):
        encoded = self.qualityfm(
            input_values,
            attention_mask=attention_mask,
            channel_mask=channel_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        pooled = self.dropout(encoded.pooler_output)
        if self.num_rhythm_inputs:
            expected = (pooled.shape[0], self.num_rhythm_inputs)
            if rhythm_features is None or tuple(rhythm_features.shape) != expected:
                found = None if rhythm_features is None else tuple(rhythm_features.shape)
                raise ValueError(
                    f"this head reads {self.num_rhythm_inputs} rhythm statistics per window (config."
                    f"classifier_rhythm_features), so it needs rhythm_features of shape {expected}; got {found}. Use "
                    "the feature extractor saved with the model (it has rhythm_features=True)."
                )
            pooled = torch.cat([pooled, rhythm_features.to(pooled.dtype)], dim=-1)
        return self.classifier(pooled), encoded  # (B, num_outputs)

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transform_logits(self, raw: torch.Tensor) -> torch.Tensor:
        """Map the linear layer's output to the returned logits (identity except for ABP's mmHg scaling)."""
        return raw

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        channel_mask: torch.Tensor | None = None,
        rhythm_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, 2, time)`): [PPG, ECG_II] at `config.sampling_rate`
                Hz, from `QualityFMFeatureExtractor`.
            attention_mask (`torch.LongTensor` of shape `(batch, time)`, *optional*): 1 = real sample, 0 = padding.
            channel_mask (`torch.Tensor` of shape `(batch, 2)`, *optional*): 1 = channel present, 0 = missing.
            rhythm_features (`torch.FloatTensor` of shape `(batch, config.classifier_rhythm_features)`, *optional*):
                standardised ECG rhythm statistics of each window; required when `config.classifier_rhythm_features`
                is > 0, ignored otherwise.
            labels (`torch.Tensor`, *optional*): see the head's class docstring for shape and meaning.

        Returns:
            `SequenceClassifierOutput` with `loss` (when `labels` is given) and `logits` of shape
            `(batch, num_outputs)`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        raw, encoded = self.head_outputs(
            input_values, attention_mask, channel_mask, output_hidden_states, output_attentions, rhythm_features
        )
        loss = None if labels is None else self.compute_loss(raw, labels)
        output = SequenceClassifierOutput(
            loss=loss,
            logits=self.transform_logits(raw),
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


def _binary_loss(config: QualityFMConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    labels = labels.reshape(-1, 1).to(logits.dtype)
    if ((labels != 0) & (labels != 1)).any():
        raise ValueError(f"binary labels must be 0 or 1; got values {sorted(set(labels.flatten().tolist()))}.")
    pos_weight = torch.tensor([float(getattr(config, "pos_weight", None) or 1.0)], device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight.to(logits.dtype))


class QualityFMForVTFalseAlarm(QualityFMTaskHead):
    """True (1) vs false (0) ventricular-tachycardia alarm from the window before the alarm (paper notes §5.1).

    One logit, the log-odds of a *true* alarm; `sigmoid(logits) >= config.decision_threshold` (default 0.5) predicts a
    true alarm. Loss: BCE with `config.pos_weight` (true alarms are the minority). `labels`: `(batch,)` in {0, 1}.
    """

    def __init__(self, config: QualityFMConfig):
        super().__init__(config, num_outputs=1)

    def compute_loss(self, logits, labels):
        return _binary_loss(self.config, logits, labels)


class QualityFMForAFClassification(QualityFMTaskHead):
    """Atrial fibrillation (1) vs not (0), or a multi-class rhythm set (paper notes §5.2).

    With `config.num_labels <= 2`: one logit (log-odds of AF), BCE with `config.pos_weight`. With `num_labels > 2`
    (e.g. N/A/O/~): `num_labels` logits, cross-entropy with optional `config.class_weights`. `labels`: `(batch,)`
    class indices.
    """

    def __init__(self, config: QualityFMConfig):
        super().__init__(config, num_outputs=1 if config.num_labels <= 2 else config.num_labels)

    def compute_loss(self, logits, labels):
        if self.num_outputs == 1:
            return _binary_loss(self.config, logits, labels)
        weights = getattr(self.config, "class_weights", None)
        if weights is not None and len(weights) != self.num_outputs:
            raise ValueError(
                f"config.class_weights has {len(weights)} entries for {self.num_outputs} classes; give one per class."
            )
        weight = None if weights is None else torch.tensor(weights, dtype=logits.dtype, device=logits.device)
        return F.cross_entropy(logits, labels.reshape(-1).long(), weight=weight)


class QualityFMForABPRegression(QualityFMTaskHead):
    """Systolic and diastolic arterial pressure in mmHg from PPG + ECG (paper notes §5.3).

    `logits` `(batch, 2)` are `[SBP, DBP]` in mmHg. The linear layer predicts labels standardised with
    `config.label_mean` / `config.label_std` (set them from the training labels), so the loss (`config.regression_loss`:
    "mse" or "smooth_l1") is in normalised units while outputs are in mmHg. `labels`: `(batch, 2)` mmHg.
    """

    def __init__(self, config: QualityFMConfig):
        loss = getattr(config, "regression_loss", "mse")
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"config.regression_loss is {loss!r}, but has to be one of {list(REGRESSION_LOSSES)}.")
        super().__init__(config, num_outputs=2)

    def _scale(self, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = getattr(self.config, "label_mean", None) or [0.0] * self.num_outputs
        std = getattr(self.config, "label_std", None) or [1.0] * self.num_outputs
        if len(mean) != self.num_outputs or len(std) != self.num_outputs or min(std) <= 0:
            raise ValueError(
                f"config.label_mean {mean} and config.label_std {std} must each have {self.num_outputs} entries "
                "([SBP, DBP], mmHg) with std > 0; compute them from the training labels."
            )
        as_tensor = lambda v: torch.tensor(v, dtype=reference.dtype, device=reference.device)  # noqa: E731
        return as_tensor(mean), as_tensor(std)

    def transform_logits(self, raw):
        mean, std = self._scale(raw)
        return raw * std + mean

    def compute_loss(self, raw, labels):
        labels = labels.to(raw.dtype)
        if labels.shape != raw.shape:
            raise ValueError(f"ABP labels must be (batch, 2) = [SBP, DBP] mmHg; got {tuple(labels.shape)}.")
        mean, std = self._scale(raw)
        target = (labels - mean) / std
        if getattr(self.config, "regression_loss", "mse") == "smooth_l1":
            return F.smooth_l1_loss(raw, target)
        return F.mse_loss(raw, target)


__all__ = [
    "QualityFMTaskHead",
    "QualityFMForVTFalseAlarm",
    "QualityFMForAFClassification",
    "QualityFMForABPRegression",
]
