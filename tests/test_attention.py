"""The windowed sparse attention mask and the equivalence of its three backends."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from qualityfm_hf import QualityFMModel
from qualityfm_hf.modeling.attention_qualityfm import windowed_mask

BACKENDS = ["eager", "sdpa", "qfm_blocked"]


def test_mask_is_band_plus_global_token():
    mask = windowed_mask(torch.ones(1, 12, dtype=torch.bool), half_window=2)[0, 0]
    assert mask[5].nonzero().flatten().tolist() == [0, 3, 4, 5, 6, 7]  # |5 - j| <= 2, plus global 0
    assert mask[0].all() and mask[:, 0].all()
    assert not mask[11, 8]  # |11 - 8| = 3 > 2


def test_padded_keys_are_masked():
    token_mask = torch.tensor([[True] * 6 + [False] * 4])
    mask = windowed_mask(token_mask, half_window=4)[0, 0]
    assert not mask[:, 6:].any()
    assert mask[0, :6].all()


def test_token_beyond_half_window_gets_no_weight():
    model = QualityFMModel(tiny_config(window_size=4)).eval()
    model.set_attn_implementation("eager")
    with torch.no_grad():
        weights = model(torch.randn(1, 2, 6000), output_attentions=True).attentions[0][0]  # (heads, 12, 12)
    assert torch.all(weights[:, 6, 9:] == 0) and torch.all(weights[:, 6, 1:4] == 0)
    assert torch.all(weights[:, 6, 0] > 0)  # the global token
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 12))


def _run(model, backend, x, mask):
    model.set_attn_implementation(backend)
    assert model.config._attn_implementation == backend
    x = x.clone().requires_grad_(True)
    out = model(x, attention_mask=mask)
    real = out.last_hidden_state * out.token_mask[..., None]
    (real.square().sum() + out.pooler_output.sum()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    return real.detach(), x.grad, grads


@pytest.mark.parametrize("length_tokens", [3, 18, 37])
def test_backends_agree_forward_and_gradients_with_padding_and_global_token(length_tokens):
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config(window_size=4)).double().eval()
    time = 500 * length_tokens
    x = torch.randn(3, 2, time, dtype=torch.float64)
    mask = torch.ones(3, time, dtype=torch.long)
    mask[1, time // 2 :] = 0  # right padding, not on a token boundary for odd token counts
    mask[2, 700:] = 0  # only two real tokens
    results = {backend: _run(model, backend, x, mask) for backend in BACKENDS}
    ref_out, ref_xgrad, ref_grads = results["eager"]
    for backend in ("sdpa", "qfm_blocked"):
        out, xgrad, grads = results[backend]
        torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(xgrad, ref_xgrad, atol=1e-10, rtol=1e-10)
        for name, grad in grads.items():
            torch.testing.assert_close(grad, ref_grads[name], atol=1e-10, rtol=1e-10, msg=name)


def test_blocked_backend_matches_dense_on_long_sequence_and_is_chosen_automatically():
    torch.manual_seed(0)
    config = tiny_config(window_size=8)
    model = QualityFMModel(config).eval()
    x = torch.randn(1, 2, 500 * 600)  # 600 tokens: above the sdpa -> blocked hand-over
    with torch.no_grad():
        model.set_attn_implementation("eager")
        dense = model(x).last_hidden_state
        model.set_attn_implementation("sdpa")
        assert model.encoder.attention_backend(600, False) == "qfm_blocked"
        auto = model(x).last_hidden_state
    torch.testing.assert_close(auto, dense, atol=1e-5, rtol=1e-4)


def test_unknown_backend_lists_the_supported_ones():
    model = QualityFMModel(tiny_config())
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match=r"supports \['eager', 'sdpa', 'qfm_blocked'\]"):
        model(torch.randn(1, 2, 3000))


def _qkv(batch, heads, length, head_dim, dtype=torch.float64, seed=0):
    # (B, H, L, D) views of (B, L, H, D) tensors, as the attention layer hands them over.
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, length, heads, head_dim)
    tensors = [torch.randn(shape, dtype=dtype, generator=generator) for _ in range(3)]
    return [x.transpose(1, 2).requires_grad_() for x in tensors]


def _attention_module(half_window):
    from qualityfm_hf.modeling.modeling_qualityfm import QualityFMAttention

    return QualityFMAttention(tiny_config(window_size=2 * half_window)).eval()


@pytest.mark.parametrize("half_window", [1, 2, 4])
@pytest.mark.parametrize("length", [1, 5, 8, 23])
def test_blocked_function_matches_eager_values_and_input_gradients(half_window, length):
    from qualityfm_hf.modeling.attention_qualityfm import blocked_windowed_attention, eager_windowed_attention

    module = _attention_module(half_window)
    token_mask = torch.ones(3, length, dtype=torch.bool)
    token_mask[1, (length + 1) // 2 :] = False  # right padding inside a block
    token_mask[2, 2:] = False
    results = []
    for fn, mask in ((eager_windowed_attention, windowed_mask(token_mask, half_window)),
                     (blocked_windowed_attention, token_mask)):
        query, key, value = _qkv(3, 2, length, 5)
        out, _ = fn(module, query, key, value, mask)
        out = out * token_mask[:, :, None, None]
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append((out.detach(), query.grad, key.grad, value.grad))
    for ref, got, name in zip(*results, ("output", "query", "key", "value")):
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=1e-10, msg=name)


def _saved_bytes(fn):
    """Bytes of the distinct storages autograd saves for backward while `fn` runs."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values())


def test_blocked_backward_saves_no_neighbour_copies_of_keys_and_values():
    from qualityfm_hf.modeling.attention_qualityfm import blocked_windowed_attention

    half, batch, heads, length, head_dim = 4, 2, 4, 600, 32
    module = _attention_module(half)
    query, key, value = _qkv(batch, heads, length, head_dim, dtype=torch.float32)
    token_mask = torch.ones(batch, length, dtype=torch.bool)
    saved = _saved_bytes(lambda: blocked_windowed_attention(module, query, key, value, token_mask))
    qkv = 3 * query.numel() * query.element_size()
    probabilities = batch * heads * length * (3 * half + 1) * 4
    # One packed copy of Q, K and V (+ zero edge blocks) and the band probabilities; concatenated neighbour
    # blocks of K and V alone would add 2 x (K + V) more.
    assert saved < 1.1 * (qkv + probabilities), (saved, qkv, probabilities)


def test_blocked_attention_gradcheck_with_dropout_and_padding():
    from qualityfm_hf.modeling.attention_qualityfm import _BlockedWindowAttention

    query, key, value = _qkv(2, 2, 11, 3)
    token_mask = torch.ones(2, 11, dtype=torch.bool)
    token_mask[1, 8:] = False
    for dropout in (0.0, 0.3):

        def attention(q, k, v):
            torch.manual_seed(0)  # the same dropout mask on every call of gradcheck
            return _BlockedWindowAttention.apply(q, k, v, token_mask, 2, 0.7, dropout)

        assert torch.autograd.gradcheck(attention, (query, key, value))


def test_blocked_attention_keeps_a_non_finite_sample_to_itself():
    from qualityfm_hf.modeling.attention_qualityfm import blocked_windowed_attention

    module = _attention_module(2)
    query, key, value = _qkv(2, 2, 10, 4, dtype=torch.float32)
    with torch.no_grad():
        value[0, :, 5] = float("nan")
    out, _ = blocked_windowed_attention(module, query, key, value, torch.ones(2, 10, dtype=torch.bool))
    out.nan_to_num(0.0).sum().backward()
    assert torch.isfinite(out[1]).all()
    assert torch.isfinite(query.grad[1]).all() and torch.isfinite(key.grad[1]).all()
    assert torch.isfinite(value.grad[1]).all()


def test_blocked_attention_in_bf16_autocast_matches_eager():
    from qualityfm_hf.modeling.attention_qualityfm import blocked_windowed_attention, eager_windowed_attention

    module = _attention_module(4)
    token_mask = torch.ones(2, 300, dtype=torch.bool)
    token_mask[1, 200:] = False
    results = []
    for fn, mask in ((eager_windowed_attention, windowed_mask(token_mask, 4)),
                     (blocked_windowed_attention, token_mask)):
        query, key, value = _qkv(2, 4, 300, 32, dtype=torch.float32)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = fn(module, *(x.to(torch.bfloat16) for x in (query, key, value)), mask)
        assert out.dtype == torch.bfloat16
        out = out.float() * token_mask[:, :, None, None]
        out.square().sum().backward()
        results.append((out.detach(), query.grad, key.grad, value.grad))
    for ref, got, name in zip(*results, ("output", "query", "key", "value")):
        assert torch.isfinite(got).all(), name
        assert (got - ref).norm() / ref.norm() < 2e-2, name
