"""QualityFMForSelfDistillation: EMA teacher, centre, modality dropout and teacher export (paper notes §2–§3)."""

import math

import pytest
import torch
from pretrain_helpers import RealPairs, small_config

from qualityfm_hf.modeling.distillation_qualityfm import QualityFMForSelfDistillation, momentum_at
from qualityfm_hf.modeling.loss_qualityfm import center_and_sharpen, distillation_loss


@pytest.fixture(scope="module")
def batch():
    pairs = RealPairs()
    items = [pairs[i] for i in range(2)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return QualityFMForSelfDistillation(small_config())


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def perturb_student(model, scale=0.1):
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(scale * torch.randn_like(p))


def test_teacher_starts_as_the_student_and_has_no_trainable_parameters(model):
    for s, t in zip(model.student.parameters(), model.teacher.parameters()):
        assert torch.equal(s, t)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert all(p.requires_grad for p in model.student.parameters())
    assert model.center.shape == (1, 18, 512) and torch.count_nonzero(model.center) == 0


def test_teacher_stays_in_eval_after_model_train(model, batch):
    model.train()
    assert model.training and model.student.training
    assert not model.teacher.training and not any(m.training for m in model.teacher.modules())
    # Dropout off in the teacher: two training forwards give the same teacher output, the student's differ.
    first, second = model(**batch), model(**batch)
    assert torch.equal(first.teacher_hidden_state, second.teacher_hidden_state)
    assert not torch.equal(first.student_hidden_state, second.student_hidden_state)
    model.eval()
    assert not model.student.training and not model.teacher.training


def test_backward_reaches_every_student_parameter_and_no_teacher_parameter(batch):
    # With the absent-channel embedding too: DDP(find_unused_parameters=False) needs a gradient for every parameter.
    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(small_config(use_absent_channel_embedding=True)).train()
    model(**batch).loss.backward()
    missing = [n for n, p in model.student.named_parameters() if p.grad is None]
    assert missing == []
    assert all(p.grad is None for p in model.teacher.parameters())


def test_loss_is_distillation_plus_weighted_spectral_terms(model, batch):
    model.eval()
    out = model(**batch)
    expected = out.distillation_loss + 0.1 * out.amplitude_loss + 0.1 * out.phase_loss
    torch.testing.assert_close(out.loss, expected)
    # The distillation term is the pure function on the model's own outputs with the (zero) centre.
    probs = center_and_sharpen(out.teacher_hidden_state, model.center, 0.04)
    torch.testing.assert_close(out.distillation_loss, distillation_loss(out.student_hidden_state, probs, 0.1))
    assert out.amplitude.shape == out.phase.shape == (2, 2, 512)
    assert model(**batch, return_loss=False).loss is None


def test_ema_update_math(model):
    teacher_before = params(model.teacher)
    perturb_student(model)
    student = params(model.student)
    model.update_teacher(1.0)  # m = 1 keeps the teacher
    assert all(torch.equal(a, b) for a, b in zip(params(model.teacher), teacher_before))
    model.update_teacher(0.5)  # halfway, decoder included
    for t, t0, s in zip(model.teacher.parameters(), teacher_before, student):
        torch.testing.assert_close(t, 0.5 * t0 + 0.5 * s)
    model.update_teacher(0.0)  # m = 0 copies the student
    assert all(torch.equal(t, s) for t, s in zip(params(model.teacher), student))
    decoder_head = model.teacher.decoder.phase_head[2].weight
    assert torch.equal(decoder_head, model.student.decoder.phase_head[2].weight)


def test_momentum_schedule_is_cosine_from_start_to_end():
    assert momentum_at(0, 100) == 0.7
    assert momentum_at(100, 100) == 1.0
    assert momentum_at(50, 100) == pytest.approx(0.85)
    assert momentum_at(25, 100) == pytest.approx(1.0 - 0.3 * (1 + math.cos(math.pi / 4)) / 2)
    assert momentum_at(500, 100) == 1.0  # past the end it stays at the end
    values = [momentum_at(s, 10, 0.9, 0.99) for s in range(11)]
    assert values == sorted(values) and values[0] == 0.9 and values[-1] == pytest.approx(0.99)
    with pytest.raises(ValueError, match="max_steps must be > 0"):
        momentum_at(0, 0)


def test_center_moves_towards_the_batch_mean_in_training_only(model, batch):
    model.eval()
    model(**batch)
    assert torch.count_nonzero(model.center) == 0  # evaluation does not touch the centre
    model.train()
    out = model(**batch)
    expected = 0.1 * out.teacher_hidden_state.mean(0, keepdim=True)  # 0.9 · 0 + 0.1 · mean over the batch
    torch.testing.assert_close(model.center, expected)
    out = model(**batch)
    torch.testing.assert_close(model.center, 0.9 * expected + 0.1 * out.teacher_hidden_state.mean(0, keepdim=True))


def test_update_center_keeps_tokens_no_sample_covers(model):
    model.center.fill_(2.0)
    teacher_out = torch.ones(2, 18, 512)
    mask = torch.ones(2, 18, dtype=torch.bool)
    mask[:, 10:] = False
    model.update_center(teacher_out, mask)
    assert torch.allclose(model.center[0, :10], torch.full((10, 512), 0.9 * 2 + 0.1 * 1))
    assert torch.equal(model.center[0, 10:], torch.full((8, 512), 2.0))
    with pytest.raises(ValueError, match="18"):
        model.update_center(torch.ones(2, 6, 512))


def test_modality_dropout_zeroes_one_channel_of_the_student_in_training(batch):
    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(small_config(modality_dropout=0.99)).train()
    out = model(**batch)
    mask = out.student_channel_mask
    assert mask.shape == (2, 2) and mask.sum(1).tolist() == [1.0, 1.0]  # one channel dropped per pair
    model.eval()
    assert model(**batch).student_channel_mask is None
    # The teacher input is never dropped and the spectral targets stay the teacher window's.
    assert torch.isfinite(out.loss)


def test_exported_teacher_encoder_matches_the_teacher_and_loads_with_automodel(model, batch, tmp_path):
    from transformers import AutoModel

    from qualityfm_hf import QualityFMModel

    perturb_student(model)
    model.update_teacher(0.5)  # teacher differs from both the init and the student
    encoder = model.export_teacher_encoder()
    assert type(encoder) is QualityFMModel and encoder.config.architectures == ["QualityFMModel"]
    assert not encoder.training
    model.eval()
    x = batch["teacher_input_values"]
    expected = model.teacher.qualityfm(x).last_hidden_state
    assert torch.equal(encoder(x).last_hidden_state, expected)
    assert not torch.equal(model.student.qualityfm(x).last_hidden_state, expected)
    encoder.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is QualityFMModel
    torch.testing.assert_close(loaded(x).last_hidden_state, expected, rtol=0, atol=1e-6)
    assert model.config.architectures != ["QualityFMModel"]  # the wrapper's config is untouched


def test_checkpoint_holds_student_teacher_and_center(model, tmp_path):
    perturb_student(model)
    model.update_teacher(0.5)
    model.center.normal_()
    model.save_pretrained(tmp_path)
    reloaded = QualityFMForSelfDistillation.from_pretrained(tmp_path)
    state, restored = model.state_dict(), reloaded.state_dict()
    assert "center" in restored and any(k.startswith("teacher.") for k in restored)
    assert state.keys() == restored.keys()
    assert all(torch.equal(state[k], restored[k]) for k in state)
    assert not reloaded.train().teacher.training
    # from_pretrained materialises fresh Parameters: the teacher must come back frozen.
    assert not any(p.requires_grad for p in reloaded.teacher.parameters())
