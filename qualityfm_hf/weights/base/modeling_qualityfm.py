"""QualityFM: encoder, spectral decoder and pretraining architecture (paper notes §1).

Reads top to bottom: tokenizer (`QualityFMTemporalConv`) -> attention -> encoder layer -> transformer stack ->
`QualityFMModel` (the encoder users fine-tune) -> `QualityFMForPretraining` (encoder + spectral decoder, the exact
paper architecture). Task heads live in `heads_qualityfm.py`, the self-distillation wrapper in
`distillation_qualityfm.py`. This file ships as Hub remote code: torch, transformers and siblings only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from .attention_qualityfm import (
    BLOCKED_BACKEND,
    SUPPORTED_BACKENDS,
    eager_windowed_attention,
    windowed_mask,
)
from .configuration_qualityfm import QualityFMConfig

# Above this many tokens the "sdpa" default hands over to the O(n·w) backend: the dense band mask costs
# O(n²) memory (about 1 GB at 7,500 tokens) while both give the same numbers.
LONG_SEQUENCE_TOKENS = 512


# ----------------------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class QualityFMModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, tokens, hidden_size)`): encoder output U.
        pooler_output (`torch.FloatTensor` of shape `(batch, hidden_size)`): tokens pooled by `config.pooling`.
        token_mask (`torch.BoolTensor` of shape `(batch, tokens)`): True for tokens covering real samples.
        hidden_states (`tuple[torch.FloatTensor]`, *optional*): input of each layer plus the final layer output.
        attentions (`tuple[torch.FloatTensor]`, *optional*): `(batch, heads, tokens, tokens)` per layer (eager).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    token_mask: torch.BoolTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class QualityFMForPretrainingOutput(ModelOutput):
    """
    Args:
        loss: always None here; the self-distillation wrapper computes the losses.
        amplitude (`torch.FloatTensor` of shape `(batch, num_channels, num_fft_bins)`): predicted z-scored
            amplitude spectrum of the better window, one row per input channel.
        phase (`torch.FloatTensor` of shape `(batch, num_channels, num_fft_bins)`): predicted z-scored phase.
        last_hidden_state (`torch.FloatTensor` of shape `(batch, tokens, hidden_size)`): encoder output U.
    """

    loss: torch.FloatTensor | None = None
    amplitude: torch.FloatTensor | None = None
    phase: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    token_mask: torch.BoolTensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer


LARGE_INPUT = 1e6  # |input_values| beyond this are rescaled by the tokenizer (see QualityFMTemporalConv.forward)


class QualityFMGroupNorm(nn.GroupNorm):
    """GroupNorm(1 group) whose statistics cover real time steps only.

    Without a mask it is exactly `nn.GroupNorm`. With one, padding does not shift the statistics, so a window's
    tokens do not depend on how much padding the batch added.
    """

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`hidden` (B, C, T); `mask` (B, T) True for real steps."""
        if mask is None:
            return super().forward(hidden)
        # The masked statistics are written once, for the channels-last layout.
        return self.forward_channels_last(hidden.transpose(1, 2), mask).transpose(1, 2)

    def forward_channels_last(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Same numbers as `forward` on `hidden` (B, T, C), the layout the matmul tokenizer produces."""
        if mask is None:
            # One group = statistics over all of (T, C) per sample: exactly layer_norm over the last two dims.
            normed = nn.functional.layer_norm(hidden, hidden.shape[1:], eps=self.eps)
            return torch.addcmul(self.bias, normed, self.weight)
        mask = mask[:, :, None].to(hidden.dtype)  # (B, T, 1)
        count = mask.sum(dim=(1, 2), keepdim=True) * hidden.shape[2]
        mean = (hidden * mask).sum(dim=(1, 2), keepdim=True) / count
        var = (((hidden - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / count
        hidden = (hidden - mean) / torch.sqrt(var + self.eps)
        return torch.addcmul(self.bias, hidden, self.weight) * mask


def conv1d_as_matmul(hidden: torch.Tensor, conv: nn.Conv1d, group: int) -> torch.Tensor:
    """`conv(hidden)` (odd kernel, padding = kernel // 2, stride s) as one GEMM, in (B, T, C) layout.

    Why: oneDNN runs the tokenizer's first conv (2 -> 5 channels, kernel 201, stride 5) at a few GFLOP/s, half of
    the encoder's time. Here `group` consecutive outputs share one patch of span = s·(group − 1) + kernel input
    steps, and a block-Toeplitz weight built from `conv.weight` maps the patch to group × C_out outputs: a GEMM with
    N = group·C_out instead of C_out. In (B, T, C) layout a patch is one contiguous run of span·C_in values, so
    `unfold` on the flattened signal cuts the patches (its backward is cheap). The Toeplitz zeros cost
    span / kernel − 1 extra FLOPs; worth it while C_out is small. Parameters and state_dict are `conv`'s own.

    Args:
        hidden (`torch.Tensor` of shape `(B, T, C_in)`): channels last.
        conv (`nn.Conv1d`): supplies weight `(C_out, C_in, kernel)`, bias and stride.
        group (`int`): outputs per patch; 1 is plain im2col.

    Returns:
        `torch.Tensor` of shape `(B, T_out, C_out)`, T_out = (T − 1) // s + 1.
    """
    c_out, c_in, kernel = conv.weight.shape
    stride, pad = conv.stride[0], kernel // 2
    batch, length, _ = hidden.shape
    t_out = (length + 2 * pad - kernel) // stride + 1
    rows = -(-t_out // group)
    span = stride * (group - 1) + kernel
    right = max((rows - 1) * group * stride + span - length - pad, 0)
    flat = nn.functional.pad(hidden, (0, 0, pad, right)).reshape(batch, -1)
    patches = flat.unfold(1, span * c_in, group * stride * c_in).reshape(batch * rows, span * c_in)
    weight, bias = gemm_weight(conv, group)
    out = patches @ weight if bias is None else torch.addmm(bias, patches, weight)
    return out.view(batch, rows * group, c_out)[:, :t_out]


def gemm_weight(conv: nn.Conv1d, group: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The `(span·C_in, group·C_out)` GEMM weight and `(group·C_out,)` bias of `conv1d_as_matmul`.

    Building it copies the whole weight (about 5 MB for the base model's last conv), so without autograd it is
    cached on the conv and rebuilt only when the weight changes:
    an in-place update bumps the weight's version counter, and `.to()`/`load_state_dict(assign=True)` give it new
    storage. The cache holds that storage, so its address cannot be reused by a different weight while cached.
    """
    weight = conv.weight
    key = None
    if not torch.is_grad_enabled() and not torch.is_inference(weight):
        key = (weight.untyped_storage().data_ptr(), weight._version, weight.dtype, weight.device, group,
               None if conv.bias is None else (conv.bias.untyped_storage().data_ptr(), conv.bias._version))
        cached = getattr(conv, "_qualityfm_gemm_weight", None)
        if cached is not None and cached[0] == key:
            return cached[2], cached[3]
    c_out, c_in, kernel = weight.shape
    stride = conv.stride[0]
    span = stride * (group - 1) + kernel
    if group == 1:
        # Rows in (kernel step, C_in) order, as the patches hold them. Transposing each output channel's small
        # (C_in, kernel) block and handing the GEMM the transposed view is far cheaper than permuting the whole
        # weight to (kernel, C_in, C_out): that strided copy (and its mirror in backward) cost 8% of a base step.
        matrix = weight.transpose(1, 2).reshape(c_out, kernel * c_in).t()
    else:
        matrix = weight.permute(2, 1, 0)  # (kernel, C_in, C_out)
        offset = torch.arange(span, device=weight.device)[:, None] - stride * torch.arange(group, device=weight.device)
        inside = ((offset >= 0) & (offset < kernel)).to(weight.dtype)
        matrix = matrix[offset.clamp(0, kernel - 1)] * inside[:, :, None, None]  # (span, G, C_in, C_out)
        matrix = matrix.transpose(1, 2).reshape(span * c_in, group * c_out)  # (span, C_in, G, C_out)
    bias = None if conv.bias is None else conv.bias.repeat(group)
    if key is not None:
        storages = (weight.untyped_storage(), None if conv.bias is None else conv.bias.untyped_storage())
        conv._qualityfm_gemm_weight = (key, storages, matrix, bias)
    return matrix, bias


class QualityFMTemporalConv(nn.Module):
    """Three strided Conv1d -> GroupNorm(1) -> GELU layers: (B, C_in, T) -> (B, T / 500, hidden_size).

    The channels are fused in the first convolution: there is no per-modality track (§1.2). On CPU the convs run as
    GEMMs in (B, T, C) layout (`conv1d_as_matmul`), which also hands the tokens to the layers contiguous; set
    `use_matmul_conv = False` for the plain `nn.Conv1d` path (same parameters, same numbers within float rounding).
    """

    use_matmul_conv: bool = True
    # Outputs per GEMM row: about 100 columns (C_out·group) keeps the GEMM efficient without many Toeplitz zeros.
    matmul_columns: int = 100

    def __init__(self, config: QualityFMConfig, in_channels: int):
        super().__init__()
        dims = (in_channels,) + tuple(config.conv_dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(dims[i], dims[i + 1], kernel, stride=stride, padding=kernel // 2)
            for i, (kernel, stride) in enumerate(zip(config.conv_kernel, config.conv_stride))
        )
        self.norms = nn.ModuleList(QualityFMGroupNorm(1, dim) for dim in config.conv_dim)
        self.activation = nn.GELU()

    def forward(self, signal: torch.Tensor, lengths: torch.Tensor | None = None):
        """`lengths` (batch,) counts real samples; returns tokens and the token lengths."""
        # GroupNorm follows the first conv, so the tokens hardly depend on the input's scale, but float32 statistics
        # overflow (NaN) from about 1e18. A window beyond ±LARGE_INPUT, far outside the feature extractor's
        # [-1, 1], is scaled by 1 / its peak first; any other window is multiplied by exactly 1, i.e. untouched.
        peak = signal.detach().abs().amax(dim=(1, 2), keepdim=True)
        signal = signal * torch.where(peak > LARGE_INPUT, 1.0 / peak.clamp(min=1.0), torch.ones_like(peak))
        matmul = self.use_matmul_conv and signal.device.type == "cpu"
        hidden = signal.transpose(1, 2).contiguous() if matmul else signal
        for conv, norm in zip(self.convs, self.norms):
            if matmul:
                group = max(1, round(self.matmul_columns / conv.out_channels))
                hidden = conv1d_as_matmul(hidden, conv, group)  # (B, T, C)
            else:
                hidden = conv(hidden)  # (B, C, T)
            mask = None
            if lengths is not None:
                # padding = kernel // 2 with an odd kernel: output t is real iff t < (n - 1) // stride + 1
                lengths = torch.div(lengths - 1, conv.stride[0], rounding_mode="floor") + 1
                steps = hidden.shape[1] if matmul else hidden.shape[-1]
                mask = torch.arange(steps, device=hidden.device)[None, :] < lengths[:, None]
            if matmul:
                hidden = self.activation(norm.forward_channels_last(hidden, mask))
                if mask is not None:
                    hidden = hidden * mask[:, :, None]  # padded steps stay zero, as the next conv's own padding
            else:
                hidden = self.activation(norm(hidden, mask))
                if mask is not None:
                    hidden = hidden * mask[:, None, :]
        return (hidden if matmul else hidden.transpose(1, 2)), lengths  # (B, tokens, hidden)


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed sinusoidal absolute positions, shape (length, dim); computed for any length (§1.2)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: dim // 2])
    return table.to(dtype)


# ----------------------------------------------------------------------------------------------------------------
# Attention and layers


class QualityFMAttention(nn.Module):
    """Multi-head windowed sparse attention; the backend comes from `config._attn_implementation`."""

    def __init__(self, config: QualityFMConfig, layer_idx: int | None = None):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, backend: str):
        batch, length, _ = hidden.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden).view(shape).transpose(1, 2)  # (B, H, L, D)
        key = self.k_proj(hidden).view(shape).transpose(1, 2)
        value = self.v_proj(hidden).view(shape).transpose(1, 2)
        attention_fn = ALL_ATTENTION_FUNCTIONS.get_interface(backend, eager_windowed_attention)
        output, weights = attention_fn(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.config.attention_dropout if self.training else 0.0,
            is_causal=False,
        )
        return self.o_proj(output.reshape(batch, length, -1)), weights


class QualityFMEncoderLayer(GradientCheckpointingLayer):
    """Post-LN layer (§1.3): x = LN(x + Drop(Attn(x))); x = LN(x + Drop(W2 Drop(GELU(W1 x))))."""

    def __init__(self, config: QualityFMConfig, layer_idx: int | None = None):
        super().__init__()
        self.attention = QualityFMAttention(config, layer_idx)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = nn.GELU()
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.activation_dropout = nn.Dropout(config.activation_dropout)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, backend: str):
        attended, weights = self.attention(hidden, attention_mask, backend)
        hidden = self.attention_norm(hidden + self.dropout(attended))
        feed_forward = self.fc2(self.activation_dropout(self.activation(self.fc1(hidden))))
        hidden = self.final_norm(hidden + self.dropout(feed_forward))
        return hidden, weights


class QualityFMTransformer(nn.Module):
    """Tokenizer + sinusoidal positions + windowed-attention layers + Linear(d, d) output (§1.2–1.3).

    The encoder reads the waveform (`in_channels` = 2); the spectral decoder reads the encoder output with its 18
    tokens as channels (`in_channels` = 18), which is why both share this class.
    """

    def __init__(self, config: QualityFMConfig, in_channels: int):
        super().__init__()
        self.config = config
        self.temporal_conv = QualityFMTemporalConv(config, in_channels)
        self.layers = nn.ModuleList(QualityFMEncoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.output_projection = nn.Linear(config.hidden_size, config.hidden_size)
        self.gradient_checkpointing = False

    def attention_backend(self, num_tokens: int, output_attentions: bool) -> str:
        backend = self.config._attn_implementation or "sdpa"
        if output_attentions:
            return "eager"  # only eager materialises the weights
        if backend not in SUPPORTED_BACKENDS:
            raise ValueError(
                f"attn_implementation is {backend!r}, but QualityFM supports {list(SUPPORTED_BACKENDS)}. "
                f"Use `model.set_attn_implementation('{BLOCKED_BACKEND}')` for long inputs."
            )
        if backend == "sdpa" and num_tokens > LONG_SEQUENCE_TOKENS:
            return BLOCKED_BACKEND
        return backend

    def forward(
        self,
        signal: torch.Tensor,
        lengths: torch.Tensor | None = None,
        token_offset: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ):
        hidden, token_lengths = self.temporal_conv(signal, lengths)  # (B, L, d)
        batch, num_tokens, dim = hidden.shape
        if token_offset is not None:
            hidden = hidden + token_offset[:, None, :]
        hidden = hidden + sinusoidal_positions(num_tokens, dim, hidden.device, hidden.dtype)
        if token_lengths is None:
            token_mask = torch.ones(batch, num_tokens, dtype=torch.bool, device=hidden.device)
        else:
            token_mask = torch.arange(num_tokens, device=hidden.device)[None, :] < token_lengths[:, None]

        backend = self.attention_backend(num_tokens, output_attentions)
        # Build the mask once per forward (as ModernBERT): dense backends take the band, the blocked one the
        # key-padding mask from which it derives the band block by block.
        mask = token_mask if backend == BLOCKED_BACKEND else windowed_mask(token_mask, self.config.half_window)

        all_hidden, all_weights = (), ()
        for layer in self.layers:
            if output_hidden_states:
                all_hidden += (hidden,)
            hidden, weights = layer(hidden, mask, backend)
            if output_attentions:
                all_weights += (weights,)
        hidden = self.output_projection(hidden)
        if output_hidden_states:
            all_hidden += (hidden,)
        return hidden, token_mask, all_hidden or None, all_weights or None


# ----------------------------------------------------------------------------------------------------------------
# Models


class QualityFMPreTrainedModel(PreTrainedModel):
    config: QualityFMConfig
    config_class = QualityFMConfig  # explicit, for remote-code users on older 5.x
    base_model_prefix = "qualityfm"
    main_input_name = "input_values"
    input_modalities = ("time",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["QualityFMEncoderLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True
    # Losses are per-batch means: the Trainer must divide them for gradient accumulation itself.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, QualityFMModel) and module.absent_channel_embedding is not None:
            init.normal_(module.absent_channel_embedding, mean=0.0, std=self.config.initializer_range)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `custom_object_save` writes only the saved class's own Auto entry. Point AutoModel at the saved class too,
        # so `AutoModel.from_pretrained(ckpt, trust_remote_code=True)` returns what the checkpoint holds (a head for
        # a fine-tuned checkpoint), as the in-process registration does through `architectures`.
        if getattr(self, "_auto_class", None) is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map["AutoConfig"] = "configuration_qualityfm.QualityFMConfig"
            auto_map["AutoModel"] = f"{module}.{type(self).__name__}"
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


def check_input_values(config: QualityFMConfig, input_values, attention_mask=None, channel_mask=None):
    """Validate the model's inputs once, at the boundary, with expected / found / fix in each message."""
    names = ", ".join(config.channel_names)
    if not isinstance(input_values, torch.Tensor):
        raise ValueError(
            f"input_values must be a torch.Tensor of shape (batch, {config.num_channels}, time) = [{names}]; got "
            f"{type(input_values).__name__}. Use QualityFMFeatureExtractor(..., return_tensors='pt')."
        )
    if input_values.ndim != 3 or input_values.shape[1] != config.num_channels:
        hint = (
            " WFDB arrays are (samples, channels): transpose, or use QualityFMFeatureExtractor."
            if input_values.ndim >= 2 and input_values.shape[-1] == config.num_channels
            else " A single window needs a batch axis: input_values[None]."
            if input_values.ndim == 2
            else ""
        )
        raise ValueError(
            f"input_values must be (batch, {config.num_channels}, time) = [{names}]; got "
            f"{tuple(input_values.shape)}.{hint}"
        )
    if not input_values.is_floating_point():
        raise ValueError(
            f"input_values must be a floating-point tensor (float32, bfloat16, ...); got {input_values.dtype}. "
            "Convert with input_values.float()."
        )
    # One reduction first: a finite sum proves every value finite (NaN/inf propagate); only a non-finite sum (NaN, inf,
    # or an overflow of huge finite values) pays for the element-wise check.
    if not torch.isfinite(input_values.sum()) and not torch.isfinite(input_values).all():
        bad = int((~torch.isfinite(input_values)).sum())
        raise ValueError(
            f"input_values holds {bad} NaN/inf values; the model needs finite input. QualityFMFeatureExtractor "
            "interpolates short NaN gaps and rejects windows with more than 20% NaN."
        )
    if input_values.shape[-1] < config.total_stride:
        raise ValueError(
            f"input_values has {input_values.shape[-1]} samples per channel; one token needs at least "
            f"{config.total_stride} ({config.total_stride / config.sampling_rate:.2f} s at {config.sampling_rate} "
            "Hz). Pass a longer window."
        )
    batch, _, time = input_values.shape
    if attention_mask is not None:
        if tuple(attention_mask.shape) != (batch, time):
            raise ValueError(
                f"attention_mask must be (batch, time) = {(batch, time)} to match input_values; got "
                f"{tuple(attention_mask.shape)}."
            )
        if (attention_mask.sum(-1) < 1).any():
            raise ValueError("attention_mask marks a sample with no real samples; drop that window from the batch.")
    if channel_mask is not None and tuple(channel_mask.shape) != (batch, config.num_channels):
        raise ValueError(
            f"channel_mask must be (batch, {config.num_channels}) with 1 = channel present ([{names}]); got "
            f"{tuple(channel_mask.shape)}."
        )


def pool_tokens(hidden: torch.Tensor, token_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, L, d) -> (B, d) over real tokens only."""
    if pooling == "first":
        return hidden[:, 0]
    mask = token_mask[:, :, None]
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    if pooling == "max":
        return hidden.masked_fill(~mask, torch.finfo(hidden.dtype).min).max(1).values
    raise ValueError(f"pooling is {pooling!r}, but has to be one of ['mean', 'first', 'max']")


class QualityFMModel(QualityFMPreTrainedModel):
    """The QualityFM encoder: (batch, 2, time) waveforms at 300 Hz -> (batch, time / 500, hidden_size) tokens."""

    def __init__(self, config: QualityFMConfig):
        super().__init__(config)
        self.encoder = QualityFMTransformer(config, config.num_channels)
        self.absent_channel_embedding = (
            nn.Parameter(torch.zeros(config.num_channels, config.hidden_size))
            if config.use_absent_channel_embedding
            else None
        )
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        channel_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> QualityFMModelOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, 2, time)`): [PPG, ECG_II] at `config.sampling_rate`
                Hz, as made by `QualityFMFeatureExtractor` (joint min-max to [-1, 1] for pretrained checkpoints).
            attention_mask (`torch.LongTensor` of shape `(batch, time)`, *optional*): 1 for real samples, 0 for
                right padding.
            channel_mask (`torch.Tensor` of shape `(batch, 2)`, *optional*): 1 = channel present, 0 = missing. A
                missing channel is zeroed (and flagged by the absent-channel embedding when the config has one).
        """
        check_input_values(self.config, input_values, attention_mask, channel_mask)
        output_hidden_states = bool(output_hidden_states or self.config.output_hidden_states)
        output_attentions = bool(output_attentions or self.config.output_attentions)
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        signal, lengths, offset = input_values, None, None
        if attention_mask is not None:
            signal = signal * attention_mask[:, None, :].to(signal.dtype)
            lengths = attention_mask.long().sum(-1)
        if channel_mask is not None:
            present = channel_mask.to(signal.dtype)
            signal = signal * present[:, :, None]
            if self.absent_channel_embedding is not None:
                offset = (1 - present) @ self.absent_channel_embedding  # (B, d)

        hidden, token_mask, all_hidden, all_weights = self.encoder(
            signal, lengths, offset, output_hidden_states, output_attentions
        )
        pooled = pool_tokens(hidden, token_mask, self.config.pooling)
        output = QualityFMModelOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            token_mask=token_mask,
            hidden_states=all_hidden,
            attentions=all_weights,
        )
        return output if return_dict else output.to_tuple()


class QualityFMSpectralDecoder(nn.Module):
    """Predicts the better window's amplitude and phase spectra from the encoder output (§1.4).

    The encoder output (B, 18, 512) is read as 18 channels × 512 steps; the strides shrink 512 -> 103 -> 11 -> 2
    tokens, one per input channel, and two Linear-Tanh-Linear heads map each to the first 512 FFT bins.
    """

    def __init__(self, config: QualityFMConfig):
        super().__init__()
        self.transformer = QualityFMTransformer(config, in_channels=config.segment_tokens)
        bins = config.num_fft_bins
        self.amplitude_head = nn.Sequential(nn.Linear(config.hidden_size, bins), nn.Tanh(), nn.Linear(bins, bins))
        self.phase_head = nn.Sequential(nn.Linear(config.hidden_size, bins), nn.Tanh(), nn.Linear(bins, bins))

    def forward(self, encoded: torch.Tensor):
        hidden, _, _, _ = self.transformer(encoded)  # (B, num_channels, d)
        return self.amplitude_head(hidden), self.phase_head(hidden)


class QualityFMForPretraining(QualityFMPreTrainedModel):
    """Encoder + spectral decoder: the bare paper architecture whose parameter counts the tests pin
    (base 9,576,714; large 70,589,706; huge 319,552,778). `QualityFMForSelfDistillation` trains it."""

    def __init__(self, config: QualityFMConfig):
        super().__init__(config)
        decoder_tokens = config.num_tokens(config.hidden_size)
        if decoder_tokens != config.num_channels:
            raise ValueError(
                f"The spectral decoder reads the encoder output as {config.segment_tokens} channels × "
                f"{config.hidden_size} steps and must yield one token per input channel ({config.num_channels}); "
                f"with hidden_size={config.hidden_size} and conv strides {config.conv_stride} it yields "
                f"{decoder_tokens}. Keep hidden_size=512 and the paper's tokenizer, or redesign the decoder."
            )
        self.qualityfm = QualityFMModel(config)
        self.decoder = QualityFMSpectralDecoder(config)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        channel_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> QualityFMForPretrainingOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, 2, segment_samples)`): one pretraining segment
                (9,000 samples = 30 s at 300 Hz) per row; see `QualityFMModel.forward`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.qualityfm(input_values, attention_mask, channel_mask, return_dict=True)
        tokens = encoded.last_hidden_state.shape[1]
        if tokens != self.config.segment_tokens:
            raise ValueError(
                f"QualityFMForPretraining reconstructs spectra of {self.config.segment_seconds}-s segments "
                f"({self.config.segment_samples} samples -> {self.config.segment_tokens} tokens); got "
                f"{input_values.shape[-1]} samples -> {tokens} tokens. Cut the signal into "
                f"{self.config.segment_seconds}-s windows with QualityFMFeatureExtractor."
            )
        amplitude, phase = self.decoder(encoded.last_hidden_state)
        output = QualityFMForPretrainingOutput(
            amplitude=amplitude,
            phase=phase,
            last_hidden_state=encoded.last_hidden_state,
            pooler_output=encoded.pooler_output,
            token_mask=encoded.token_mask,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "QualityFMPreTrainedModel",
    "QualityFMModel",
    "QualityFMForPretraining",
    "QualityFMModelOutput",
    "QualityFMForPretrainingOutput",
    "check_input_values",
    "pool_tokens",
]
