"""transformers pipelines on arrays and records, offline, on real bundled records (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FIXTURES, REPO_ROOT, tiny_config
from transformers import pipeline

import qualityfm_hf
from qualityfm_hf import QualityFMFeatureExtractor, QualityFMModel
from qualityfm_hf.finetuning.evaluation import predict_records
from qualityfm_hf.modeling.heads_qualityfm import QualityFMForABPRegression, QualityFMForAFClassification
from qualityfm_hf.recordings.io import read_recording
from qualityfm_hf.tasks import abp, af

AF_2017 = FIXTURES / "physionet2017_af"
VT_RECORD = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt" / "v122s"  # II, V, PLETH, ABP at 250 Hz


def save_head(head_class, folder, extractor_options=None, **config):
    torch.manual_seed(0)
    model = head_class(tiny_config(**config)).eval()
    model.save_pretrained(folder)
    QualityFMFeatureExtractor(**(extractor_options or {})).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def af_head(tmp_path_factory):
    # As the AF recipe saves it: the head also reads the rhythm statistics its feature extractor computes.
    return save_head(QualityFMForAFClassification, tmp_path_factory.mktemp("af"), id2label=dict(af.ID2LABEL),
                     label2id={v: k for k, v in af.ID2LABEL.items()}, architectures=["QualityFMForAFClassification"],
                     classifier_rhythm_features=8, extractor_options=dict(rhythm_features=True))


def test_both_tasks_are_registered_on_import():
    from transformers.pipelines import PIPELINE_REGISTRY

    assert {"waveform-classification", "waveform-feature-extraction"} <= set(PIPELINE_REGISTRY.get_supported_tasks())


def test_classification_on_a_record_matches_qualityfm_predict_and_arrays_match_the_record(af_head):
    classify = pipeline("waveform-classification", model=str(af_head), device="cpu")
    record = str(AF_2017 / "A00009")
    result = classify(record)
    assert {r["label"] for r in result} == set(af.ID2LABEL.values())
    assert result[0]["score"] >= result[1]["score"] and sum(r["score"] for r in result) == pytest.approx(1.0)
    expected = predict_records(af_head, [record])[0]["probability"]
    assert dict((r["label"], r["score"]) for r in result)["AF"] == pytest.approx(expected, abs=1e-6)
    # The same ECG as arrays (the AF records hold one lead, PPG absent) gives the same windows and scores.
    recording = read_recording(record)
    (lead,) = recording.channels
    arrays = {"ECG_II": recording.signals[lead], "sampling_rate": recording.sampling_rates[lead]}
    from_arrays = classify(arrays)
    assert [r["label"] for r in from_arrays] == [r["label"] for r in result]
    np.testing.assert_allclose([r["score"] for r in from_arrays], [r["score"] for r in result], atol=1e-6)
    assert len(classify(arrays, top_k=1)) == 1


def test_the_pipeline_labels_with_the_saved_threshold_as_predict_does(af_head, tmp_path):
    """A threshold that is not 0.5 (chosen on out-of-fold predictions) must decide the pipeline's label too."""
    from qualityfm_hf.modeling.configuration_qualityfm import QualityFMConfig

    records = [str(AF_2017 / name) for name in ("A00002", "A00009")]
    probability = predict_records(af_head, records[:1])[0]["probability"]
    folder = tmp_path / "af-threshold"
    model = QualityFMForAFClassification.from_pretrained(af_head)
    # Just past the record's probability, on the side that flips the label the 0.5 rule would give.
    model.config.decision_threshold = probability + 0.01 if probability >= 0.5 else probability - 0.01
    model.save_pretrained(folder)
    QualityFMFeatureExtractor.from_pretrained(af_head).save_pretrained(folder)
    assert QualityFMConfig.from_pretrained(folder).decision_threshold != 0.5
    classify = pipeline("waveform-classification", model=str(folder), device="cpu")
    for record, predicted in zip(records, predict_records(folder, records)):
        result = classify(record)
        assert result[0]["label"] == predicted["prediction"], record
        assert dict((r["label"], r["score"]) for r in result)["AF"] == pytest.approx(predicted["probability"], abs=1e-6)
    by_half = af.ID2LABEL[int(probability >= 0.5)]
    assert classify(records[0])[0]["label"] != by_half  # the threshold, not 0.5, decided


def test_batching_gives_what_one_at_a_time_gives(af_head):
    classify = pipeline("waveform-classification", model=str(af_head), device="cpu")
    records = [str(AF_2017 / name) for name in ("A00002", "A00006", "A00009", "A00011")]
    one_by_one = [classify(r) for r in records]
    batched = classify(records, batch_size=3)
    for single, batch in zip(one_by_one, batched):
        assert [r["label"] for r in single] == [r["label"] for r in batch]
        np.testing.assert_allclose([r["score"] for r in single], [r["score"] for r in batch], atol=1e-5)


def test_abp_head_returns_sbp_and_dbp(tmp_path):
    folder = save_head(QualityFMForABPRegression, tmp_path, problem_type="regression", label_mean=[120.0, 65.0],
                       label_std=[15.0, 10.0], id2label=dict(abp.ID2LABEL),
                       label2id={v: k for k, v in abp.ID2LABEL.items()}, architectures=["QualityFMForABPRegression"])
    recording = read_recording(VT_RECORD)
    inputs = {"PPG": recording.signals["PLETH"][:250 * 60], "ECG_II": recording.signals["II"][:250 * 60],
              "sampling_rate": 250}
    result = pipeline("waveform-classification", model=str(folder), device="cpu")(inputs)
    assert set(result) == {"sbp_mmhg", "dbp_mmhg", "windows"} and result["windows"] == 2
    assert np.isfinite([result["sbp_mmhg"], result["dbp_mmhg"]]).all()


def test_feature_extraction_is_the_encoders_pooled_output(tmp_path):
    torch.manual_seed(0)
    encoder = QualityFMModel(tiny_config()).eval()
    encoder.save_pretrained(tmp_path)
    extractor = QualityFMFeatureExtractor()
    extractor.save_pretrained(tmp_path)
    recording = read_recording(VT_RECORD)
    ppg, ecg = recording.signals["PLETH"][:250 * 30], recording.signals["II"][:250 * 30]
    embed = pipeline("waveform-feature-extraction", model=str(tmp_path), device="cpu")
    result = embed({"PPG": ppg, "ECG_II": ecg, "sampling_rate": 250}, return_windows=True, return_tokens=True)
    direct = extractor({"PPG": ppg, "ECG_II": ecg}, sampling_rate=250, return_tensors="pt")
    with torch.no_grad():
        expected = encoder(**direct)
    assert result["windows"] == 1 and result["window_starts"] == [0.0]
    np.testing.assert_allclose(result["embedding"], expected.pooler_output[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(result["tokens"][0], expected.last_hidden_state[0].numpy(), atol=1e-5)


def test_shipped_encoder_embeds_a_bundled_record_in_a_fresh_pipeline():
    embed = pipeline("waveform-feature-extraction", model=qualityfm_hf.pretrained_path("base"), device="cpu")
    result = embed(str(VT_RECORD), return_windows=True)
    assert result["embedding"].shape == (512,) and result["embedding"].dtype == np.float32
    assert result["windows"] == len(result["window_starts"]) > 1 and np.isfinite(result["embedding"]).all()


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"ECG_II": np.zeros(3000)}, "needs 'sampling_rate'"),
        ({"ECG": np.zeros(3000), "sampling_rate": 300}, r"unknown channel\(s\) \['ECG'\]"),
        ({"ECG_II": np.zeros((2, 3000)), "sampling_rate": 300}, "must be a 1-D array"),
        ({"ECG_II": np.zeros(3000), "sampling_rate": -1}, "must be a positive number"),
        ({"ECG_II": np.zeros(9000), "sampling_rate": 300}, "rejected by the feature extractor"),
    ],
)
def test_bad_inputs_say_what_was_expected(af_head, inputs, message):
    classify = pipeline("waveform-classification", model=str(af_head), device="cpu")
    with pytest.raises(ValueError, match=message):
        classify(inputs)


def test_bf16_pipeline_gives_the_fp32_scores_within_bf16_precision(af_head):
    fp32 = pipeline("waveform-classification", model=str(af_head), device="cpu")
    bf16 = pipeline("waveform-classification", model=str(af_head), device="cpu", dtype=torch.bfloat16)
    assert bf16.model.dtype == torch.bfloat16
    record = str(AF_2017 / "A00009")
    full, half = fp32(record), bf16(record)
    assert [r["label"] for r in half] == [r["label"] for r in full] or abs(full[0]["score"] - 0.5) < 0.02
    np.testing.assert_allclose(sorted(r["score"] for r in half), sorted(r["score"] for r in full), atol=0.02)
