"""The tokenizer's convolutions as GEMMs (`conv1d_as_matmul`) and the cache of their GEMM weights.

The GEMM path is what runs on CPU, so it must give `nn.Conv1d`'s numbers (forward and gradients), and the weight it
caches under `no_grad` must follow every way a weight changes: in place (an optimizer step, the EMA teacher), a
dtype conversion, a loaded state dict.
"""

import copy

import pytest
import torch

from qualityfm_hf import QualityFMConfig, QualityFMModel
from qualityfm_hf.modeling.modeling_qualityfm import QualityFMTemporalConv, conv1d_as_matmul


def conv_outputs(model, x, matmul: bool):
    QualityFMTemporalConv.use_matmul_conv = matmul
    try:
        return model(x).last_hidden_state
    finally:
        QualityFMTemporalConv.use_matmul_conv = True


@pytest.fixture
def model():
    torch.manual_seed(0)
    return QualityFMModel(QualityFMConfig.from_preset("base")).eval()


@pytest.mark.parametrize(("c_in", "c_out", "kernel", "stride", "group"),
                         [(2, 5, 201, 5, 20), (5, 51, 101, 10, 2), (51, 512, 51, 10, 1), (3, 4, 7, 2, 3)])
def test_conv_as_gemm_matches_conv1d_forward_and_backward(c_in, c_out, kernel, stride, group):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2).double()
    x = torch.randn(3, c_in, 1000, dtype=torch.float64, requires_grad=True)
    reference = conv(x)
    out = conv1d_as_matmul(x.transpose(1, 2), conv, group).transpose(1, 2)
    torch.testing.assert_close(out, reference)
    weights = torch.randn_like(reference)
    grads = torch.autograd.grad((reference * weights).sum(), (x, conv.weight, conv.bias))
    grads_gemm = torch.autograd.grad((out * weights).sum(), (x, conv.weight, conv.bias))
    for got, expected in zip(grads_gemm, grads):
        torch.testing.assert_close(got, expected)


def test_cached_gemm_weight_follows_in_place_updates(model):
    x = torch.randn(2, 2, 9000)
    with torch.no_grad():
        first = conv_outputs(model, x, matmul=True)
        assert torch.equal(conv_outputs(model, x, matmul=True), first)  # served from the cache
        for conv in model.encoder.temporal_conv.convs:
            conv.weight.mul_(1.5)  # as an optimizer step or the EMA lerp would, in place (bias untouched)
        updated = conv_outputs(model, x, matmul=True)
        plain = conv_outputs(model, x, matmul=False)
    assert not torch.allclose(updated, first)
    torch.testing.assert_close(updated, plain, atol=1e-5, rtol=1e-4)


def test_cached_gemm_weight_follows_dtype_conversion_and_state_dict(model):
    x = torch.randn(2, 2, 9000)
    # no_grad, not inference_mode: weights converted under inference_mode become inference tensors, which are
    # never cached.
    with torch.no_grad():
        conv_outputs(model, x, matmul=True)  # fill the cache in fp32
        half = model.to(torch.bfloat16)
        out = conv_outputs(half, x.bfloat16(), matmul=True)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out, conv_outputs(half, x.bfloat16(), matmul=False), atol=0.1, rtol=0.05)
        back = half.float()  # fp32 weights again, rounded through bf16: not the first fp32 weights
        torch.testing.assert_close(conv_outputs(back, x, matmul=True), conv_outputs(back, x, matmul=False),
                                   atol=1e-5, rtol=1e-4)
        torch.manual_seed(1)
        other = QualityFMModel(QualityFMConfig.from_preset("base")).eval()
        conv_outputs(back, x, matmul=True)
        back.load_state_dict(other.state_dict())  # copies in place
        torch.testing.assert_close(conv_outputs(back, x, matmul=True), conv_outputs(other, x, matmul=False),
                                   atol=1e-5, rtol=1e-4)


def test_a_deep_copied_teacher_uses_its_own_weights(model):
    x = torch.randn(2, 2, 9000)
    with torch.no_grad():
        conv_outputs(model, x, matmul=True)
        teacher = copy.deepcopy(model)
        for parameter in teacher.parameters():
            parameter.mul_(0.5)
        torch.testing.assert_close(conv_outputs(teacher, x, matmul=True), conv_outputs(teacher, x, matmul=False),
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(conv_outputs(model, x, matmul=True), conv_outputs(model, x, matmul=False),
                                   atol=1e-5, rtol=1e-4)
