"""QualityFM configuration.

Every number of the presets comes from the paper notes (shared/reference/qualityfm-paper-notes.md §1).
This file ships as Hub remote code: it imports only transformers, huggingface_hub and the standard library.
"""

from __future__ import annotations

import functools
import operator

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# Paper sizes (§1.5). Parameter counts are of `QualityFMForPretraining` (encoder + decoder + spectral heads),
# asserted exactly in tests/test_modeling.py.
PRESETS: dict[str, dict] = {
    # 9,576,714 params (encoder alone 4,255,005)
    "base": dict(num_attention_heads=4, num_hidden_layers=2, intermediate_size=256),
    # 70,589,706 params (encoder alone 34,761,501)
    "large": dict(num_attention_heads=4, num_hidden_layers=21, intermediate_size=512),
    # 319,552,778 params (encoder alone 159,243,037)
    "huge": dict(num_attention_heads=8, num_hidden_layers=50, intermediate_size=2048),
}

POOLING_CHOICES = ("mean", "first", "max")
SPECTRAL_TARGETS = ("magnitude", "power", "log_power")
DISTILLATION_TARGETS = ("tokens", "pooled")
REGRESSION_LOSSES = ("mse", "smooth_l1")


@strict
class QualityFMConfig(PreTrainedConfig):
    r"""
    Configuration of a QualityFM encoder (and its spectral decoder, task heads and self-distillation wrapper).

    The defaults are the paper's QualityFM-Base. Use `QualityFMConfig.from_preset("base" | "large" | "huge")`
    for the three published sizes.

    Args:
        hidden_size (`int`, defaults to 512): token width d.
        num_attention_heads (`int`, defaults to 4): attention heads; must divide `hidden_size`.
        num_hidden_layers (`int`, defaults to 2): post-LN encoder layers (the decoder has as many).
        intermediate_size (`int`, defaults to 256): FFN width.
        window_size (`int`, defaults to 8): the paper's window w; token i attends to j iff |i - j| <= w/2.
            Must be even. Token 0 is global (attends to and is attended by every token).
        num_channels (`int`, defaults to 2): input channels, in the order of `channel_names`.
        channel_names (`tuple[str]`, defaults to ("PPG", "ECG_II")): channel order of `input_values`.
        sampling_rate (`int`, defaults to 300): Hz the model was trained at; the feature extractor resamples to it.
        segment_seconds (`float`, defaults to 30.0): pretraining window length (30 s -> 18 tokens).
        conv_dim / conv_kernel / conv_stride (`tuple[int]`): the TemporalConv tokenizer, 2 -> 5 -> 51 -> 512
            channels, kernels 201/101/51, strides 5/10/10 (total stride 500 samples = 1.67 s per token).
        hidden_dropout (`float`, defaults to 0.1): dropout on residual branches.
        attention_dropout (`float`, defaults to 0.1): dropout on attention probabilities.
        activation_dropout (`float`, defaults to 0.1): dropout after the FFN activation.
        layer_norm_eps (`float`, defaults to 1e-5)
        initializer_range (`float`, defaults to 0.02): std of the normal init of Linear/Conv weights.
        num_fft_bins (`int`, defaults to 512): spectral bins the decoder predicts (512 bins at 1/30 Hz ≈ 0–17 Hz).
        pooling (`str`, defaults to "mean"): how heads pool tokens: "mean" over real tokens, "first" (the
            global token 0) or "max".
        classifier_dropout (`float`, defaults to 0.1): dropout before a task head's linear layer.
        use_absent_channel_embedding (`bool`, defaults to False): beyond the paper. Adds a learned vector per
            channel to every token when that channel is absent (`channel_mask` 0), so the encoder can tell
            "missing" from "flat". Extra parameters: num_channels × hidden_size (1,024 for the presets).
        modality_dropout (`float`, defaults to 0.0): beyond the paper. Probability, per pretraining pair, of
            masking one modality of the student input so the encoder learns to cope with a missing channel.
        teacher_temperature / student_temperature / center_momentum: DINO-style sharpening and centering of the
            distillation loss (paper notes §3.1: 0.04, 0.1, 0.9). `teacher_temperature` is the value after warm-up.
        teacher_temperature_start (`float`, *optional*): beyond the paper. When set, the teacher temperature rises
            linearly from it to `teacher_temperature` over the first `teacher_temperature_warmup_fraction` of the
            steps (DINO: 0.04 -> 0.07); None keeps `teacher_temperature` throughout (the paper).
        teacher_temperature_warmup_fraction (`float`, defaults to 0.0): fraction of the optimiser steps of that
            warm-up.
        teacher_momentum_start / teacher_momentum_end: cosine EMA schedule of the teacher (0.7 -> 1.0, §2).
        distillation_target (`str`, defaults to "tokens"): what teacher and student match. "tokens" is the paper's
            per-token cross-entropy on the raw 512-d encoder tokens (§3.1), although token i of one window has no
            time correspondence with token i of a window minutes away. "pooled" (beyond the paper, DINO's
            image-level loss) matches the pooled window embedding through a projection head (MLP -> L2-normalised
            bottleneck -> weight-normalised prototypes) with a per-prototype centre.
        projection_hidden_size / projection_bottleneck_size / num_prototypes (`int`, defaults to 1024 / 256 / 512):
            the projection head of the "pooled" target (DINO: 2048 / 256 / 65,536 for ImageNet; fewer prototypes
            for thousands of windows). The head is used in pretraining only; the encoder's parameters do not change.
        distillation_loss_weight (`float`, defaults to 1.0): weight of the distillation term.
        koleo_loss_weight (`float`, defaults to 0.0): beyond the paper. Weight of the KoLeo spread term on the
            student's pooled embeddings (DINOv2 uses 0.1).
        amplitude_loss_weight / phase_loss_weight: weights of the spectral losses (0.1 each, §3.3).
        spectral_target (`str`, defaults to "magnitude"): "magnitude" |X| as in the reference code, "power" |X|² as
            the paper's wording says (§1.4), or "log_power" (beyond the paper): the log of the smoothed power
            spectrum of the mean-removed window, which carries a learnable envelope (`loss_qualityfm.log_power_spectrum`).
        band_power_loss_weight (`float`, defaults to 0.0): beyond the paper. Weight of a pooled spectral term: a
            linear head on the student's pooled embedding predicts the better window's log band powers
            (`loss_qualityfm.log_band_powers`), so the window embedding itself, the one heads and probes use, must
            carry the spectrum. The head is used in pretraining only. 0 builds no head.
        num_band_powers (`int`, defaults to 64) / band_power_low_hz / band_power_high_hz (`float`, defaults to
            0.5 / 20.0): log-spaced bands of that target, per channel.
        quality_loss_weight (`float`, defaults to 0.0): beyond the paper. Weight of a quality term: a linear head on
            the student's pooled embedding predicts the quality score of each channel of the window it sees, as the
            pair builder scored it (`loss_qualityfm.quality_score_loss`). The paper's pairs use those scores only to
            say which window is better, and predicting the better window's spectrum from the worse rewards an
            embedding that ignores quality; this term makes the embedding carry it. 0 builds no head.
        rhythm_loss_weight (`float`, defaults to 0.0): beyond the paper. Weight of a rhythm term: a linear head on
            the student's pooled embedding predicts `num_rhythm_features` statistics of the RR intervals of the ECG
            of the window it sees (heart rate, variability, irregularity, beat-shape consistency; computed from the
            signal by the data pipeline, `qualityfm_hf.pretraining.collator.rhythm_targets`), so the window embedding carries
            the rhythm that AF and VT alarms turn on. 0 builds no head.
        num_rhythm_features (`int`, defaults to 8): size of that target.
        student_crop_min_seconds (`float`, defaults to 0.0): beyond the paper. When > 0 the student sees a random
            crop of its window, from this many seconds to the whole window, renormalised and right-padded (the
            collator applies it), so the pooled embedding also fits the shorter windows of downstream tasks.
        same_window_fraction (`float`, defaults to 0.0): beyond the paper. Fraction of pretraining items whose
            student sees an independently augmented copy of the teacher's window instead of the worse window of the
            pair; the collator applies it.
        classifier_rhythm_features (`int`, defaults to 0): beyond the paper. When > 0, a task head's linear layer
            also reads this many standardised ECG rhythm statistics of the window (`rhythm_features`, from the
            feature extractor with `rhythm_features=True`; `rhythm_qualityfm.RHYTHM_FEATURE_NAMES`) beside the
            pooled embedding. The AF recipe turns it on: the encoder alone does not learn to time beats from a few
            hundred records (benchmarks/CLINICAL.md).
        decision_threshold (`float`, *optional*): classification threshold chosen on validation data by
            fine-tuning; None means 0.5.
        pos_weight (`float`, *optional*): BCE weight of the positive class of binary heads (the VT task is
            imbalanced); fine-tuning sets it from the training split. None means 1.
        class_weights (`list[float]`, *optional*): cross-entropy class weights of multi-class heads.
        regression_loss (`str`, defaults to "mse"): "mse" or "smooth_l1" for the ABP head.
        label_mean / label_std (`list[float]`, *optional*): ABP label scaling from the training split; the head
            predicts normalised units and returns mmHg.
        train_naive_mae (`list[float]`, *optional*): MAE of the training-mean predictor, the MASE denominator.
    """

    model_type = "qualityfm"

    hidden_size: int = 512
    num_attention_heads: int = 4
    num_hidden_layers: int = 2
    intermediate_size: int = 256
    window_size: int = 8
    num_channels: int = 2
    channel_names: list[str] | tuple[str, ...] = ("PPG", "ECG_II")
    sampling_rate: int = 300
    segment_seconds: float | int = 30.0
    conv_dim: list[int] | tuple[int, ...] = (5, 51, 512)
    conv_kernel: list[int] | tuple[int, ...] = (201, 101, 51)
    conv_stride: list[int] | tuple[int, ...] = (5, 10, 10)
    hidden_dropout: float | int = 0.1
    attention_dropout: float | int = 0.1
    activation_dropout: float | int = 0.1
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    num_fft_bins: int = 512
    pooling: str = "mean"
    classifier_dropout: float | int = 0.1
    use_absent_channel_embedding: bool = False
    modality_dropout: float | int = 0.0
    teacher_temperature: float = 0.04
    teacher_temperature_start: float | None = None
    teacher_temperature_warmup_fraction: float | int = 0.0
    student_temperature: float = 0.1
    center_momentum: float = 0.9
    teacher_momentum_start: float = 0.7
    teacher_momentum_end: float = 1.0
    distillation_target: str = "tokens"
    projection_hidden_size: int = 1024
    projection_bottleneck_size: int = 256
    num_prototypes: int = 512
    distillation_loss_weight: float | int = 1.0
    koleo_loss_weight: float | int = 0.0
    amplitude_loss_weight: float | int = 0.1
    phase_loss_weight: float | int = 0.1
    spectral_target: str = "magnitude"
    band_power_loss_weight: float | int = 0.0
    num_band_powers: int = 64
    band_power_low_hz: float | int = 0.5
    band_power_high_hz: float | int = 20.0
    quality_loss_weight: float | int = 0.0
    rhythm_loss_weight: float | int = 0.0
    num_rhythm_features: int = 8
    student_crop_min_seconds: float | int = 0.0
    same_window_fraction: float | int = 0.0
    classifier_rhythm_features: int = 0
    decision_threshold: float | None = None
    pos_weight: float | int | None = None
    class_weights: list[float] | None = None
    regression_loss: str = "mse"
    label_mean: list[float] | None = None
    label_std: list[float] | None = None
    train_naive_mae: list[float] | float | None = None

    def __post_init__(self, **kwargs):
        # JSON round-trips tuples as lists; keep one canonical form so configs compare equal.
        self.channel_names = tuple(self.channel_names)
        self.conv_dim = tuple(self.conv_dim)
        self.conv_kernel = tuple(self.conv_kernel)
        self.conv_stride = tuple(self.conv_stride)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject impossible combinations, naming every value involved (run by `@strict`)."""
        problems = []
        if self.window_size < 2 or self.window_size % 2:
            problems.append(
                f"window_size must be an even number >= 2 (token i sees |i - j| <= window_size/2); "
                f"got {self.window_size}"
            )
        if self.hidden_size % self.num_attention_heads:
            problems.append(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if not (len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride)):
            problems.append(
                f"conv_dim, conv_kernel and conv_stride must have one entry per conv layer; got lengths "
                f"{len(self.conv_dim)}, {len(self.conv_kernel)}, {len(self.conv_stride)}"
            )
        elif self.conv_dim[-1] != self.hidden_size:
            problems.append(f"conv_dim[-1] ({self.conv_dim[-1]}) must equal hidden_size ({self.hidden_size})")
        if len(self.channel_names) != self.num_channels:
            problems.append(
                f"channel_names {tuple(self.channel_names)} must have num_channels ({self.num_channels}) entries"
            )
        if self.pooling not in POOLING_CHOICES:
            problems.append(f"pooling is {self.pooling!r}, but has to be one of {list(POOLING_CHOICES)}")
        if self.regression_loss not in REGRESSION_LOSSES:
            problems.append(
                f"regression_loss is {self.regression_loss!r}, but has to be one of {list(REGRESSION_LOSSES)}"
            )
        if self.classifier_rhythm_features < 0:
            problems.append(f"classifier_rhythm_features must be >= 0; got {self.classifier_rhythm_features}")
        if self.pos_weight is not None and self.pos_weight <= 0:
            problems.append(f"pos_weight must be > 0; got {self.pos_weight}")
        if self.spectral_target not in SPECTRAL_TARGETS:
            problems.append(
                f"spectral_target is {self.spectral_target!r}, but has to be one of {list(SPECTRAL_TARGETS)}"
            )
        if self.distillation_target not in DISTILLATION_TARGETS:
            problems.append(
                f"distillation_target is {self.distillation_target!r}, but has to be one of {list(DISTILLATION_TARGETS)}"
            )
        if not 0.0 <= self.teacher_temperature_warmup_fraction <= 1.0 or not 0.0 <= self.same_window_fraction <= 1.0:
            problems.append(
                "teacher_temperature_warmup_fraction and same_window_fraction must be in [0, 1]; got "
                f"{self.teacher_temperature_warmup_fraction} and {self.same_window_fraction}"
            )
        if not 0.0 <= self.student_crop_min_seconds <= self.segment_seconds:
            problems.append(
                f"student_crop_min_seconds must be in [0, segment_seconds ({self.segment_seconds})]; got "
                f"{self.student_crop_min_seconds}"
            )
        temperatures = (self.teacher_temperature, self.student_temperature, self.teacher_temperature_start)
        if any(t is not None and t <= 0 for t in temperatures):
            problems.append(
                "teacher_temperature, student_temperature and teacher_temperature_start must be > 0; got "
                f"{self.teacher_temperature}, {self.student_temperature}, {self.teacher_temperature_start}"
            )
        for name in ("hidden_dropout", "attention_dropout", "activation_dropout", "classifier_dropout",
                     "modality_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                problems.append(f"{name} must be in [0, 1); got {value}")
        if not 0.0 <= self.teacher_momentum_start <= self.teacher_momentum_end <= 1.0:
            problems.append(
                "teacher momentum must satisfy 0 <= start <= end <= 1; got "
                f"{self.teacher_momentum_start} -> {self.teacher_momentum_end}"
            )
        if self.sampling_rate <= 0 or self.segment_seconds <= 0:
            problems.append(
                f"sampling_rate ({self.sampling_rate}) and segment_seconds ({self.segment_seconds}) must be > 0"
            )
        if problems:
            raise ValueError("Invalid QualityFMConfig: " + "; ".join(problems) + ".")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> QualityFMConfig:
        """The paper's sizes: "base" (9.6 M), "large" (70.6 M) or "huge" (319.6 M); `overrides` win."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def total_stride(self) -> int:
        """Samples per token (500 at the paper's strides): inputs are padded to a multiple of it."""
        return functools.reduce(operator.mul, self.conv_stride, 1)

    @property
    def half_window(self) -> int:
        """|i - j| bound of the band: the paper stores the full window w, the mask uses w/2."""
        return self.window_size // 2

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sampling_rate))

    @property
    def segment_tokens(self) -> int:
        """Tokens of one pretraining segment (18 for 30 s at 300 Hz); the decoder reads them as channels."""
        return self.num_tokens(self.segment_samples)

    def num_tokens(self, num_samples: int) -> int:
        """Token count the tokenizer gives for `num_samples` samples (conv arithmetic, padding = kernel // 2)."""
        length = num_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = (length + 2 * (kernel // 2) - kernel) // stride + 1
        return length


__all__ = ["QualityFMConfig", "PRESETS"]
