"""Windowed sparse attention ("PWSA", paper notes §1.3) behind the transformers attention interface.

Token i attends to token j iff |i - j| <= window_size / 2; token 0 is global (attends to every token and every
token attends to it); padded keys are masked. Three interchangeable backends give the same numbers:

- "eager": dense scores with the band mask; the only one that returns attention weights.
- "sdpa": `torch.nn.functional.scaled_dot_product_attention` with the dense boolean band mask. O(n²) memory,
  the right choice for the paper's 18 tokens.
- "qfm_blocked": O(n·w) blocked attention for long inputs (hours of waveform as one sequence). Queries are cut into
  blocks of w/2 tokens that see their own and the two neighbouring key blocks, plus the global key; the global
  query row is computed densely (O(n)). Registered with `AttentionInterface.register`.

This file ships as Hub remote code: torch and transformers only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

BLOCKED_BACKEND = "qfm_blocked"
DENSE_BACKENDS = ("eager", "sdpa")
SUPPORTED_BACKENDS = DENSE_BACKENDS + (BLOCKED_BACKEND,)


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    # Half-precision scores are normalised in float32 (as transformers' eager paths do); others keep their dtype.
    dtype = torch.float32 if scores.dtype in (torch.float16, torch.bfloat16) else scores.dtype
    return torch.softmax(scores, dim=-1, dtype=dtype).to(scores.dtype)


def windowed_mask(token_mask: torch.Tensor, half_window: int) -> torch.Tensor:
    """Dense boolean mask, True = may attend.

    Args:
        token_mask (`torch.BoolTensor` of shape `(batch, tokens)`): True for real (non-padding) tokens.
        half_window (`int`): |i - j| bound of the band (the paper's w / 2).

    Returns:
        `torch.BoolTensor` of shape `(batch, 1, tokens, tokens)`.
    """
    length = token_mask.shape[-1]
    pos = torch.arange(length, device=token_mask.device)
    band = (pos[:, None] - pos[None, :]).abs() <= half_window
    band[0, :] = True  # the global token attends to all ...
    band[:, 0] = True  # ... and all tokens attend to it
    return band[None, None] & token_mask[:, None, None, :]


def eager_windowed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Reference backend. query/key/value `(batch, heads, tokens, head_dim)`; mask from `windowed_mask`."""
    scaling = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (B, H, L, L)
    scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    weights = _softmax(scores)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (B, L, H, D)
    return output, weights


def blocked_windowed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """O(n·w) backend. `attention_mask` is the key-padding mask `(batch, tokens)`, True = real token.

    Memory and time grow linearly in the token count: each query block of b = w/2 tokens scores 3b + 1 keys.
    """
    half = module.config.half_window
    batch, heads, length, head_dim = query.shape
    scaling = scaling if scaling is not None else head_dim**-0.5
    block = half
    num_blocks = math.ceil(length / block)
    tail = num_blocks * block - length
    key_valid = attention_mask if attention_mask is not None else query.new_ones(batch, length, dtype=torch.bool)

    def blocks(x):  # (B, H, L, D) -> (B, H, nb, b, D), right-padded with zeros
        return F.pad(x, (0, 0, 0, tail)).view(batch, heads, num_blocks, block, head_dim)

    def neighbours(x):  # (B, H, L, D) -> keys/values of blocks i-1, i, i+1: (B, H, nb, 3b, D)
        padded = F.pad(x, (0, 0, block, tail + block)).view(batch, heads, num_blocks + 2, block, head_dim)
        return torch.cat([padded[:, :, :-2], padded[:, :, 1:-1], padded[:, :, 2:]], dim=3)

    q = blocks(query)
    scores = torch.matmul(q, neighbours(key).transpose(-1, -2)) * scaling  # (B, H, nb, b, 3b)
    global_scores = torch.matmul(q, key[:, :, None, :1].transpose(-1, -2)) * scaling  # (B, H, nb, b, 1)

    device = query.device
    q_pos = torch.arange(num_blocks * block, device=device).view(num_blocks, block)
    k_pos = (torch.arange(num_blocks, device=device)[:, None] - 1) * block + torch.arange(3 * block, device=device)
    in_band = (q_pos[:, :, None] - k_pos[:, None, :]).abs() <= half  # (nb, b, 3b)
    valid_padded = F.pad(key_valid, (block, tail + block), value=False).view(batch, num_blocks + 2, block)
    k_valid = torch.cat([valid_padded[:, :-2], valid_padded[:, 1:-1], valid_padded[:, 2:]], dim=2)  # (B, nb, 3b)
    band_mask = in_band[None] & k_valid[:, :, None, :]  # (B, nb, b, 3b)
    # Token 0 is already a band key for queries within `half` of it: adding it again would count it twice.
    global_mask = (q_pos > half)[None, :, :, None] & key_valid[:, :1, None, None]  # (B, nb, b, 1)
    mask = torch.cat([band_mask, global_mask], dim=-1)[:, None]  # (B, 1, nb, b, 3b + 1)

    scores = torch.cat([scores, global_scores], dim=-1).masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = _softmax(scores)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights[..., :-1], neighbours(value)) + weights[..., -1:] * value[:, :, None, :1]
    output = output.view(batch, heads, num_blocks * block, head_dim)[:, :, :length]

    # The global query row sees every real key: one dense row, O(n).
    row0 = torch.matmul(query[:, :, :1], key.transpose(-1, -2)) * scaling  # (B, H, 1, L)
    row0 = row0.masked_fill(~key_valid[:, None, None, :], torch.finfo(row0.dtype).min)
    row0 = F.dropout(_softmax(row0), p=dropout,
                     training=module.training)
    output = torch.cat([torch.matmul(row0, value), output[:, :, 1:]], dim=2)
    return output.transpose(1, 2).contiguous(), None  # (B, L, H, D)


AttentionInterface.register(BLOCKED_BACKEND, blocked_windowed_attention)


__all__ = [
    "BLOCKED_BACKEND",
    "SUPPORTED_BACKENDS",
    "windowed_mask",
    "eager_windowed_attention",
    "blocked_windowed_attention",
]
