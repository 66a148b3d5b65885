"""Windowed sparse attention ("PWSA", paper notes §1.3) behind the transformers attention interface.

Token i attends to token j iff |i - j| <= window_size / 2; token 0 is global (attends to every token and every
token attends to it); padded keys are masked. Three interchangeable backends give the same numbers:

- "eager": dense scores with the band mask; the only one that returns attention weights.
- "sdpa": `torch.nn.functional.scaled_dot_product_attention` with the dense boolean band mask. O(n²) memory,
  the right choice for the paper's 18 tokens.
- "qfm_blocked": O(n·w) blocked attention for long inputs (hours of waveform as one sequence). Queries are cut into
  blocks of w/2 tokens that see their own and the two neighbouring key blocks, plus the global key; the global
  query row is computed densely (O(n)). A custom autograd Function: backward keeps one packed copy of Q, K
  and V and the O(n·w) probabilities, nothing of size n², no neighbour-block copies. Registered with
  `AttentionInterface.register`.

This file ships as Hub remote code: torch and transformers only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
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


class _Blocks:
    """Zero-padded, head-major row layout shared by the blocked forward and backward.

    Each (batch, head) sequence is stored as `nb + 2` blocks of b = half_window rows: a zero block, the tokens
    (zero tail up to a whole block), a zero block; one more zero block sits before and after the whole buffer.
    Query block i then reads key blocks i - 1, i and i + 1 as one overlapping strided view of that buffer (no
    copies of neighbour blocks), and the rows at a sequence's edges are zeros, not another head's or sample's,
    so a non-finite value in one sequence cannot leak into another through a 0-weight product. The two zero
    blocks per sequence are also computed as query blocks; their rows are never read back.
    """

    def __init__(self, shape: torch.Size, half: int):
        self.batch, self.heads, self.length, self.dim = shape
        self.block = half
        self.num_blocks = math.ceil(self.length / half) + 2  # per sequence, with the two zero blocks
        self.span = self.num_blocks * half  # rows per sequence
        self.count = self.batch * self.heads * self.num_blocks  # query blocks; the zero ones give unused rows

    def pack(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`(B, H, L, D)` (any strides) -> contiguous `dtype` rows `((count + 2)·b, D)`, zero elsewhere."""
        rows = self._empty(x.new_empty(0, dtype=dtype))
        seqs = self.sequences(rows)
        seqs[:, : self.block].zero_()
        seqs[:, self.block + self.length :].zero_()
        self.tokens(rows).view(x.shape).copy_(x)
        return rows

    def blocks(self, rows: torch.Tensor) -> torch.Tensor:
        """`(count, b, D)` view: query block i."""
        return rows.view(self.count + 2, self.block, self.dim)[1:-1]

    def windows(self, rows: torch.Tensor) -> torch.Tensor:
        """`(count, 3b, D)` overlapping view (no copy): blocks i - 1, i and i + 1 for query block i."""
        return rows.as_strided((self.count, 3 * self.block, self.dim), (self.block * self.dim, self.dim, 1))

    def sequences(self, rows: torch.Tensor) -> torch.Tensor:
        """`(B·H, span, D)` view; token t of a sequence is row b + t."""
        return rows[self.block : -self.block].view(self.batch * self.heads, self.span, self.dim)

    def tokens(self, rows: torch.Tensor) -> torch.Tensor:
        """`(B·H, L, D)` view of the real token rows."""
        return self.sequences(rows)[:, self.block : self.block + self.length]

    def unpack(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows -> `(B, L, H, D)` contiguous (the layout the output projection reads)."""
        tokens = self.tokens(rows).view(self.batch, self.heads, self.length, self.dim)
        # A copy even where `contiguous()` would return a view (one head): the backward reuses row buffers.
        return tokens.transpose(1, 2).clone(memory_format=torch.contiguous_format)

    def mask(self, key_valid: torch.Tensor) -> torch.Tensor:
        """May-attend mask `(B, 1, num_blocks, b, 3b + 1)`: band keys of blocks i - 1, i, i + 1, then token 0.

        Built from index arithmetic: the band part depends only on the offset inside the block, so it is one
        `(b, 3b)` table; per-sample data is the key-padding row, unfolded (a view) into 3b-key windows.
        """
        block, device = self.block, key_valid.device
        row = torch.arange(block, device=device)
        col = torch.arange(3 * block, device=device)
        # Query row r of block m is token (m - 1)·b + r; key column c is token (m - 2)·b + c.
        in_band = (row[:, None] + block - col[None, :]).abs() <= block  # (b, 3b)
        padded = F.pad(key_valid, (2 * block, self.num_blocks * block - self.length), value=False)
        window_valid = padded.unfold(1, 3 * block, block)  # (B, num_blocks, 3b), a view
        band = in_band & window_valid[:, :, None, :]
        # Token 0 is already a band key for queries within `half` of it: adding it again would count it twice.
        q_pos = torch.arange(self.span, device=device).view(self.num_blocks, block) - block
        to_global = (q_pos > block)[None, :, :, None] & key_valid[:, :1, None, None]  # (B, num_blocks, b, 1)
        return torch.cat([band, to_global], dim=-1)[:, None]

    def scores(self, rows: torch.Tensor, key_rows: torch.Tensor) -> torch.Tensor:
        """`rows · keys` for each block's 3b band keys and token 0: `(count, b, 3b + 1)`, unscaled."""
        # keys @ queriesᵀ, then transposed: MKL's batched GEMM is about 1.5x faster this way round for b x 3b.
        band = torch.bmm(self.windows(key_rows), self.blocks(rows).transpose(1, 2)).transpose(1, 2)
        first = self.tokens(key_rows)[:, :1]  # token 0 of each sequence, (B·H, 1, D)
        to_first = torch.bmm(self.sequences(rows), first.transpose(1, 2)).view(self.count, self.block, 1)
        return torch.cat([band, to_first], dim=-1)

    def mix(self, weights: torch.Tensor, value_rows: torch.Tensor, out: torch.Tensor | None = None):
        """`weights @ values` for the `scores` layout (weights `(count, b, 3b + 1)`), into `out` or new."""
        out = self._empty(value_rows, out)
        torch.bmm(weights[..., : 3 * self.block], self.windows(value_rows), out=self.blocks(out))
        self.sequences(out).baddbmm_(self._global(weights), self.tokens(value_rows)[:, :1])
        return out

    def mix_transposed(self, weights: torch.Tensor, rows: torch.Tensor, out: torch.Tensor | None = None):
        """`weightsᵀ @ rows` summed onto the keys the weights belong to (backward of `scores`), into `out`.

        Key block j is the next block of query block j - 1, the own block of j and the previous block of
        j + 1, so its rows are one product of their (small, re-arranged) weights with the window of query rows
        around j: one write per output row instead of three overlapping accumulations.
        """
        block, out = self.block, self._empty(rows, out)
        band = F.pad(weights[..., : 3 * block], (0, 0, 0, 0, 1, 1))  # zero weights for the margin blocks
        # (count, 3b, b): the weights of query blocks j - 1, j, j + 1 onto key block j.
        parts = (band[:-2, :, 2 * block :], band[1:-1, :, block : 2 * block], band[2:, :, :block])
        gathered = torch.cat(parts, dim=1)
        torch.bmm(gathered.transpose(1, 2), self.windows(rows), out=self.blocks(out))
        self.tokens(out)[:, :1] += torch.bmm(self._global(weights).transpose(1, 2), self.sequences(rows))
        return out

    def _empty(self, like: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Row buffer with zero margins: `rows` when given (other rows get overwritten), else a new one."""
        rows = like.new_empty((self.count + 2) * self.block, self.dim) if rows is None else rows
        rows[: self.block].zero_()
        rows[-self.block :].zero_()
        return rows

    def _global(self, weights: torch.Tensor) -> torch.Tensor:
        return weights[..., -1:].reshape(self.batch * self.heads, self.span, 1)  # a view


_HALF = (torch.float16, torch.bfloat16)


def _band_softmax(scores: torch.Tensor) -> torch.Tensor:
    """`_softmax` over the short last axis of the block scores (3b + 1 keys), in float32 for half inputs.

    Spelled out because `torch.softmax` over a 13-wide axis costs about 5x these four vectorised passes.
    """
    scores = scores.float() if scores.dtype in _HALF else scores
    exp = (scores - scores.amax(-1, keepdim=True)).exp_()
    return exp.div_(exp.sum(-1, keepdim=True))


def _softmax_backward(probs: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return probs * (grad - (probs * grad).sum(-1, keepdim=True))


def _dropout_keep(probs: torch.Tensor, dropout: float) -> torch.Tensor | None:
    return None if dropout == 0.0 else torch.rand_like(probs) >= dropout


def _drop(x: torch.Tensor, keep: torch.Tensor | None, dropout: float) -> torch.Tensor:
    # As F.dropout: kept entries scaled by 1 / (1 - p); p = 1 drops everything (no 0 / 0).
    return x if keep is None else x * keep * (0.0 if dropout >= 1.0 else 1.0 / (1.0 - dropout))


def _autocast_dtype(x: torch.Tensor) -> torch.dtype:
    # Inside the Function autocast is off, so apply its choice once here (float64 stays, as under autocast):
    # the matmuls run in that dtype, as they did when the backend was plain autograd ops.
    device = x.device.type
    if x.dtype.is_floating_point and x.dtype != torch.float64 and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


class _BlockedWindowAttention(torch.autograd.Function):
    """Blocked windowed attention with a hand-written backward.

    Saved for backward: the packed query, key and value rows (one copy each, the same size as the inputs they
    replace) and the band / row-0 probabilities (O(n·w)); neighbour blocks are re-sliced from the key / value
    rows, never concatenated. Probabilities stay float32 for half-precision inputs, as in `_softmax`.
    """

    @staticmethod
    def forward(ctx, query, key, value, key_valid, half, scaling, dropout):
        dtype = _autocast_dtype(query)
        with torch.autocast(query.device.type, enabled=False):
            layout = _Blocks(query.shape, half)
            q, k, v = (layout.pack(x, dtype) for x in (query, key, value))
            min_value = torch.finfo(dtype).min

            scores = layout.scores(q, k) * scaling
            view = scores.view(layout.batch, layout.heads, layout.num_blocks, half, -1)
            view.masked_fill_(~layout.mask(key_valid), min_value)
            probs = _band_softmax(scores)
            keep = _dropout_keep(probs, dropout)
            out = layout.mix(_drop(probs, keep, dropout).to(dtype), v)

            # The global query row sees every real key: one dense row, O(n).
            row_scores = torch.bmm(layout.tokens(q)[:, :1], layout.tokens(k).transpose(1, 2)) * scaling
            row_view = row_scores.view(layout.batch, layout.heads, 1, layout.length)
            row_view.masked_fill_(~key_valid[:, None, None, :], min_value)
            row_probs = _softmax(row_scores.float() if dtype in _HALF else row_scores)
            row_keep = _dropout_keep(row_probs, dropout)
            row_weights = _drop(row_probs, row_keep, dropout).to(dtype)
            layout.tokens(out)[:, :1] = torch.bmm(row_weights, layout.tokens(v))

        ctx.layout, ctx.scaling, ctx.dropout, ctx.dtypes = layout, scaling, dropout, (query.dtype, key.dtype,
                                                                                     value.dtype)
        ctx.save_for_backward(q, k, v, probs, keep, row_probs, row_keep)
        return layout.unpack(out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        layout, scaling, dropout = ctx.layout, ctx.scaling, ctx.dropout
        q, k, v, probs, keep, row_probs, row_keep = ctx.saved_tensors
        dtype = q.dtype
        with torch.autocast(grad_output.device.type, enabled=False):
            grad = layout.pack(grad_output.transpose(1, 2), dtype)
            grad_row = layout.tokens(grad)[:, :1].clone()  # (B·H, 1, D)
            layout.tokens(grad)[:, :1] = 0  # row 0 of the output came from the dense row, not from the blocks

            weights = _drop(probs, keep, dropout).to(dtype)
            grad_probs = _drop(layout.scores(grad, v).to(probs.dtype), keep, dropout)
            grad_scores = (_softmax_backward(probs, grad_probs) * scaling).to(dtype)
            del grad_probs

            row_weights = _drop(row_probs, row_keep, dropout).to(dtype)  # (B·H, 1, L)
            row_grad_probs = torch.bmm(grad_row, layout.tokens(v).transpose(1, 2)).to(row_probs.dtype)
            row_grad_probs = _drop(row_grad_probs, row_keep, dropout)
            row_grad_scores = (_softmax_backward(row_probs, row_grad_probs) * scaling).to(dtype)

            # One gradient at a time, each unpacked before the next: the value gradient first, as it is the
            # last reader of `grad`; the query and key gradients then overwrite the two spent row buffers.
            grad_v = layout.mix_transposed(weights, grad)
            layout.tokens(grad_v).baddbmm_(row_weights.transpose(1, 2), grad_row)
            grad_value = _to_input(layout, grad_v, ctx.dtypes[2])
            grad_q = layout.mix(grad_scores, k, out=grad)
            layout.tokens(grad_q)[:, :1] += torch.bmm(row_grad_scores, layout.tokens(k))
            grad_query = _to_input(layout, grad_q, ctx.dtypes[0])
            grad_k = layout.mix_transposed(grad_scores, q, out=grad_v)
            layout.tokens(grad_k).baddbmm_(row_grad_scores.transpose(1, 2), layout.tokens(q)[:, :1])
            grad_key = _to_input(layout, grad_k, ctx.dtypes[1])
        return grad_query, grad_key, grad_value, None, None, None, None


def _to_input(layout: _Blocks, rows: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # (B, L, H, D) memory, (B, H, L, D) shape: the layout of the projection outputs the inputs are views of,
    # so the backward of their transpose / view is free.
    return layout.unpack(rows).transpose(1, 2).to(dtype)


def blocked_windowed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """O(n·w) backend. `attention_mask` is the key-padding mask `(batch, tokens)`, True = real token.

    Memory and time grow linearly in the token count: each query block of b = w/2 tokens scores 3b + 1 keys
    (blocks i - 1, i, i + 1 and the global token 0). Differentiable once (no double backward).
    """
    batch, _, length, head_dim = query.shape
    scaling = scaling if scaling is not None else head_dim**-0.5
    key_valid = attention_mask if attention_mask is not None else query.new_ones(batch, length, dtype=torch.bool)
    dropout = dropout if module.training else 0.0
    output = _BlockedWindowAttention.apply(query, key, value, key_valid.bool(), module.config.half_window,
                                           scaling, dropout)
    return output, None


AttentionInterface.register(BLOCKED_BACKEND, blocked_windowed_attention)


__all__ = [
    "BLOCKED_BACKEND",
    "SUPPORTED_BACKENDS",
    "windowed_mask",
    "eager_windowed_attention",
    "blocked_windowed_attention",
]
