"""Config, encoder, decoder and pretraining architecture."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config
from huggingface_hub.errors import StrictDataclassClassValidationError

from qualityfm_hf import QualityFMConfig, QualityFMForPretraining, QualityFMModel


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "preset, expected",
    [("base", 9_576_714), ("large", 70_589_706), ("huge", 319_552_778)],  # meta device: no memory, < 1 s
)
def test_pretraining_parameter_count_equals_reference_architecture(preset, expected):
    with torch.device("meta"):  # counts only; no memory for the huge model
        model = QualityFMForPretraining(QualityFMConfig.from_preset(preset))
    assert num_params(model) == expected


def test_base_encoder_alone_has_paper_size():
    with torch.device("meta"):
        model = QualityFMModel(QualityFMConfig.from_preset("base"))
    assert num_params(model) == 4_255_005


def test_absent_channel_embedding_is_off_in_presets_and_adds_num_channels_times_hidden():
    with torch.device("meta"):
        plain = QualityFMForPretraining(QualityFMConfig.from_preset("base"))
        extended = QualityFMForPretraining(QualityFMConfig.from_preset("base", use_absent_channel_embedding=True))
    assert num_params(extended) - num_params(plain) == 2 * 512


def test_from_preset_overrides_win_and_unknown_preset_lists_choices():
    config = QualityFMConfig.from_preset("huge", window_size=4)
    assert (config.num_attention_heads, config.num_hidden_layers, config.window_size) == (8, 50, 4)
    with pytest.raises(ValueError, match=r"choose one of \['base', 'huge', 'large'\]"):
        QualityFMConfig.from_preset("medium")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window_size=7), "window_size must be an even number"),
        (dict(hidden_size=510, conv_dim=(5, 51, 510)), r"hidden_size \(510\) must be divisible by num_attention_heads"),
        (dict(pooling="cls"), "pooling is 'cls', but has to be one of"),
        (dict(channel_names=("PPG",)), "must have num_channels"),
        (dict(conv_kernel=(201, 101)), "one entry per conv layer"),
        (dict(hidden_dropout=1.5), "hidden_dropout must be in"),
        (dict(classifier_rhythm_features=-1), "classifier_rhythm_features must be >= 0; got -1"),
    ],
)
def test_config_rejects_impossible_combinations_with_the_values(kwargs, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        QualityFMConfig(**kwargs)


def test_config_derived_lengths_follow_conv_arithmetic():
    config = QualityFMConfig()
    assert config.total_stride == 500
    assert config.num_tokens(9000) == 18  # 30 s
    assert config.num_tokens(3000) == 6  # 10 s, the VT window
    assert config.segment_tokens == 18
    assert config.half_window == 4


def test_config_round_trips_through_json(tmp_path):
    config = QualityFMConfig.from_preset("large", use_absent_channel_embedding=True)
    config.save_pretrained(tmp_path)
    loaded = QualityFMConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.conv_kernel == (201, 101, 51) and loaded.channel_names == ("PPG", "ECG_II")


def test_base_shapes_30s_gives_18_tokens_and_10s_gives_6():
    torch.manual_seed(0)
    model = QualityFMForPretraining(QualityFMConfig.from_preset("base")).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 9000))
        short = model.qualityfm(torch.randn(2, 2, 3000))
    assert out.last_hidden_state.shape == (2, 18, 512)
    assert out.amplitude.shape == out.phase.shape == (2, 2, 512)
    assert short.last_hidden_state.shape == (2, 6, 512) and short.pooler_output.shape == (2, 512)


def test_pretraining_refuses_non_segment_length_with_fix():
    model = QualityFMForPretraining(QualityFMConfig.from_preset("base")).eval()
    with pytest.raises(ValueError, match="Cut the signal into 30.0-s windows"):
        model(torch.randn(1, 2, 3000))


def test_padding_does_not_change_real_tokens():
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config()).eval()
    short, long = torch.randn(1, 2, 3000), torch.randn(1, 2, 6000)
    batch = torch.zeros(2, 2, 6000)
    batch[0, :, :3000], batch[1] = short[0], long[0]
    mask = torch.zeros(2, 6000, dtype=torch.long)
    mask[0, :3000], mask[1] = 1, 1
    with torch.no_grad():
        padded = model(batch, attention_mask=mask)
        alone = model(short)
    assert padded.token_mask[0].sum() == 6 and padded.token_mask[1].sum() == 12
    torch.testing.assert_close(padded.last_hidden_state[0, :6], alone.last_hidden_state[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded.pooler_output[0], alone.pooler_output[0], atol=1e-5, rtol=1e-5)


def test_padding_values_are_ignored():
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config()).eval()
    x = torch.randn(1, 2, 6000)
    mask = torch.ones(1, 6000, dtype=torch.long)
    mask[:, 4000:] = 0
    noisy = x.clone()
    noisy[:, :, 4000:] = 1e3
    with torch.no_grad():
        a, b = model(x, attention_mask=mask), model(noisy, attention_mask=mask)
    torch.testing.assert_close(a.pooler_output, b.pooler_output)


def test_missing_channel_is_zeroed_and_flagged_by_absent_embedding():
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config(use_absent_channel_embedding=True)).eval()
    x = torch.randn(1, 2, 3000)
    flat = x.clone()
    flat[:, 0] = 0
    no_ppg = torch.tensor([[0, 1]])
    with torch.no_grad():
        masked = model(x, channel_mask=no_ppg).last_hidden_state
        masked_flat = model(flat, channel_mask=no_ppg).last_hidden_state
        just_flat = model(flat).last_hidden_state
    torch.testing.assert_close(masked, masked_flat)  # the absent channel's content is ignored
    assert not torch.allclose(masked, just_flat)  # "missing" differs from "flat"


def test_output_hidden_states_and_attentions():
    model = QualityFMModel(tiny_config()).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 4500), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (2, 4, 9, 9)
    tuple_out = model(torch.randn(2, 2, 4500), return_dict=False)
    assert isinstance(tuple_out, tuple) and tuple_out[0].shape == (2, 9, 16)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = QualityFMModel(tiny_config(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0))
    x = torch.randn(2, 2, 4000)
    model.train()
    model(x).last_hidden_state.square().sum().backward()
    reference = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.activation_checkpointing_enable()
    assert model.encoder.layers[0].gradient_checkpointing
    model(x).last_hidden_state.square().sum().backward()
    for ref, param in zip(reference, model.parameters()):
        torch.testing.assert_close(param.grad, ref)


def test_bfloat16_loading_runs_and_stays_close_to_float32(tmp_path):
    from transformers import AutoModel

    torch.manual_seed(0)
    QualityFMModel(QualityFMConfig.from_preset("base")).save_pretrained(tmp_path)
    fp32 = AutoModel.from_pretrained(tmp_path).eval()
    bf16 = AutoModel.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert bf16.dtype == torch.bfloat16
    x = torch.rand(2, 2, 9000) * 2 - 1
    with torch.no_grad():
        a = fp32(x).last_hidden_state
        b = bf16(x.bfloat16()).last_hidden_state.float()
    assert torch.isfinite(b).all()
    # bf16 keeps 8 bits of mantissa; after 2 layers the tokens agree to a few percent of their scale.
    assert (a - b).abs().max() / a.abs().max() < 0.1


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.randn(9000), r"must be \(batch, 2, time\) = \[PPG, ECG_II\]; got \(9000,\)"),
        (torch.randn(2, 9000), r"A single window needs a batch axis"),
        (torch.randn(1, 9000, 2), r"WFDB arrays are \(samples, channels\): transpose"),
        (torch.randn(1, 3, 9000), r"got \(1, 3, 9000\)"),
        (torch.ones(1, 2, 9000, dtype=torch.long), r"floating-point tensor .* got torch.int64"),
        (torch.full((1, 2, 9000), float("nan")), r"18000 NaN/inf values"),
        (torch.randn(1, 2, 499), r"one token needs at least 500"),
        (torch.randn(1, 2, 9000).numpy(), r"must be a torch.Tensor .* got ndarray"),
    ],
)
def test_bad_input_raises_expected_found_and_fix(bad, message):
    model = QualityFMModel(tiny_config()).eval()
    with pytest.raises(ValueError, match=message):
        model(bad)


def test_bad_masks_raise():
    model = QualityFMModel(tiny_config()).eval()
    x = torch.randn(2, 2, 3000)
    with pytest.raises(ValueError, match=r"attention_mask must be \(batch, time\) = \(2, 3000\)"):
        model(x, attention_mask=torch.ones(2, 2999))
    with pytest.raises(ValueError, match="no real samples"):
        model(x, attention_mask=torch.stack([torch.ones(3000), torch.zeros(3000)]))
    with pytest.raises(ValueError, match=r"channel_mask must be \(batch, 2\)"):
        model(x, channel_mask=torch.ones(2, 3))


def test_finite_input_never_gives_nan_even_at_extremes():
    model = QualityFMForPretraining(QualityFMConfig.from_preset("base")).eval()
    x = torch.zeros(3, 2, 9000)
    x[1] = 1e4  # far outside the normalised range
    x[2, :, ::2] = -1e4
    with torch.no_grad():
        out = model(x)
    for tensor in (out.last_hidden_state, out.amplitude, out.phase):
        assert torch.isfinite(tensor).all()


def test_huge_finite_input_is_rescaled_not_nan_and_normal_input_is_untouched(monkeypatch):
    # Issue 10 item 6: finite input scaled by 1e25 gave 18,432 NaN tokens with input_values alone (float32 GroupNorm
    # statistics overflow); with masks it was finite only because the masked path divided by an infinite variance.
    torch.manual_seed(0)
    model = QualityFMModel(QualityFMConfig.from_preset("base")).eval()
    x = torch.randn(2, 2, 9000).clamp(-1, 1)
    with torch.no_grad():
        reference = model(x).pooler_output
        for scale in (1e7, 1e25, 1e37):
            for kwargs in ({}, {"attention_mask": torch.ones(2, 9000), "channel_mask": torch.ones(2, 2)}):
                out = model(x * scale, **kwargs)
                assert torch.isfinite(out.last_hidden_state).all(), (scale, kwargs)
                # GroupNorm follows the first conv: a rescaled window means what the window means.
                torch.testing.assert_close(out.pooler_output, reference, atol=1e-3, rtol=0)
        # Below the threshold the input reaches the convs unchanged: the same numbers, bit for bit, as without the
        # guard.
        from qualityfm_hf.modeling import modeling_qualityfm

        below = x * (modeling_qualityfm.LARGE_INPUT / 2)
        guarded = model(below).last_hidden_state
        monkeypatch.setattr(modeling_qualityfm, "LARGE_INPUT", float("inf"))
        assert torch.equal(model(below).last_hidden_state, guarded)
