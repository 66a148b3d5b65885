"""Task heads: shapes and losses, loading from a backbone and from a fine-tuned checkpoint, Auto dispatch with the
package and as remote code in a process that cannot import qualityfm_hf."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config
from huggingface_hub.errors import StrictDataclassClassValidationError
from test_auto import run_without_package
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForSequenceClassification

from qualityfm_hf import QualityFMModel
from qualityfm_hf.finetuning.train import load_model
from qualityfm_hf.modeling.heads_qualityfm import (
    QualityFMForABPRegression,
    QualityFMForAFClassification,
    QualityFMForVTFalseAlarm,
)

HEADS = (QualityFMForVTFalseAlarm, QualityFMForAFClassification, QualityFMForABPRegression)


def inputs(batch=3, time=3000):
    torch.manual_seed(1)
    mask = torch.ones(batch, time, dtype=torch.long)
    mask[0, 2000:] = 0  # one padded window
    return dict(input_values=torch.randn(batch, 2, time), attention_mask=mask,
                channel_mask=torch.tensor([[0, 1]] + [[1, 1]] * (batch - 1)))


def test_binary_heads_give_one_logit_and_weighted_bce():
    model = QualityFMForVTFalseAlarm(tiny_config(pos_weight=3.0)).eval()
    labels = torch.tensor([0, 1, 1])
    out = model(**inputs(), labels=labels)
    assert out.logits.shape == (3, 1)
    expected = F.binary_cross_entropy_with_logits(out.logits, labels[:, None].float(), pos_weight=torch.tensor([3.0]))
    torch.testing.assert_close(out.loss, expected)
    with pytest.raises(ValueError, match="0 or 1"):
        model(**inputs(), labels=torch.tensor([0, 2, 1]))


def test_af_head_switches_to_cross_entropy_for_multiclass_with_class_weights():
    model = QualityFMForAFClassification(tiny_config(num_labels=4, class_weights=[1.0, 2.0, 1.0, 0.5])).eval()
    labels = torch.tensor([0, 1, 3])
    out = model(**inputs(), labels=labels)
    assert out.logits.shape == (3, 4)
    expected = F.cross_entropy(out.logits, labels, weight=torch.tensor([1.0, 2.0, 1.0, 0.5]))
    torch.testing.assert_close(out.loss, expected)
    assert QualityFMForAFClassification(tiny_config()).classifier.out_features == 1  # binary default


def test_abp_head_predicts_mmhg_and_computes_loss_in_normalised_units():
    config = tiny_config(label_mean=[120.0, 60.0], label_std=[20.0, 10.0], problem_type="regression")
    model = QualityFMForABPRegression(config).eval()
    labels = torch.tensor([[130.0, 70.0], [100.0, 50.0], [120.0, 60.0]])
    out = model(**inputs(), labels=labels)
    raw = model.classifier(model.qualityfm(**inputs()).pooler_output)
    torch.testing.assert_close(out.logits, raw * torch.tensor([20.0, 10.0]) + torch.tensor([120.0, 60.0]))
    torch.testing.assert_close(out.loss, F.mse_loss(raw, (labels - torch.tensor([120.0, 60.0])) / torch.tensor([20.0, 10.0])))
    smooth = QualityFMForABPRegression(tiny_config(regression_loss="smooth_l1")).eval()
    assert smooth(**inputs(), labels=labels).loss > 0
    # The config rejects an unknown loss when it is built, naming the options.
    with pytest.raises(StrictDataclassClassValidationError, match=r"regression_loss is 'l3', but has to be one of"):
        QualityFMForABPRegression(tiny_config(regression_loss="l3"))


@pytest.mark.parametrize("pooling", ["mean", "first", "max"])
def test_pooling_choice_changes_the_features(pooling):
    torch.manual_seed(0)
    model = QualityFMForVTFalseAlarm(tiny_config(pooling=pooling)).eval()
    encoded = model.qualityfm(**inputs())
    from qualityfm_hf.modeling.modeling_qualityfm import pool_tokens

    expected = model.classifier(pool_tokens(encoded.last_hidden_state, encoded.token_mask, pooling))
    torch.testing.assert_close(model(**inputs()).logits, expected)


def test_freeze_backbone_trains_the_head_only_and_keeps_encoder_in_eval():
    model = QualityFMForVTFalseAlarm(tiny_config())
    model.freeze_backbone()
    model.train()
    assert not model.qualityfm.training and model.classifier.training
    model(**inputs(), labels=torch.tensor([0, 1, 1])).loss.backward()
    assert all(p.grad is None for p in model.qualityfm.parameters())
    assert model.classifier.weight.grad is not None
    model.freeze_backbone(False)
    assert all(p.requires_grad for p in model.parameters())


def test_head_loads_encoder_from_backbone_checkpoint_and_initialises_head(tmp_path):
    torch.manual_seed(0)
    backbone = QualityFMModel(tiny_config())
    backbone.save_pretrained(tmp_path)
    for cls in HEADS:
        head = cls.from_pretrained(tmp_path)
        for name, tensor in backbone.state_dict().items():
            torch.testing.assert_close(head.state_dict()[f"qualityfm.{name}"], tensor, rtol=0, atol=0)
        assert head.classifier.weight.abs().sum() > 0  # initialised, not left empty


def test_finetuned_checkpoint_round_trips_through_auto_classes(tmp_path):
    torch.manual_seed(0)
    for cls in HEADS:
        model = cls(tiny_config(label_mean=[120.0, 60.0], label_std=[20.0, 10.0])).eval()
        path = tmp_path / cls.__name__
        model.save_pretrained(path)
        config = json.loads((path / "config.json").read_text())
        assert config["architectures"] == [cls.__name__]
        assert config["auto_map"]["AutoModelForSequenceClassification"] == f"heads_qualityfm.{cls.__name__}"
        assert (path / "heads_qualityfm.py").is_file()
        for auto in (AutoModel, AutoModelForSequenceClassification):
            loaded = auto.from_pretrained(path).eval()
            assert type(loaded) is cls
            torch.testing.assert_close(loaded(**inputs()).logits, model(**inputs()).logits)


def test_load_model_refuses_a_checkpoint_of_another_task(tmp_path):
    QualityFMForAFClassification(tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="QualityFMForAFClassification checkpoint .*'af'.*not 'vt-false-alarm'"):
        load_model("vt-false-alarm", str(tmp_path))
    assert type(load_model("af", str(tmp_path))) is QualityFMForAFClassification


def test_a_backbone_loads_into_a_head_quietly_and_a_damaged_one_is_named(tmp_path):
    import logging
    import warnings

    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    QualityFMModel(tiny_config()).save_pretrained(tmp_path / "backbone")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    loader_log = logging.getLogger("transformers.modeling_utils")
    loader_log.addHandler(handler)
    try:
        # Control: transformers itself reports the head's missing classifier in a LOAD REPORT table ...
        QualityFMForAFClassification.from_pretrained(tmp_path / "backbone")
        assert any("LOAD REPORT" in str(r.msg) for r in records)
        records.clear()
        # ... which is missing by design, so load_model shows no table and no warning.
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            load_model("af", str(tmp_path / "backbone"))
        assert not any("LOAD REPORT" in str(r.msg) for r in records)
    finally:
        loader_log.removeHandler(handler)
    # A backbone missing an encoder tensor is named.
    weights = load_file(tmp_path / "backbone" / "model.safetensors")
    dropped = next(k for k in weights if "q_proj.weight" in k)
    save_file({k: v for k, v in weights.items() if k != dropped}, tmp_path / "backbone" / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.warns(UserWarning, match=r"missing_keys.*q_proj\.weight"):
        load_model("af", str(tmp_path / "backbone"))


def test_heads_load_as_remote_code_without_the_package(tmp_path):
    torch.manual_seed(0)
    x = inputs()
    torch.save(x, tmp_path / "inputs.pt")
    expected = {}
    for cls in HEADS:
        model = cls(tiny_config()).eval()
        model.save_pretrained(tmp_path / cls.__name__)
        expected[cls.__name__] = model(**x).logits.tolist()
    result = run_without_package(
        f"""
        import json, torch
        from transformers import AutoModel, AutoModelForSequenceClassification
        x = torch.load({str(tmp_path / "inputs.pt")!r})
        out = {{}}
        for name in {[c.__name__ for c in HEADS]!r}:
            path = {str(tmp_path)!r} + "/" + name
            a = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
            b = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
            out[name] = [type(a).__name__, type(a).__module__, type(b).__name__, a(**x).logits.tolist()]
        print(json.dumps(out))
        """,
        cwd=tmp_path,
    )
    for name, (auto_seq, module, auto_model, logits) in result.items():
        assert auto_seq == auto_model == name
        assert module.startswith("transformers_modules.")
        torch.testing.assert_close(torch.tensor(logits), torch.tensor(expected[name]))
