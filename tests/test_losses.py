"""Self-distillation losses (modeling/loss_qualityfm.py) on hand-computable cases (paper notes §3)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qualityfm_hf.modeling.loss_qualityfm import (
    center_and_sharpen,
    distillation_loss,
    spectral_loss,
    spectral_targets,
    zscore,
)

T, FS = 9000, 300  # 30 s at 300 Hz: FFT bin k is k/30 Hz


def test_uniform_teacher_and_student_over_k_give_log_k():
    for k in (2, 512):
        student = torch.zeros(3, 18, k)
        teacher_probs = torch.full((3, 18, k), 1.0 / k)
        assert distillation_loss(student, teacher_probs, 0.1).item() == pytest.approx(math.log(k), rel=1e-6)


def test_one_hot_teacher_against_known_student_softmax():
    # softmax([0, τ ln 3] / τ) = [1/4, 3/4]; teacher all on class 0 -> −ln(1/4) = ln 4.
    tau = 0.1
    student = torch.tensor([[[0.0, tau * math.log(3.0)]]])
    teacher = torch.tensor([[[1.0, 0.0]]])
    assert distillation_loss(student, teacher, tau).item() == pytest.approx(math.log(4.0), rel=1e-6)


def test_token_mask_averages_real_tokens_only():
    tau = 0.1
    student = torch.zeros(1, 3, 2)
    student[0, 2] = torch.tensor([0.0, -100.0])  # padded token with a huge loss when the teacher says class 1
    teacher = torch.tensor([[[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]]])
    mask = torch.tensor([[True, True, False]])
    assert distillation_loss(student, teacher, tau, mask).item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert distillation_loss(student, teacher, tau).item() > 100  # the unmasked mean does see it


def test_center_and_sharpen_subtracts_center_and_divides_by_temperature():
    tau = 0.04
    center = torch.tensor([[[1.0, 1.0]]])
    teacher = torch.tensor([[[1.0, 1.0 + tau * math.log(3.0)]]])  # minus centre: [0, τ ln 3] -> [1/4, 3/4]
    probs = center_and_sharpen(teacher, center, tau)
    torch.testing.assert_close(probs, torch.tensor([[[0.25, 0.75]]]))
    # Equal to the centre -> uniform; sharper than the student's temperature would give.
    assert torch.allclose(center_and_sharpen(center, center, tau), torch.full((1, 1, 2), 0.5))
    assert not probs.requires_grad


def test_distillation_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same \(batch, tokens, hidden\)"):
        distillation_loss(torch.zeros(1, 18, 8), torch.zeros(1, 17, 8), 0.1)


def test_sine_on_a_bin_gives_one_spike_of_sqrt_511():
    # sin at bin 50 (50/30 Hz): |X| = T/2 there, 0 elsewhere. z-score of one spike among 512 bins:
    # (1 − 1/512) / sqrt(1/512 · 511/512) = sqrt(511); the other bins −1/sqrt(511).
    t = np.arange(T) / FS
    signal = torch.tensor(np.sin(2 * np.pi * (50 / 30) * t), dtype=torch.float32)[None, None]
    amplitude, _ = spectral_targets(signal)
    assert amplitude.shape == (1, 1, 512)
    assert amplitude[0, 0, 50].item() == pytest.approx(math.sqrt(511), rel=1e-3)
    others = torch.cat([amplitude[0, 0, :50], amplitude[0, 0, 51:]])
    torch.testing.assert_close(others, torch.full_like(others, -1 / math.sqrt(511)), atol=1e-3, rtol=0)


def test_power_target_squares_the_magnitude():
    # Two tones of amplitude 1 and 2 at bins 50 and 100: |X| = 4500, 9000; |X|² = 4500², 9000².
    t = np.arange(T) / FS
    x = np.sin(2 * np.pi * (50 / 30) * t) + 2 * np.sin(2 * np.pi * (100 / 30) * t)
    signal = torch.tensor(x, dtype=torch.float32)[None, None]
    for target, (a, b) in {"magnitude": (4500.0, 9000.0), "power": (4500.0**2, 9000.0**2)}.items():
        expected = np.zeros(512)
        expected[50], expected[100] = a, b
        expected = (expected - expected.mean()) / expected.std()
        amplitude, _ = spectral_targets(signal, target=target)
        np.testing.assert_allclose(amplitude[0, 0].numpy(), expected, atol=2e-3)


def test_delayed_impulse_gives_flat_amplitude_and_linear_phase():
    # δ[n − 1]: |X| = 1 everywhere (a constant row: float noise over eps, not NaN), phase −2πk/T, a line z-scored to
    # −(k − 255.5) / std(0..511), std = sqrt((512² − 1) / 12) = 147.80.
    signal = torch.zeros(1, 1, T)
    signal[..., 1] = 1.0
    amplitude, phase = spectral_targets(signal)
    assert torch.isfinite(amplitude).all() and amplitude.abs().max() < 0.5
    k = torch.arange(512, dtype=torch.float32)
    expected = -(k - 255.5) / math.sqrt((512**2 - 1) / 12)
    torch.testing.assert_close(phase[0, 0], expected, atol=1e-4, rtol=0)
    assert phase[0, 0, 0].item() == pytest.approx(1.7287, abs=1e-4)


def test_zero_channel_gives_zeros_not_nan():
    signal = torch.zeros(2, 2, T)
    signal[:, 0] = torch.randn(2, T)
    amplitude, phase = spectral_targets(signal)
    assert torch.isfinite(amplitude).all() and torch.isfinite(phase).all()
    assert torch.count_nonzero(amplitude[:, 1]) == 0 and torch.count_nonzero(phase[:, 1]) == 0
    assert zscore(torch.zeros(4)).tolist() == [0.0] * 4


def test_spectral_targets_rejects_bad_arguments():
    with pytest.raises(ValueError, match="one of"):
        spectral_targets(torch.zeros(1, 2, T), target="energy")
    with pytest.raises(ValueError, match="exceeds the 501"):
        spectral_targets(torch.zeros(1, 2, 1000), num_bins=512)


def test_spectral_loss_is_smooth_l1_with_beta_one():
    pred = torch.zeros(1, 2, 2)
    target = torch.tensor([[[0.5, 2.0], [0.0, 4.0]]])
    # 0.5·0.5² = 0.125 (quadratic below β = 1); 2 − 0.5 = 1.5 and 4 − 0.5 = 3.5 (linear above).
    assert spectral_loss(pred, target).item() == pytest.approx((0.125 + 1.5 + 0.0 + 3.5) / 4)
    assert spectral_loss(pred, target).item() == pytest.approx(F.smooth_l1_loss(pred, target).item())
    # An absent second channel is left out of the mean.
    mask = torch.tensor([[1.0, 0.0]])
    assert spectral_loss(pred, target, mask).item() == pytest.approx((0.125 + 1.5) / 2)


def test_losses_compute_in_float32_for_bfloat16_inputs():
    student = torch.randn(2, 18, 512).bfloat16()
    probs = center_and_sharpen(torch.randn(2, 18, 512).bfloat16(), torch.zeros(1, 18, 512), 0.04)
    loss = distillation_loss(student, probs, 0.1)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    amplitude, phase = spectral_targets(torch.randn(2, 2, T).bfloat16())
    assert amplitude.dtype == torch.float32 and torch.isfinite(phase).all()
