"""`qualityfm_hf.build_task_dataset`: a typed DatasetDict split by record, with provenance (issue 11)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import FIXTURES, REPO_ROOT

import qualityfm_hf
from qualityfm_hf.finetuning.task_data import build_task_table, extract_features
from qualityfm_hf.finetuning.task_datasets import load_task_feature_extractor

AF_2017 = FIXTURES / "physionet2017_af"
BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"


@pytest.fixture(scope="module")
def af_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return qualityfm_hf.build_task_dataset("af", AF_2017, seed=3)


def test_splits_are_by_record_typed_and_carry_their_provenance(af_data):
    assert list(af_data) == ["train", "validation", "test"]
    records = {split: set(af_data[split]["record"]) for split in af_data}
    assert not (records["train"] & records["validation"]) and not (records["train"] & records["test"])
    assert not (records["validation"] & records["test"])
    label = af_data["train"].features["label"]
    assert label.names == ["not AF", "AF"]
    metadata = json.loads(af_data["test"].info.description)
    assert metadata["seed"] == 3 and metadata["split_unit"] == "record"
    assert {r: s for r, s in metadata["splits"].items()} == {r: s for s in records for r in records[s]}
    assert af_data["train"].info.homepage == str(AF_2017) and af_data["test"].split == "test"
    # The same windows and labels as the table fine-tuning reads, split for split.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = build_task_table("af", AF_2017, seed=3)
    for split in af_data:
        rows = table.filter(lambda s: s == split, input_columns="split")
        assert af_data[split]["record"] == rows["record"] and af_data[split]["label"] == rows["label"]
        np.testing.assert_array_equal(np.asarray(af_data[split][0]["signals"], np.float32) if len(rows) else 0,
                                      np.asarray(rows[0]["signals"], np.float32) if len(rows) else 0)


def test_abp_labels_are_sbp_and_dbp_floats():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = qualityfm_hf.build_task_dataset("abp", BUNDLED_VT)
        table = build_task_table("abp", BUNDLED_VT)
    features = data["train"].features
    assert features["sbp_mmhg"].dtype == "float32" and "label" not in features
    train = table.filter(lambda s: s == "train", input_columns="split")
    np.testing.assert_allclose(data["train"]["sbp_mmhg"], np.asarray(train["label"])[:, 0], rtol=1e-6)
    np.testing.assert_allclose(data["train"]["dbp_mmhg"], np.asarray(train["label"])[:, 1], rtol=1e-6)
    assert all(50 < s < 250 for s in data["train"]["sbp_mmhg"])


def test_model_inputs_through_dataset_map_equal_fine_tunings(af_data):
    extractor = load_task_feature_extractor("af")
    mapped = qualityfm_hf.add_model_inputs(af_data, extractor, num_proc=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = build_task_table("af", AF_2017, seed=3)
    expected, _ = extract_features(table, extractor)
    by_record = {(f["record"], f["split"]): f for f in expected}
    assert sum(len(mapped[s]) for s in mapped) == len(expected)
    for split in mapped:
        for row in mapped[split]:
            reference = by_record[(row["record"], split)]
            np.testing.assert_array_equal(np.asarray(row["input_values"], np.float32), reference["input_values"])
            assert row["model_channel_mask"] == list(reference["channel_mask"])


# push_to_hub and push_task_dataset through the loopback Hub: tests/test_dataset_push.py (slow); here, stubbed.
def test_push_task_dataset_writes_the_provenance_into_the_card_it_reads_back(af_data, monkeypatch):
    import datasets
    from huggingface_hub import DatasetCard

    pushed, cards = [], {}
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", lambda self, repo_id, **kw: pushed.append((repo_id, kw)))
    # What push_to_hub leaves on the Hub: a card with features and splits, no provenance.
    plain = "---\nlicense: odc-by\n---\n\n# Dataset card\n"
    monkeypatch.setattr(DatasetCard, "load", classmethod(lambda cls, repo_id, **kw: cls(cards.get(repo_id, plain))))

    def push_card(card, repo_id, **kwargs):
        assert kwargs["repo_type"] == "dataset"
        cards[repo_id] = str(card)
        return "card commit"

    monkeypatch.setattr(DatasetCard, "push_to_hub", push_card)
    assert qualityfm_hf.push_task_dataset(af_data, "org/af", num_shards={"train": 2}) == "card commit"
    assert pushed == [("org/af", {"num_shards": {"train": 2}})]
    assert qualityfm_hf.task_dataset_provenance("org/af") == json.loads(af_data["train"].info.description)
    card = DatasetCard(cards["org/af"])
    assert card.data["license"] == "odc-by" and "## Provenance" in card.text and "seed 3" in card.text
    with pytest.raises(ValueError, match="no 'qualityfm_provenance' entry"):
        qualityfm_hf.task_dataset_provenance("org/plain")


def test_save_to_disk_round_trip_keeps_features_and_info(af_data, tmp_path):
    import datasets

    af_data.save_to_disk(tmp_path / "af")
    loaded = datasets.load_from_disk(str(tmp_path / "af"))
    assert loaded["train"].features == af_data["train"].features
    assert json.loads(loaded["test"].info.description)["seed"] == 3
    assert loaded["validation"]["record"] == af_data["validation"]["record"]
