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
