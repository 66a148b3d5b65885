"""Self-distillation training (qualityfm_hf/pretraining/, cli/pretrain.py) on real v100s pairs (paper notes §2, §4.2)."""

import json
import math

import numpy as np
import pytest
import torch
from pretrain_helpers import RealPairs, small_config
from transformers import AutoModel, TrainerCallback

from qualityfm_hf.modeling.distillation_qualityfm import QualityFMForSelfDistillation, momentum_at
from qualityfm_hf.pretraining import (
    PairCollator,
    QualityFMDistillationTrainer,
    default_training_arguments,
    pretrain,
)
from qualityfm_hf.pretraining.collator import augment_window
from qualityfm_hf.pretraining.plots import plot_loss_curves
from qualityfm_hf.pretraining.recipes import scaled_learning_rate, weight_decay_at


def training_args(output_dir, **overrides):
    values = dict(
        per_device_train_batch_size=2, logging_steps=1, save_strategy="no", use_cpu=True, seed=0,
        full_determinism=True, disable_tqdm=True,
    )
    values.update(overrides)
    return default_training_arguments(output_dir, **values)


class StopAt(TrainerCallback):
    """Ends training after step k as a crash would, leaving only the checkpoints saved so far."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


class RecordWeightDecay(TrainerCallback):
    def __init__(self):
        self.values = []

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.values.append(optimizer.param_groups[0]["weight_decay"])


# ---- collator ------------------------------------------------------------------------------------------------


def test_collator_is_deterministic_per_seed_and_epoch_and_augments_windows_independently():
    pairs = RealPairs(with_channel_mask=True)
    items = [pairs[i] for i in range(3)]
    first, again = PairCollator(seed=1)(items), PairCollator(seed=1)(items)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert first["teacher_input_values"].shape == (3, 2, 9000) and first["teacher_channel_mask"].shape == (3, 2)
    other_seed = PairCollator(seed=2)(items)
    assert not torch.equal(first["teacher_input_values"], other_seed["teacher_input_values"])
    next_epoch = PairCollator(seed=1)
    next_epoch.set_epoch(1)
    assert not torch.equal(first["student_input_values"], next_epoch(items)["student_input_values"])
    # Seeded by the pair itself: the same pair gets the same augmentation in any batch position.
    assert torch.equal(PairCollator(seed=1)(items[::-1])["teacher_input_values"][2], first["teacher_input_values"][0])
    plain = PairCollator(augment=False)(items)
    assert torch.equal(plain["student_input_values"][1], items[1]["student_input_values"])
    # At least one window in the batch was changed.
    assert not torch.equal(first["student_input_values"], plain["student_input_values"])


def test_augmentations_follow_the_paper_table():
    window = np.ones((2, 9000), dtype=np.float32)
    spans, scales = [], []
    for seed in range(1000):
        out = augment_window(window, np.random.default_rng(seed))
        zero = np.flatnonzero((out[0] == 0) & (out[1] == 0))
        if zero.size:
            assert zero[-1] - zero[0] + 1 == zero.size  # one contiguous span over both channels
            spans.append(zero.size)
        scales.append(np.median(out / window))
    assert 450 <= min(spans) and max(spans) < 900  # U[T/20, T/10)
    assert 0.25 < len(spans) / 1000 < 0.35  # p = 0.3 (binomial sd 0.014)
    assert 0.9 - 0.1 - 0.03 < min(scales) and max(scales) < 1.1 + 0.1 + 0.03  # scale ± DC shift ± noise
    assert window.min() == 1.0  # the input is not modified in place


def test_collator_names_the_missing_key():
    with pytest.raises(ValueError, match=r"lacks \['student_input_values'\]"):
        PairCollator()([{"teacher_input_values": np.zeros((2, 9000), np.float32)}])


# ---- optimiser and schedules ----------------------------------------------------------------------------------


def test_optimizer_is_adam_with_decay_on_weights_only_and_scaled_lr(tmp_path):
    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(small_config())
    args = training_args(tmp_path, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    trainer = QualityFMDistillationTrainer(model=model, args=args, base_learning_rate=1e-4)
    optimizer = trainer.create_optimizer()
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["foreach"]
    assert trainer.learning_rate == pytest.approx(1e-4 * 8 / 256) == scaled_learning_rate(1e-4, 8)
    decay, no_decay = optimizer.param_groups
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert decay["weight_decay"] == 0.04 and no_decay["weight_decay"] == 0.0
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.student.parameters()}  # every student parameter, no teacher one
    assert scaled_learning_rate(1e-4, 512) == pytest.approx(2e-4)  # the paper's batch


def test_weight_decay_schedule_endpoints():
    assert weight_decay_at(0, 10) == pytest.approx(0.04)
    assert weight_decay_at(10, 10) == pytest.approx(0.4)
    assert weight_decay_at(5, 10) == pytest.approx(0.22)


# ---- training runs ---------------------------------------------------------------------------------------------


def state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def assert_resumed_run_equals_uninterrupted(tmp_path, total, kill_at):
    """Train `total` steps; separately train to `kill_at` (checkpointing there) and resume to `total`."""
    pairs = RealPairs()
    full = pretrain(pairs, small_config(), training_args(tmp_path / "full", max_steps=total), export=False)
    interrupted = training_args(tmp_path / "cut", max_steps=total, save_strategy="steps", save_steps=kill_at)
    cut = pretrain(pairs, small_config(), interrupted, export=False, callbacks=[StopAt(kill_at)])
    assert cut.state.global_step == kill_at
    resumed = pretrain(
        pairs, small_config(), interrupted, export=False, resume_from_checkpoint=str(tmp_path / "cut" / f"checkpoint-{kill_at}")
    )
    assert resumed.state.global_step == total
    expected, found = state(full), state(resumed)
    assert expected.keys() == found.keys() and "center" in found
    assert {k for k in expected if not torch.equal(expected[k], found[k])} == set()
    assert torch.count_nonzero(found["center"]) > 0
    # And the run did something: the teacher moved away from its initialisation and from the student.
    assert not torch.equal(found["teacher.decoder.phase_head.2.weight"], state(cut)["teacher.decoder.phase_head.2.weight"])
    assert not torch.equal(found["teacher.decoder.phase_head.2.weight"], found["student.decoder.phase_head.2.weight"])
    return full


def test_resume_from_checkpoint_reproduces_student_teacher_and_center_exactly(tmp_path):
    # 4 batches per epoch (9 pairs at batch 2, the last dropped): the cut at step 2 falls inside the first epoch.
    full = assert_resumed_run_equals_uninterrupted(tmp_path, total=4, kill_at=2)
    logged = [entry for entry in full.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in logged] == [1, 2, 3, 4]
    for entry in logged:
        total = entry["distillation_loss"] + 0.1 * entry["amplitude_loss"] + 0.1 * entry["phase_loss"]
        assert entry["loss"] == pytest.approx(total, rel=1e-4)
    assert not full.model.teacher.training


@pytest.mark.slow
def test_resume_across_an_epoch_boundary_is_exact(tmp_path):
    assert_resumed_run_equals_uninterrupted(tmp_path, total=7, kill_at=4)  # step 4 ends epoch 0


def test_callbacks_apply_the_weight_decay_and_momentum_schedules(tmp_path):
    recorder = RecordWeightDecay()
    trainer = pretrain(
        RealPairs(), small_config(), training_args(tmp_path, max_steps=3), export=False, callbacks=[recorder]
    )
    assert recorder.values == pytest.approx([weight_decay_at(step, 3) for step in range(3)])
    # The last EMA update used momentum_at(2, 3) = 0.925: replaying it from the saved weights is exact only then.
    assert momentum_at(2, 3) == pytest.approx(1 - 0.3 * (1 + math.cos(2 * math.pi / 3)) / 2)
    assert not trainer.model.teacher.training


def test_loss_components_fall_on_a_fixed_batch_of_real_pairs():
    """Fast check that every term gets gradient: 10 Adam steps (lr 1e-3) on two real pairs (no augmentation).

    Measured (seed 0): distillation 5.82 -> ~0.37, amplitude 0.104 -> ~0.060, phase 0.434 -> ~0.13 (last 3 steps)."""
    pairs = RealPairs()
    batch = PairCollator(augment=False)([pairs[0], pairs[1]])
    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(small_config()).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for step in range(10):
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.update_teacher(momentum_at(step, 10))
        history.append([out.distillation_loss.item(), out.amplitude_loss.item(), out.phase_loss.item()])
    first, last = np.array(history[0]), np.array(history[-3:]).mean(0)
    assert last[0] < 0.5 * first[0], history
    assert last[1] < 0.8 * first[1], history
    assert last[2] < 0.8 * first[2], history


@pytest.mark.slow
def test_pretraining_losses_fall_over_thirty_steps(tmp_path):
    trainer = pretrain(
        RealPairs(), small_config(), training_args(tmp_path, max_steps=30, per_device_train_batch_size=4,
                                                   learning_rate=3e-3),
        base_learning_rate=None, augment=False, export=False,
    )
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    for name in ("distillation_loss", "amplitude_loss"):
        assert np.mean([e[name] for e in logged[-5:]]) < np.mean([e[name] for e in logged[:5]]), name


def test_pretrain_exports_a_loadable_teacher_encoder_and_plots_the_losses(tmp_path):
    import qualityfm_hf  # noqa: F401  (registers the Auto classes)

    trainer = pretrain(RealPairs(), small_config(), training_args(tmp_path, max_steps=2))
    encoder = AutoModel.from_pretrained(tmp_path / "encoder")
    assert type(encoder).__name__ == "QualityFMModel"
    x = RealPairs()[0]["teacher_input_values"][None]
    teacher = trainer.model.eval().teacher.qualityfm
    torch.testing.assert_close(encoder(x).last_hidden_state, teacher(x).last_hidden_state, rtol=0, atol=1e-6)
    assert (tmp_path / "encoder" / "preprocessor_config.json").is_file()
    assert (tmp_path / "model.safetensors").is_file()  # the whole wrapper, to continue pretraining
    assert (tmp_path / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_loss_curves_needs_training_losses(tmp_path):
    with pytest.raises(ValueError, match="no training-loss entries"):
        plot_loss_curves([{"eval_loss": 1.0, "step": 1}], tmp_path / "x.png")
    history = [{"loss": 3.0 - s, "distillation_loss": 2.0, "amplitude_loss": 0.1, "phase_loss": 0.4, "step": s}
               for s in range(1, 4)]
    assert plot_loss_curves(history, tmp_path / "sub" / "curves.png").stat().st_size > 10_000
    # With the config's weights each panel title carries its λ (the figure differs from the one without).
    from qualityfm_hf.pretraining.recipes import loss_weights

    weights = loss_weights(small_config())
    assert weights["distillation_loss"] == 1.0 and weights["amplitude_loss"] == 0.1
    with_weights = plot_loss_curves(history, tmp_path / "w.png", weights).read_bytes()
    assert with_weights != (tmp_path / "sub" / "curves.png").read_bytes()


def test_pretrain_trains_on_streamed_pairs_from_a_real_build(tmp_path):
    # `pretrain` checked `pairs_dataset[0]`, which a streaming (iterable) dataset does not have: it failed at once.
    from conftest import FIXTURES, copy_records

    from qualityfm_hf.pairs import build_pairs, load_pairs

    records = copy_records(["v100s", "v176s"], FIXTURES, tmp_path / "records")
    build_pairs(records, tmp_path / "pairs", records_per_shard=1, progress=False)
    streamed = load_pairs(tmp_path / "pairs", streaming=True)
    assert isinstance(streamed, torch.utils.data.IterableDataset)
    trainer = pretrain(streamed, small_config(), training_args(tmp_path / "run", max_steps=2))
    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(np.isfinite(losses))


def test_pretrain_rejects_items_of_the_wrong_shape(tmp_path):
    bad = [{"teacher_input_values": torch.zeros(2, 7500), "student_input_values": torch.zeros(2, 7500)}]
    with pytest.raises(ValueError, match=r"\(2, 9000\).*\(2, 7500\)"):
        pretrain(bad, small_config(), training_args(tmp_path, max_steps=1))


# ---- command line ----------------------------------------------------------------------------------------------


@pytest.fixture
def small_cli(tmp_path, monkeypatch):
    """`qualityfm pretrain` with the small config as its "base" preset and real v100s pairs behind any --pairs
    folder (`tmp_path / "pairs"`, created empty); returns the CLI's `main` module."""
    from qualityfm_hf.cli import main as cli_main
    from qualityfm_hf.cli import pretrain as cli_pretrain
    from qualityfm_hf.modeling import configuration_qualityfm

    small = {k: v for k, v in small_config().to_diff_dict().items() if k in ("num_hidden_layers", "intermediate_size",
                                                                                "conv_dim", "conv_kernel")}
    monkeypatch.setitem(configuration_qualityfm.PRESETS, "base", small)
    monkeypatch.setattr(cli_pretrain, "load_pairs_dataset", lambda directory: RealPairs())
    (tmp_path / "pairs").mkdir()
    return cli_main


@pytest.mark.parametrize("recipe", ["paper", "default"])
def test_cli_pretrain_runs_on_a_pairs_folder(tmp_path, small_cli, capsys, recipe):
    cli_main = small_cli
    code = cli_main.main([
        "pretrain", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path / "run"), "--json",
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps", "1", "--use_cpu",
        "--disable_tqdm", "true", "--recipe", recipe, "--set", "num_prototypes=64",
    ])
    assert code == 0
    captured = capsys.readouterr()
    # stdout is the JSON result alone: the Trainer's log dicts go to the log on stderr.
    result = json.loads(captured.out)
    assert "step 1: loss " in captured.err and "grad_norm" not in captured.err  # compact; the dicts at debug
    assert result["steps"] == 2 and result["pairs"] == 9 and result["recipe"] == recipe
    # The paper scales 1e-4 by batch / 256; the default recipe uses 3e-4 as is.
    assert result["learning_rate"] == pytest.approx(1e-4 * 2 / 256 if recipe == "paper" else 3e-4)
    assert {"step", "loss", "distillation_loss", "amplitude_loss", "phase_loss", "student_rank"} <= set(
        result["last_logged"])
    # The default recipe has no distillation term, so no teacher distribution to monitor.
    assert ("teacher_entropy" in result["last_logged"]) == (recipe == "paper")
    assert (tmp_path / "run" / "encoder" / "config.json").is_file()
    assert json.loads((tmp_path / "run" / "encoder" / "config.json").read_text())["num_hidden_layers"] == 1
    # The exported encoder has a card that says what it was trained on and with what.
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "run" / "encoder" / "README.md")
    assert card.data.pipeline_tag == "feature-extraction" and "qualityfm" in card.data.tags
    assert f"9 pairs from `{tmp_path / 'pairs'}`" in card.text and f"2 steps of 2 pairs, recipe `{recipe}`" in card.text
    assert ("matches an EMA teacher" in card.text) == (recipe == "paper")
    wrapper = json.loads((tmp_path / "run" / "config.json").read_text())
    assert wrapper["distillation_target"] == ("tokens" if recipe == "paper" else "pooled")
    assert wrapper["num_prototypes"] == 64  # --set on top of the recipe


def test_cli_pretrain_shorter_than_logging_steps_is_a_normal_run(tmp_path, small_cli, capsys):
    cli_main = small_cli
    with pytest.warns(UserWarning, match="no training loss was logged"):
        code = cli_main.main([
            "pretrain", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path / "run"), "--json",
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps", "10", "--use_cpu",
            "--disable_tqdm", "true", "--set", "num_prototypes=64",
        ])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["steps"] == 2
    assert (tmp_path / "run" / "encoder" / "config.json").is_file()
    assert not (tmp_path / "run" / "loss_curves.png").exists()


def test_cli_pretrain_errors_are_one_line(tmp_path, capsys):
    from qualityfm_hf.cli import main as cli_main

    assert cli_main.main(["pretrain", "--pairs", str(tmp_path / "none"), "--output", str(tmp_path)]) == 1
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "pairs").mkdir()
    assert cli_main.main(["pretrain", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path), "--bogus", "1"]) == 1
    assert "unrecognised options ['--bogus', '1']" in capsys.readouterr().err
    assert cli_main.main(["pretrain", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path), "--set",
                          "no_such_field=1"]) == 1
    assert "QualityFMConfig has no field 'no_such_field'" in capsys.readouterr().err


def test_cli_resume_skips_a_half_written_checkpoint_and_names_it(tmp_path, small_cli, capsys, caplog):
    # Issue 10 items 8 and 13: a checkpoint half-written when a run was killed (0-byte optimizer.pt, no
    # trainer_state.json) gave a traceback on resume, and the README's checkpoint-1000 did not exist.
    cli_main = small_cli
    run = tmp_path / "run"

    def pretrain_cli(*extra):
        return cli_main.main([
            "pretrain", "--pairs", str(tmp_path / "pairs"), "--output", str(run), "--json", "--max_steps", "4",
            "--save_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps", "1", "--use_cpu",
            "--disable_tqdm", "true", "--set", "num_prototypes=64", *extra,
        ])

    assert pretrain_cli() == 0
    (run / "checkpoint-4" / "optimizer.pt").write_bytes(b"")
    (run / "checkpoint-4" / "trainer_state.json").unlink()
    capsys.readouterr()

    assert pretrain_cli("--resume_from_checkpoint", str(run / "checkpoint-4")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "checkpoint-4 is incomplete" in err and "optimizer.pt is empty" in err and "trainer_state.json is missing" in err
    assert str(run / "checkpoint-2") in err  # what can be resumed instead

    assert pretrain_cli("--resume_from_checkpoint", str(run / "checkpoint-1000")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoint-1000 does not exist" in err

    with caplog.at_level("WARNING"):
        assert pretrain_cli("--resume_from_checkpoint", "true") == 0
    assert "skipping" in caplog.text and "checkpoint-4 is incomplete" in caplog.text
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 4  # resumed at step 2 and trained on to 4


def test_resume_true_with_no_complete_checkpoint_is_one_clear_error(tmp_path):
    from qualityfm_hf.pretraining import resolve_resume_checkpoint

    assert resolve_resume_checkpoint(None, tmp_path) is None and resolve_resume_checkpoint("false", tmp_path) is None
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(ValueError, match=r"holds no complete checkpoint \(1 incomplete\); start the run without"):
        resolve_resume_checkpoint("true", tmp_path)
