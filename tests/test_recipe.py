"""The default pretraining recipe: learnable spectral targets, the pooled distillation head, KoLeo, the collapse
monitors, same-window views and self-pairs (pretraining.RECIPES["default"])."""

import math

import numpy as np
import pytest
import torch
from pretrain_helpers import RealPairs, small_config
from test_training import training_args

from qualityfm_hf.modeling.distillation_qualityfm import QualityFMForSelfDistillation, teacher_temperature_at
from qualityfm_hf.modeling.loss_qualityfm import (
    koleo_loss,
    log_band_powers,
    log_power_spectrum,
    spectral_targets,
)
from qualityfm_hf.pairs.build import self_pairs
from qualityfm_hf.pretraining import RECIPES, PairCollator, get_recipe, pretrain
from qualityfm_hf.pretraining.monitors import (
    collapse_monitors,
    collapse_warnings,
    effective_rank,
    mean_pairwise_cosine,
)

RATE = 300


def pooled_config(**overrides):
    values = dict(RECIPES["default"].config, num_prototypes=64, projection_hidden_size=32,
                  projection_bottleneck_size=16, distillation_loss_weight=1.0)
    values.update(overrides)
    return small_config(**values)


def sine(hz, seconds=30.0, offset=0.0):
    t = torch.arange(int(seconds * RATE)) / RATE
    return torch.sin(2 * math.pi * hz * t) + offset


# ---- spectral targets -------------------------------------------------------------------------------------------


def test_log_power_target_removes_the_mean_so_the_rhythm_peak_wins():
    signal = torch.stack([sine(1.2, offset=5.0), sine(2.0)])[None]  # (1, 2, 9000), a large DC offset on channel 0
    target = log_power_spectrum(signal, 512)
    assert target.shape == (1, 2, 512)
    # 1.2 Hz is bin 36 at 1/30 Hz per bin (the 9-bin smoothing spreads a pure tone over 32-40), not the DC bin.
    assert target[0, 0, 36] == target[0, 0].max() and target[0, 0, 0] < 0
    assert target[0, 1, 60] == target[0, 1].max()
    # The paper's z-scored |FFT| of the same window puts its maximum on DC.
    assert int(spectral_targets(signal, 512, "magnitude")[0][0, 0].argmax()) == 0


def test_log_band_powers_peak_in_the_band_of_the_frequency_and_stay_finite_for_a_zero_channel():
    signal = torch.stack([sine(1.2), torch.zeros(9000)])[None]
    bands = log_band_powers(signal, RATE, num_bands=64, low_hz=0.5, high_hz=20.0)
    edges = np.geomspace(0.5, 20.0, 65)
    peak = int(bands[0, 0].argmax())
    assert edges[peak] <= 1.2 < edges[peak + 1]
    assert torch.isfinite(bands).all() and torch.count_nonzero(bands[0, 1]) == 0
    with pytest.raises(ValueError, match="band edges"):
        log_band_powers(signal, RATE, low_hz=0.5, high_hz=200.0)


def test_koleo_is_larger_for_near_duplicate_embeddings():
    torch.manual_seed(0)
    spread = torch.randn(16, 32)
    crowded = spread.clone()
    crowded[1] = crowded[0] + 1e-3
    assert koleo_loss(crowded) > koleo_loss(spread) + 0.1
    assert koleo_loss(spread[:1]) == 0


# ---- collapse monitors ------------------------------------------------------------------------------------------


def test_monitors_flag_both_collapse_modes_and_pass_a_healthy_batch():
    torch.manual_seed(0)
    embeddings = torch.randn(32, 64)
    one_hot = torch.zeros(32, 16)
    one_hot[:, 3] = 1.0  # every window on one prototype
    dominated = collapse_monitors(one_hot, embeddings, embeddings)
    assert dominated["distinct_prototypes"] == 1 and dominated["teacher_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert any("same argmax" in w for w in collapse_warnings(dominated, 16))

    uniform = collapse_monitors(torch.full((32, 16), 1 / 16), embeddings, embeddings)
    assert any("near uniform" in w for w in collapse_warnings(uniform, 16))

    healthy = collapse_monitors(torch.eye(16).repeat(2, 1) * 0.9 + 0.1 / 16, embeddings, embeddings)
    assert healthy["distinct_prototypes"] == 16 and collapse_warnings(healthy, 16) == []


def test_effective_rank_and_cosine_see_dimensional_collapse():
    torch.manual_seed(0)
    line = torch.randn(32, 1) * torch.randn(1, 64)  # rank one
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    assert effective_rank(torch.randn(32, 64)) > 20
    assert mean_pairwise_cosine(torch.ones(8, 4)) == pytest.approx(1.0)
    collapsed = collapse_monitors(torch.eye(16).repeat(2, 1), line, line)
    assert any("student rank" in w for w in collapse_warnings(collapsed, 16))


# ---- the wrapper with the pooled target -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch():
    pairs = RealPairs()
    return PairCollator(augment=False)([pairs[i] for i in range(4)])


def test_pooled_target_trains_student_and_heads_never_the_teacher(batch):
    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(pooled_config()).train()
    assert model.center.shape == (1, 64)
    for s, t in zip(model.student_head.parameters(), model.teacher_head.parameters()):
        assert torch.equal(s, t) and not t.requires_grad
    out = model(**batch)
    out.loss.backward()
    assert out.teacher_probabilities.shape == (4, 64)
    assert torch.allclose(out.teacher_probabilities.sum(-1), torch.ones(4))
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []  # DDP(find_unused_parameters=False) needs every trainable parameter in the graph
    assert all(p.grad is None for m in model.teacher_modules() for p in m.parameters())
    assert model.band_power_head is not None and out.band_power_loss > 0
    weights = model.config
    expected = (weights.distillation_loss_weight * out.distillation_loss + weights.amplitude_loss_weight
                * out.amplitude_loss + weights.phase_loss_weight * out.phase_loss + weights.koleo_loss_weight
                * out.koleo_loss + weights.band_power_loss_weight * out.band_power_loss)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.count_nonzero(model.center) > 0  # the per-prototype centre moved in training


def test_without_a_distillation_term_the_teacher_is_not_run_and_only_tracks_the_student(batch):
    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(pooled_config(distillation_loss_weight=0.0)).train()
    assert model.student_head is None and model.teacher_head is None
    out = model(**batch)
    out.loss.backward()
    assert out.teacher_probabilities is None and out.teacher_pooled is None and out.distillation_loss == 0
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    assert set(collapse_monitors(None, out.student_pooled, None)) == {"student_rank", "student_cosine"}
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    model.update_teacher(0.0)  # the EMA still runs: the exported encoder is the teacher
    for s, t in zip(model.student.parameters(), model.teacher.parameters()):
        assert torch.equal(s, t)


def test_update_teacher_moves_the_projection_head_too(batch):
    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(pooled_config())
    with torch.no_grad():
        for p in model.student_head.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.teacher_head.parameters()]
    model.update_teacher(0.5)
    for old, new, student in zip(before, model.teacher_head.parameters(), model.student_head.parameters()):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * student)


def test_teacher_temperature_warms_up_linearly_then_stays():
    config = pooled_config()  # 0.04 -> 0.07 over the first 30 % of the steps
    assert teacher_temperature_at(0, 100, config) == pytest.approx(0.04)
    assert teacher_temperature_at(15, 100, config) == pytest.approx(0.055)
    assert teacher_temperature_at(30, 100, config) == teacher_temperature_at(99, 100, config) == 0.07
    assert teacher_temperature_at(0, 100, small_config()) == 0.04  # the paper: constant


# ---- data ---------------------------------------------------------------------------------------------------------


def test_same_window_fraction_gives_the_student_the_teachers_window():
    pairs = RealPairs(with_channel_mask=True)
    items = [pairs[i] for i in range(6)]
    same = PairCollator(augment=False, same_window_fraction=1.0)(items)
    assert torch.equal(same["student_input_values"], same["teacher_input_values"])
    assert torch.equal(same["student_channel_mask"], same["teacher_channel_mask"])
    never = PairCollator(augment=False, same_window_fraction=0.0)(items)
    assert not torch.equal(never["student_input_values"], never["teacher_input_values"])
    # With augmentation the two views of one window differ by their own draws.
    views = PairCollator(augment=True, same_window_fraction=1.0)(items)
    assert not torch.equal(views["student_input_values"], views["teacher_input_values"])


def test_self_pairs_cover_exactly_the_windows_without_a_partner():
    pairs = np.array([[0, 2], [3, 2]])
    assert self_pairs(5, pairs).tolist() == [[1, 1], [4, 4]]
    assert self_pairs(3, np.zeros((0, 2), np.int64)).tolist() == [[0, 0], [1, 1], [2, 2]]


# ---- the recipe end to end ----------------------------------------------------------------------------------------


def test_default_recipe_without_distillation_logs_the_embedding_monitors(tmp_path):
    config = small_config(**RECIPES["default"].config)
    assert config.distillation_loss_weight == 0 and config.student_crop_min_seconds == 10
    trainer = pretrain(RealPairs(), config, training_args(tmp_path, max_steps=2), export=False)
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2 and all("student_rank" in e and "teacher_entropy" not in e for e in logged)
    assert all(np.isfinite(e["loss"]) and e["band_power_loss"] > 0 for e in logged)


def test_default_recipe_logs_the_monitors_and_uses_adamw(tmp_path):
    assert get_recipe("default").decoupled_weight_decay and not get_recipe("paper").decoupled_weight_decay
    with pytest.raises(ValueError, match="has to be one of"):
        get_recipe("fast")
    trainer = pretrain(RealPairs(), pooled_config(), training_args(tmp_path, max_steps=3), export=True)
    assert type(trainer.optimizer).__name__ == "AdamW" or "AdamW" in type(trainer.optimizer.optimizer).__name__
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3
    for entry in logged:
        assert np.isfinite(entry["loss"]) and 0 < entry["teacher_entropy"] <= math.log(64) + 1e-6
        assert 1 <= entry["distinct_prototypes"] <= 2  # batch of 2
        assert entry["student_rank"] >= 1 and "band_power_loss" in entry
    assert (tmp_path / "loss_curves.png").stat().st_size > 10_000


def test_student_crop_is_renormalised_padded_and_masked():
    from qualityfm_hf.pretraining.collator import crop_window

    rng = np.random.default_rng(0)
    window = np.stack([np.sin(np.arange(9000) / 50.0), np.zeros(9000)]).astype(np.float32) * 3.0
    crop, length = crop_window(window, 3000, rng, channel_mask=np.array([1, 0]))
    assert 3000 <= length <= 9000
    assert crop[0, :length].min() == pytest.approx(-1.0) and crop[0, :length].max() == pytest.approx(1.0)
    assert not crop[:, length:].any() and not crop[1].any()  # padding and the absent channel stay zero
    pairs = RealPairs(with_channel_mask=True)
    batch = PairCollator(student_crop_min_samples=3000)([pairs[i] for i in range(4)])
    lengths = batch["student_attention_mask"].sum(1)
    assert batch["student_attention_mask"].shape == (4, 9000) and (lengths >= 3000).all()
    assert "teacher_attention_mask" not in batch  # the targets stay those of the whole teacher window
    out = QualityFMForSelfDistillation(pooled_config(student_crop_min_seconds=10)).train()(**batch)
    assert torch.isfinite(out.loss)


# ---- the quality head -------------------------------------------------------------------------------------------


def test_quality_score_loss_averages_present_scored_channels_only():
    from qualityfm_hf.modeling.loss_qualityfm import quality_score_loss

    pred = torch.tensor([[0.5, 0.2], [0.9, 0.0]], requires_grad=True)
    target = torch.tensor([[float("nan"), 0.4], [0.7, 1.0]])  # PPG of the first window was not scored
    mask = torch.tensor([[1, 1], [1, 0]])  # the second window's ECG was dropped
    loss = quality_score_loss(pred, target, mask)
    assert loss.item() == pytest.approx(((0.2 - 0.4) ** 2 + (0.9 - 0.7) ** 2) / 2)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 0] == 0 and pred.grad[1, 1] == 0
    nothing = quality_score_loss(pred, torch.full((2, 2), float("nan")))
    assert nothing.item() == 0.0  # no scored channel: no signal, not NaN
    with pytest.raises(ValueError, match="same shape"):
        quality_score_loss(pred, target[:, :1])


def test_collator_gives_the_scores_of_the_window_the_student_sees():
    pairs = RealPairs()
    items = []
    for i in range(4):
        item = dict(pairs[i])
        item["teacher_quality_scores"] = torch.tensor([0.9, 0.8])
        item["student_quality_scores"] = torch.tensor([0.1, float("nan")])
        items.append(item)
    crossed = PairCollator(augment=False)(items)["student_quality_scores"]
    assert torch.equal(crossed[:, 0], torch.full((4,), 0.1)) and crossed[:, 1].isnan().all()
    same = PairCollator(augment=False, same_window_fraction=1.0)(items)["student_quality_scores"]
    assert torch.equal(same, torch.tensor([[0.9, 0.8]] * 4))
    assert "student_quality_scores" not in PairCollator(augment=False)([pairs[0], pairs[1]])


def test_quality_head_is_in_the_loss_and_learns_real_window_scores():
    from qualityfm_hf.quality import ecg_quality, ppg_quality

    pairs = RealPairs()
    items = []
    for i in range(6):
        item = dict(pairs[i])
        window = item["student_input_values"].numpy()
        item["teacher_quality_scores"] = torch.zeros(2)  # unused: no same-window items here
        item["student_quality_scores"] = torch.tensor([ppg_quality(window[0], RATE), ecg_quality(window[1], RATE)])
        items.append(item)
    batch = PairCollator(augment=False)(items)
    assert torch.isfinite(batch["student_quality_scores"]).all()
    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(pooled_config(distillation_loss_weight=0.0, quality_loss_weight=1.0,
                                                       modality_dropout=0.0)).train()
    out = model(**batch)
    weights = model.config
    expected = (weights.amplitude_loss_weight * out.amplitude_loss + weights.koleo_loss_weight * out.koleo_loss
                + weights.band_power_loss_weight * out.band_power_loss + out.quality_loss)
    assert out.quality_loss > 0 and out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    optimizer = torch.optim.Adam(model.quality_head.parameters(), lr=1e-2)
    first = out.quality_loss.item()
    for _ in range(30):
        optimizer.zero_grad()
        out = model(**batch)
        out.loss.backward()  # only the quality head steps; the output's components are detached
        optimizer.step()
    assert out.quality_loss.item() < 0.5 * first
    without = QualityFMForSelfDistillation(pooled_config(distillation_loss_weight=0.0, quality_loss_weight=0.0)).train()
    assert without.quality_head is None and without(**batch).quality_loss == 0


def test_rhythm_targets_are_standardised_rr_statistics_and_the_head_trains_on_them():
    from qualityfm_hf.finetuning.baselines import af_features
    from qualityfm_hf.modeling.rhythm_qualityfm import RHYTHM_CENTER, RHYTHM_SCALE
    from qualityfm_hf.pretraining.collator import rhythm_targets

    pairs = RealPairs(with_channel_mask=True)
    window = pairs[0]["student_input_values"].numpy()
    target = rhythm_targets(window, np.ones(2), RATE)
    raw = af_features(window.astype(np.float64), np.ones(2, np.int64), RATE)
    assert target.shape == (8,) and np.isfinite(target).all()
    np.testing.assert_allclose(target, np.clip((raw - RHYTHM_CENTER) / RHYTHM_SCALE, -5, 5), rtol=1e-5)
    assert 40 < raw[0] < 200  # a heart rate in bpm, from the real ECG of v100s
    assert np.isnan(rhythm_targets(window, np.array([1, 0]), RATE)).all()  # no ECG, no rhythm

    collator = PairCollator(augment=False, rhythm_features=True, sampling_rate=RATE)
    batch = collator([pairs[i] for i in range(4)])
    np.testing.assert_array_equal(batch["student_rhythm_features"][0].numpy(), target)
    assert len(collator._rhythm_cache) == 4  # computed once per window

    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(pooled_config(distillation_loss_weight=0.0, rhythm_loss_weight=1.0,
                                                       modality_dropout=0.0)).train()
    out = model(**batch)
    assert out.rhythm_loss > 0
    no_ecg = dict(batch, student_channel_mask=torch.tensor([[1, 0]] * 4))
    assert model(**no_ecg).rhythm_loss == 0  # the student saw no ECG: nothing to read the rhythm from
    optimizer = torch.optim.Adam(model.rhythm_head.parameters(), lr=1e-2)
    first = out.rhythm_loss.item()
    for _ in range(30):
        optimizer.zero_grad()
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
    assert out.rhythm_loss.item() < 0.5 * first


def test_pretrain_help_says_which_loss_terms_the_default_recipe_trains(capsys):
    # Issue 20 item 5.2: the help promised distillation through a projection head, teacher entropy and prototypes,
    # with the distillation weight at 0. Every term of weight > 0 is listed with its weight, the others as off.
    import re

    from qualityfm_hf.cli.main import main
    from qualityfm_hf.modeling.configuration_qualityfm import QualityFMConfig
    from qualityfm_hf.pretraining.recipes import loss_weights

    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = capsys.readouterr().out
    default = text[text.index("--recipe default (the default)"):text.index("--recipe paper is")]
    weights = loss_weights(QualityFMConfig.from_preset("base", **get_recipe("default").config))
    on = {name for name, weight in weights.items() if weight > 0}
    for name, weight in weights.items():
        listed = re.search(rf"^  {name} +{weight:g} ", default, re.M)
        assert bool(listed) == (name in on), name
    off = default[default.index("at weight 0"):]
    assert all(name in off for name in set(weights) - on) and "--set distillation_loss_weight=1" in off
    assert "teacher entropy" not in default  # only with a distillation term, as the paragraph after says
