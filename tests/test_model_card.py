"""Model card templates render to cards that `huggingface_hub` parses with the expected metadata."""

import json
import math

import hub_fixtures
import pytest
from hub_fixtures import run_hub_python
from huggingface_hub import EvalResult, ModelCard

from qualityfm_hf.reports.cards import (
    MODEL_CARDS_DIR,
    eval_results_from_metrics,
    format_metrics_table,
    render_model_card,
    template_fields,
)

hub_env = hub_fixtures.hub_env  # fixtures (conftest may import them too)
fake_hub = hub_fixtures.fake_hub
fake_hub_endpoint = hub_fixtures.fake_hub_endpoint


def finetuned_fields(**overrides):
    # Example values only: metric numbers here are made up for the test, not results.
    fields = {
        "license": "apache-2.0",
        "task_tag": "false-alarm-detection",
        "input_description": "a synchronised PPG + ECG window from an ICU bedside monitor",
        "datasets": ["physionet/vtac", "org/extra: with colon"],
        "metrics": ["roc_auc", "f1"],
        "base_model": "org/qualityfm-base",
        "base_model_url": "https://huggingface.co/org/qualityfm-base",
        "model_name": "QualityFM-Base VT false alarm",
        "task_name": "false ventricular tachycardia alarm detection",
        "output_description": "the probability that a VT alarm is true",
        "task_description": "Binary classification of VT alarms as true (1) or false (0).",
        "head_class": "QualityFMForVTFalseAlarm",
        "head_fit_description": "encoder and head fine-tuned with the transformers Trainer.",
        "auto_class": "AutoModelForSequenceClassification",
        "label_description": "1 = true alarm, 0 = false alarm.",
        "dataset_name": "VTaC",
        "dataset_url": "https://physionet.org/content/vtac/",
        "data_license": "see the dataset page",
        "split_description": "the official benchmark split.",
        "data_citation": "Lehman et al. (2024).",
        "window_seconds": 10,
        "window_samples": 3000,
        "window_description": "the 10 s before the alarm onset.",
        "normalisation": "per-channel z-score over the window.",
        "evaluation_description": "Test split, threshold chosen on validation.",
        "results_table": format_metrics_table({"auroc": (0.5, 0.4, 0.6)}),
        "ci_unit": "alarms",
        "n_resamples": 1000,
        "threshold_description": "0.42, maximising the PhysioNet score on validation.",
        "limitations": "Alarms from one vendor dominate.",
        "repo_id": "org/qualityfm-vtac",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "citation": "QualityFM (2025).",
        "eval_results": [
            EvalResult(
                task_type="time-series-classification",
                dataset_type="physionet/vtac",
                dataset_name="VTaC",
                dataset_split="test",
                metric_type="roc_auc",
                metric_value=0.5,
            )
        ],
    }
    fields.update(overrides)
    return fields


def test_finetuned_card_parses_with_expected_metadata():
    text = render_model_card(
        "finetuned", finetuned_fields(extra_metadata={"base_model": "org/qualityfm-base"})
    )
    card = ModelCard(text)
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0"
    assert data["library_name"] == "transformers"
    assert data["tags"] == ["ecg", "ppg", "physiological-signals", "time-series", "waveform-classification",
                            "qualityfm", "false-alarm-detection"]
    assert data["pipeline_tag"] == "other"  # the Hub has no waveform-classification task; the card names ours
    assert 'pipeline("waveform-classification"' in text
    assert "It reads\na synchronised PPG + ECG window from an ICU bedside monitor and outputs" in text
    assert data["datasets"] == ["physionet/vtac", "org/extra: with colon"]  # the colon did not break YAML
    assert data["metrics"] == ["roc_auc", "f1"]
    assert data["base_model"] == "org/qualityfm-base"
    assert "Initialised from: `org/qualityfm-base`" in text

    (result,) = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_split) == ("roc_auc", 0.5, "test")
    assert data["model-index"][0]["name"] == "QualityFM-Base VT false alarm"
    assert "{{" not in text
    assert "not a medical device" in card.text
    assert "300 Hz" in card.text and "`[PPG, ECG_II]`" in card.text
    assert 'trust_remote_code=True, revision="0123456789abcdef0123456789abcdef01234567"' in card.text
    assert "| auroc | 0.500 | 0.400 – 0.600 |" in card.text


def test_finetuned_card_from_a_preset_or_local_folder_has_no_base_model_metadata():
    # The Hub accepts only repo ids as base_model; a preset name stays in the text.
    text = render_model_card("finetuned", finetuned_fields(base_model="base"))
    assert "base_model" not in ModelCard(text).data.to_dict()
    assert "Initialised from: `base`" in text


def test_pretrained_card_renders():
    fields = {name: f"<{name}>" for name in template_fields("pretrained")}
    fields.update(license="apache-2.0", datasets=["vitaldb"])
    card = ModelCard(render_model_card("pretrained", fields))
    assert card.data.pipeline_tag == "feature-extraction"
    assert card.data.datasets == ["vitaldb"]
    assert 'AutoModel.from_pretrained("<repo_id>", trust_remote_code=True' in card.text


def test_license_other_takes_its_name_and_link_as_extra_metadata():
    extra = {"license_name": "physionet-credentialed", "license_link": "https://physionet.org/"}
    card = ModelCard(render_model_card("finetuned", finetuned_fields(license="other", extra_metadata=extra)))
    assert (card.data.license, card.data.license_name) == ("other", "physionet-credentialed")


def test_missing_unknown_and_invalid_fields_raise():
    fields = finetuned_fields()
    del fields["repo_id"]
    with pytest.raises(ValueError, match=r"missing: \['repo_id'\]"):
        render_model_card("finetuned", fields)
    with pytest.raises(ValueError, match="repo_idd"):
        render_model_card("finetuned", finetuned_fields(repo_idd="x"))
    with pytest.raises(ValueError, match="license is empty"):
        render_model_card("finetuned", finetuned_fields(license=""))
    with pytest.raises(ValueError, match="'finetuned', 'pretrained'"):
        render_model_card("nope", {})


def test_templates_are_where_the_package_looks():
    assert sorted(p.name for p in MODEL_CARDS_DIR.glob("*_template.md")) == [
        "finetuned_template.md",
        "pretrained_template.md",
    ]


def test_eval_results_skip_counts_and_undefined_metrics():
    results = eval_results_from_metrics(
        {"auroc": 0.9, "f1": math.nan, "tp": 3, "threshold": 0.5},
        task_type="time-series-classification",
        dataset_type="physionet/vtac",
        dataset_name="VTaC",
    )
    assert [(r.metric_type, r.metric_value) for r in results] == [("auroc", 0.9)]
    assert "| f1 | n/a | n/a – n/a |" in format_metrics_table({"f1": (math.nan, math.nan, math.nan)})


def test_rendered_card_round_trips_through_the_fake_hub(hub_env, fake_hub, tmp_path):
    """`ModelCard.push_to_hub` runs the Hub's validate-yaml and uploads README.md; loading gives it back."""
    path = tmp_path / "README.md"
    path.write_text(render_model_card("finetuned", finetuned_fields()), encoding="utf-8")
    code = f"""
import json
from huggingface_hub import HfApi, ModelCard
HfApi().create_repo("org/card")
ModelCard.load({str(path)!r}).push_to_hub("org/card")
card = ModelCard.load("org/card")
print(json.dumps({{"tags": card.data.tags, "n_results": len(card.data.eval_results)}}))
"""
    out = json.loads(run_hub_python(code, hub_env).stdout.splitlines()[-1])
    assert out == {
        "tags": ["ecg", "ppg", "physiological-signals", "time-series", "waveform-classification", "qualityfm",
                 "false-alarm-detection"],
        "n_results": 1,
    }
    assert ("POST", "/api/validate-yaml") in fake_hub.requests
    assert fake_hub.files("org/card")["README.md"].decode() == path.read_text(encoding="utf-8")
