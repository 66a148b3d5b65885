"""QualityFM self-distillation losses as small pure functions (paper notes §3).

Tensors and floats in, a tensor out: no config, no state, no `torch.distributed`. The centre is a buffer of
`QualityFMForSelfDistillation`, updated (and all-reduced) by its own no-grad `update_center`. Every function computes
in float32 so bf16/fp16 activations do not lose the softmax and FFT precision. This file ships as Hub remote code:
torch only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SPECTRAL_TARGETS = ("magnitude", "power", "log_power")
# Bins averaged by the "log_power" target: 9 bins of 1/30 Hz = 0.3 Hz, narrower than the heart-rate peak but wide
# enough that the log of one bin's power (exponential noise, sd ~5.6 dB) becomes a learnable envelope.
LOG_POWER_SMOOTHING_BINS = 9


def zscore(values: torch.Tensor, dim: int = -1, eps: float = 1e-6) -> torch.Tensor:
    """(x - mean) / (std + eps) along `dim`, population std (numpy's default, as the reference code).

    `eps` keeps a constant row (a zero channel, a flat phase) finite: it maps to zeros instead of NaN.
    """
    mean = values.mean(dim=dim, keepdim=True)
    std = values.std(dim=dim, keepdim=True, correction=0)
    return (values - mean) / (std + eps)


def spectral_targets(
    signal: torch.Tensor, num_bins: int = 512, target: str = "magnitude", eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    Reconstruction targets of the better (teacher-input) window (§3.2): z-scored amplitude and phase spectra.

    Args:
        signal (`torch.Tensor` of shape `(batch, channels, time)`): the waveforms, e.g. 9,000 samples at 300 Hz.
        num_bins (`int`, defaults to 512): the first FFT bins kept. At 9,000 samples and 300 Hz the bin spacing is
            1/30 Hz, so 512 bins cover 0–17 Hz, where the PPG and ECG energy lies.
        target (`str`, defaults to "magnitude"): "magnitude" |X| (reference code), "power" |X|² (paper wording) or
            "log_power" (`log_power_spectrum`, beyond the paper: the amplitude target that can be learned).
        eps (`float`, defaults to 1e-6): added to the standard deviation, so a zero channel gives zeros, not NaN.

    Returns:
        `tuple(torch.FloatTensor, torch.FloatTensor)`: amplitude and phase (radians before z-scoring), each of shape
        `(batch, channels, num_bins)`, z-scored along frequency per sample and channel.
    """
    if target not in SPECTRAL_TARGETS:
        raise ValueError(f"target is {target!r}, but has to be one of {list(SPECTRAL_TARGETS)}")
    available = signal.shape[-1] // 2 + 1
    if num_bins > available:
        raise ValueError(
            f"num_bins ({num_bins}) exceeds the {available} non-negative FFT bins of a {signal.shape[-1]}-sample "
            "signal; pass a longer window or fewer bins."
        )
    if target == "log_power":
        return log_power_spectrum(signal, num_bins, eps=eps), zscore(torch.angle(_spectrum(signal, num_bins)), eps=eps)
    spectrum = _spectrum(signal, num_bins)
    amplitude = spectrum.abs()
    if target == "power":
        amplitude = amplitude**2
    return zscore(amplitude, eps=eps), zscore(torch.angle(spectrum), eps=eps)


def _spectrum(signal: torch.Tensor, num_bins: int) -> torch.Tensor:
    # rfft's first bins equal fft's: the reference takes fft(x)[:512].
    return torch.fft.rfft(signal.float(), dim=-1)[..., :num_bins]


def log_power_spectrum(
    signal: torch.Tensor, num_bins: int = 512, smoothing_bins: int = LOG_POWER_SMOOTHING_BINS, eps: float = 1e-6
) -> torch.Tensor:
    r"""
    A spectral target that can be learned (beyond the paper): log of the locally averaged power of the mean-removed
    window, z-scored along frequency per sample and channel.

    Why not the paper's z-scored |FFT|: without mean removal the DC bin dominates the z-scoring (every other bin
    sits near the same negative value), and a single bin's magnitude is exponential noise around the spectral
    envelope, so predicting all zeros already scores as well as a trained decoder. Removing the mean, averaging
    `smoothing_bins` neighbouring bins and taking the log leaves the envelope: heart-rate peak and harmonics,
    respiratory modulation, noise floor and artefact energy.

    Args:
        signal (`torch.Tensor` of shape `(batch, channels, time)`)
        num_bins (`int`, defaults to 512): first bins kept (0–17 Hz at 300 Hz and 9,000 samples).
        smoothing_bins (`int`, defaults to 9): odd width of the moving average over bins.
        eps (`float`): floor of the power relative to the window's mean power, so a zero channel stays finite.

    Returns:
        `torch.FloatTensor` of shape `(batch, channels, num_bins)`.
    """
    if smoothing_bins < 1 or smoothing_bins % 2 == 0:
        raise ValueError(f"smoothing_bins must be a positive odd number; got {smoothing_bins}.")
    power = _centred_power(signal)  # (B, C, T // 2 + 1)
    batch, channels, bins = power.shape
    half = smoothing_bins // 2
    # Average over neighbours with reflected edges, so bin 0 (now ~0 after mean removal) does not pull its neighbours.
    padded = F.pad(power.reshape(batch * channels, 1, bins), (half, half), mode="reflect")
    smooth = F.avg_pool1d(padded, smoothing_bins, stride=1).reshape(batch, channels, bins)[..., :num_bins]
    return _log_zscore(smooth, eps)


def _centred_power(signal: torch.Tensor) -> torch.Tensor:
    """|rfft|² of the window with its mean removed, in float32: (B, C, T) -> (B, C, T // 2 + 1)."""
    signal = signal.float()
    return torch.fft.rfft(signal - signal.mean(dim=-1, keepdim=True), dim=-1).abs() ** 2


def _log_zscore(power: torch.Tensor, eps: float) -> torch.Tensor:
    """log of `power` floored at `eps` × its mean (a zero channel stays finite), z-scored along the last axis."""
    floor = eps * power.mean(dim=-1, keepdim=True) + torch.finfo(torch.float32).tiny
    return zscore(torch.log(power + floor), eps=eps)


def center_and_sharpen(teacher_out: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""
    Teacher probabilities P_t = softmax((U_t − c) / τ_t) over the feature axis, detached (§3.1).

    Args:
        teacher_out (`torch.Tensor` of shape `(batch, tokens, hidden)`): teacher encoder output U_t.
        center (`torch.Tensor` broadcastable to `teacher_out`, e.g. `(1, tokens, hidden)`): the running centre c.
        temperature (`float`): τ_t (0.04 in the paper); below 1 it sharpens.

    Returns:
        `torch.FloatTensor` of shape `(batch, tokens, hidden)`: rows summing to 1.
    """
    return F.softmax((teacher_out.float() - center.float()) / temperature, dim=-1).detach()


def distillation_loss(
    student_out: torch.Tensor,
    teacher_probs: torch.Tensor,
    temperature: float,
    token_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""
    Cross-entropy −Σ_k P_t[k] log softmax(U_s / τ_s)[k] per token, averaged over batch and tokens (§3.1).

    Args:
        student_out (`torch.Tensor` of shape `(batch, tokens, hidden)`): student encoder output U_s.
        teacher_probs (`torch.Tensor` of shape `(batch, tokens, hidden)`): from `center_and_sharpen`.
        temperature (`float`): τ_s (0.1 in the paper).
        token_mask (`torch.Tensor` of shape `(batch, tokens)`, *optional*): True/1 for real tokens; only those are
            averaged.

    Returns:
        `torch.FloatTensor` scalar, in nats.
    """
    if student_out.shape != teacher_probs.shape:
        raise ValueError(
            f"student_out {tuple(student_out.shape)} and teacher_probs {tuple(teacher_probs.shape)} must have the "
            "same (batch, tokens, hidden) shape; feed teacher and student windows of equal length."
        )
    per_token = -(teacher_probs.float() * F.log_softmax(student_out.float() / temperature, dim=-1)).sum(-1)
    if token_mask is None:
        return per_token.mean()
    mask = token_mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def spectral_loss(pred: torch.Tensor, target: torch.Tensor, channel_mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""
    SmoothL1 (β = 1, mean) between predicted and target spectra (§3.2).

    Args:
        pred (`torch.Tensor` of shape `(batch, channels, bins)`): the student decoder's amplitude or phase.
        target (`torch.Tensor` of shape `(batch, channels, bins)`): from `spectral_targets`.
        channel_mask (`torch.Tensor` of shape `(batch, channels)`, *optional*): 1 where the target channel was
            recorded. Beyond the reference code: a missing channel's all-zero target is not a spectrum to learn, so
            only present channels are averaged. Without a mask this is exactly `F.smooth_l1_loss(pred, target)`.

    Returns:
        `torch.FloatTensor` scalar.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape.")
    if channel_mask is None:
        return F.smooth_l1_loss(pred.float(), target.float(), beta=1.0)
    per_element = F.smooth_l1_loss(pred.float(), target.float(), beta=1.0, reduction="none")
    weight = channel_mask.to(per_element.dtype)[:, :, None].expand_as(per_element)
    return (per_element * weight).sum() / weight.sum().clamp(min=1.0)


def log_band_powers(
    signal: torch.Tensor, sampling_rate: float, num_bands: int = 64, low_hz: float = 0.5, high_hz: float = 20.0,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""
    Log power in `num_bands` log-spaced bands from `low_hz` to `high_hz` of the mean-removed window, z-scored over
    bands per sample and channel (beyond the paper; the target of the pooled spectral head).

    Log-spaced bands give the heart-rate range (0.5–3 Hz) as many bands as the QRS range, and narrow bands there
    (6 % wide at 64 bands) keep what rhythm regularity does to the spectrum: a regular rhythm has a sharp
    fundamental and harmonics, an irregular one (AF) smears them. In the default recipe, predicting this from the
    pooled embedding moved the frozen VT probe from 0.62 (random init) to 0.84 AUROC (benchmarks/PRETRAINING.md).

    Args:
        signal (`torch.Tensor` of shape `(batch, channels, time)`)
        sampling_rate (`float`): Hz of `signal`.
        num_bands (`int`, defaults to 64), low_hz / high_hz (`float`, defaults to 0.5 / 20.0): the band edges
            `geomspace(low_hz, high_hz, num_bands + 1)`; a band narrower than one FFT bin takes its nearest bin.
        eps (`float`): floor relative to the window's mean band power, so a zero channel stays finite.

    Returns:
        `torch.FloatTensor` of shape `(batch, channels, num_bands)`.
    """
    if not 0 < low_hz < high_hz <= sampling_rate / 2:
        raise ValueError(
            f"band edges must satisfy 0 < low_hz < high_hz <= sampling_rate / 2; got {low_hz}, {high_hz} at "
            f"{sampling_rate} Hz."
        )
    power = _centred_power(signal)  # (B, C, F)
    frequencies = torch.fft.rfftfreq(signal.shape[-1], d=1.0 / sampling_rate).to(signal.device)
    edges = torch.logspace(math.log10(low_hz), math.log10(high_hz), num_bands + 1, device=signal.device)
    # (F, bands) averaging matrix: bin f belongs to band b when edges[b] <= f < edges[b + 1].
    member = (frequencies[:, None] >= edges[None, :-1]) & (frequencies[:, None] < edges[None, 1:])
    empty = ~member.any(0)
    if empty.any():  # narrower than a bin: take the bin nearest the band centre
        centres = (edges[:-1] * edges[1:]).sqrt()[empty]
        nearest = (frequencies[:, None] - centres[None, :]).abs().argmin(0)
        member[nearest, torch.nonzero(empty).squeeze(1)] = True
    weights = member.float() / member.float().sum(0, keepdim=True)
    return _log_zscore(power @ weights, eps)  # (B, C, bands)


def koleo_loss(embeddings: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r"""
    KoLeo spread term (DINOv2): −mean_i log(min_{j≠i} ‖z_i − z_j‖) over the L2-normalised rows of a batch.

    It is large when two windows map to nearly the same direction, so minimising it spreads the batch over the
    sphere (a Kozachenko–Leonenko entropy estimate); it counters the dimensional collapse a pooled target invites.

    Args:
        embeddings (`torch.Tensor` of shape `(batch, dim)`): e.g. the student's pooled encoder output.

    Returns:
        `torch.FloatTensor` scalar; 0 for a batch of one.
    """
    if embeddings.shape[0] < 2:
        return embeddings.new_zeros((), dtype=torch.float32)
    z = F.normalize(embeddings.float(), dim=-1, eps=eps)
    similarity = z @ z.T
    similarity.fill_diagonal_(-2.0)  # never one's own nearest neighbour
    nearest = similarity.argmax(dim=1)
    distance = (z - z[nearest]).norm(dim=-1)
    return -torch.log(distance + eps).mean()


def quality_score_loss(
    pred: torch.Tensor, target: torch.Tensor, channel_mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""
    Mean squared error between predicted and scored per-channel quality (beyond the paper; the target of the quality
    head), over the channels that are present and were scored.

    Args:
        pred (`torch.Tensor` of shape `(batch, channels)`): the quality head's output.
        target (`torch.Tensor` of shape `(batch, channels)`): each channel's quality score in [0, 1] as the pair
            builder scored the window (`qualityfm_hf.quality`); NaN where a channel was not scored (absent).
        channel_mask (`torch.Tensor` of shape `(batch, channels)`, *optional*): 1 where the student saw the channel;
            a channel dropped by modality dropout has no quality to read.

    Returns:
        `torch.FloatTensor` scalar; 0 (in the graph) when no channel of the batch counts.
    """
    return masked_mse_loss(pred, target, None if channel_mask is None else channel_mask > 0)


def masked_mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""
    Mean squared error over the entries whose target is finite (NaN marks "not measured") and `mask` is True.

    Args:
        pred / target (`torch.Tensor` of the same shape): predictions and targets.
        mask (`torch.BoolTensor` broadcastable to that shape, *optional*): entries that count.

    Returns:
        `torch.FloatTensor` scalar; 0 (in the graph) when no entry counts.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape.")
    weight = torch.isfinite(target)
    if mask is not None:
        weight = weight & mask.bool()
    error = (pred.float() - torch.nan_to_num(target.float())) ** 2
    weight = weight.to(error.dtype)
    return (error * weight).sum() / weight.sum().clamp(min=1.0)


__all__ = [
    "center_and_sharpen",
    "distillation_loss",
    "koleo_loss",
    "log_band_powers",
    "log_power_spectrum",
    "masked_mse_loss",
    "quality_score_loss",
    "spectral_loss",
    "spectral_targets",
    "zscore",
]
