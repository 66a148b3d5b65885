"""Task dataset builders on real records: VT alarms (bundled 2015 records), AF (2017 fixtures with the headers wfdb
rejects), ABP (targets, drop reasons, UCI .mat layout), record-level splits and bad input."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, REPO_ROOT, copy_records

from qualityfm_hf.finetuning.task_data import build_task_table
from qualityfm_hf.tasks import abp, af, vt_false_alarm
from qualityfm_hf.tasks.common import dataset_metadata, split_by_record

BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"
AF_2017 = FIXTURES / "physionet2017_af"


def build(task, data_dir, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_task_table(task, data_dir, **options)


def test_vt_rows_are_the_10_s_before_the_alarm_with_labels_from_csv_and_headers(tmp_path):
    dataset = build("vt-false-alarm", BUNDLED_VT)
    assert len(dataset) == 12 and sorted(Counter(dataset["label"]).items()) == [(0, 6), (1, 6)]
    row = dataset.with_format("numpy")[0]
    assert row["signals"].shape == (2, 2500) and row["sampling_rate"] == 250.0  # 10 s at 250 Hz
    assert list(row["channel_mask"]) == [1, 1] and row["start_seconds"] == 290.0
    # Header comments alone give the same labels when there is no CSV.
    no_csv = copy_records(["v122s", "v221l"], BUNDLED_VT, tmp_path / "nocsv")
    no_csv_dataset = build("vt-false-alarm", no_csv)
    labels = dict(zip(no_csv_dataset["record"], no_csv_dataset["label"]))
    assert labels == {"v122s": 0, "v221l": 1}


def test_vt_without_pleth_masks_the_ppg_and_marks_it_nan(tmp_path):
    data = copy_records(["v100s"], FIXTURES, tmp_path)
    record = build("vt-false-alarm", data, window_seconds=5).with_format("numpy")[0]
    assert record["signals"].shape == (2, 1250)
    # v100s has PLETH: drop it from a copy of the header to get a record without PPG.
    header = (data / "v100s.hea").read_text().splitlines()
    (data / "v100s.hea").write_text("\n".join(line for line in header if not line.endswith(" PLETH")).replace(" 4 250", " 3 250", 1))
    row = build("vt-false-alarm", data).with_format("numpy")[0]
    assert list(row["channel_mask"]) == [0, 1] and np.isnan(row["signals"][0]).all()
    assert np.isfinite(row["signals"][1]).mean() > 0.9


def test_dir_without_labels_raises_with_the_fix(tmp_path):
    data = copy_records(["v100s"], FIXTURES, tmp_path)
    header = data / "v100s.hea"
    header.write_text("\n".join(line for line in header.read_text().splitlines() if not line.startswith("#")) + "\n")
    with pytest.raises(ValueError, match="none of 1 records has a label.*labels.csv"):
        build("vt-false-alarm", data)
    with pytest.raises(ValueError, match="REFERENCE.csv"):
        build("af", data)


def test_af_2017_headers_load_and_codes_map_to_af_vs_not():
    dataset = build("af", AF_2017)
    labels = dict(zip(dataset["record"], dataset["label"]))
    assert labels == {"A00009": 1, "A00015": 1, "A00067": 1, "A00002": 0, "A00006": 0, "A00011": 0, "A00013": 0,
                      "A00585": 0}
    rows = {r["record"]: r for r in dataset.with_format("numpy")}
    assert rows["A00002"]["signals"].shape == (2, 9000) and rows["A00002"]["sampling_rate"] == 300.0
    assert rows["A00015"]["signals"].shape == (2, 6102)  # 20.3-s record kept whole, padded later
    assert all(list(r["channel_mask"]) == [0, 1] and np.isnan(r["signals"][0]).all() for r in rows.values())
    rhythm = build("af", AF_2017, label_set="rhythm")
    assert dict(zip(rhythm["record"], rhythm["label"]))["A00013"] == 2
    assert dict(zip(rhythm["record"], rhythm["label"]))["A00585"] == 3


def test_af_windows_of_long_records_stay_in_one_split(tmp_path):
    dataset = build("af", AF_2017, window_seconds=10)
    assert Counter(dataset["record"])["A00002"] == 3  # 30 s -> three 10-s windows
    per_record = {}
    for record, split in zip(dataset["record"], dataset["split"]):
        per_record.setdefault(record, set()).add(split)
    assert all(len(s) == 1 for s in per_record.values())


def test_perform_af_layout_labels_from_names_and_folders():
    assert af.perform_label(Path("x/mimic_perform_af_003_data")) == 1
    assert af.perform_label(Path("x/mimic_perform_non_af_003_data")) == 0
    assert af.perform_label(Path("non_af/rec1")) == 0 and af.perform_label(Path("1/rec1")) == 1
    assert af.perform_label(Path("other/rec1")) is None


def test_split_is_by_record_seeded_stratified_and_stored_in_metadata():
    records = [f"r{i}" for i in range(40)]
    strata = [i % 4 == 0 for i in range(40)]  # 10 positives
    first = split_by_record(records, strata, seed=3)
    assert first == split_by_record(records, strata, seed=3)
    assert first != split_by_record(records, strata, seed=4)
    for split in ("train", "validation", "test"):
        assert any(first[r] == split and s for r, s in zip(records, strata))  # each split sees positives
    dataset = build("vt-false-alarm", BUNDLED_VT, seed=1)
    metadata = dataset_metadata(dataset)
    assert metadata["split_unit"] == "record" and metadata["seed"] == 1
    assert metadata["splits"] == dict(zip(dataset["record"], dataset["split"]))
    assert sum(metadata["records_per_split"].values()) == 12


def test_abp_targets_from_beat_peaks_and_troughs():
    rate = 125.0
    t = np.arange(0, 30, 1 / rate)
    pressure = 80 + 20 * np.sin(2 * np.pi * 1.2 * t)  # 72 bpm between 60 and 100 mmHg
    sbp, dbp, reason = abp.abp_targets(pressure, rate)
    assert reason is None and sbp == pytest.approx(100, abs=0.5) and dbp == pytest.approx(60, abs=0.5)
    assert abp.abp_targets(np.full_like(t, np.nan), rate)[2] == "abp_missing"
    assert abp.abp_targets(np.full_like(t, 2.8), rate)[2] == "abp_flat"
    flush = pressure.copy()
    flush[100:300] = 1200.0
    assert abp.abp_targets(flush, rate)[2] == "abp_above_300_mmHg"
    assert abp.abp_targets(pressure - 70, rate)[2] == "abp_below_20_mmHg"


def test_abp_on_real_records_counts_skipped_records_and_windows(tmp_path):
    data = copy_records(["v122s", "v221l", "v758s"], BUNDLED_VT, tmp_path / "abp")
    copy_records(["v100s"], FIXTURES, tmp_path / "abp")  # no ABP channel
    dataset = build("abp", data)
    metadata = dataset_metadata(dataset)
    assert metadata["skipped_records"]["no_abp_channel"] == 1
    labels = np.array(dataset["label"])
    assert labels.shape[1] == 2 and (labels[:, 0] > labels[:, 1]).all()
    assert ((labels > 20) & (labels < 300)).all()
    assert metadata["windows"] == len(dataset) and set(dataset["record"]) <= {"v122s", "v221l", "v758s"}


def test_abp_records_without_needed_channels_raise_a_clear_error(tmp_path):
    data = copy_records(["v100s"], FIXTURES, tmp_path)
    with pytest.raises(ValueError, match=r"abp: no usable records .*1 x no_abp_channel"):
        build("abp", data)


def test_uci_mat_layout_with_all_nan_and_flush_cells(tmp_path):
    from scipy.io import savemat

    rate = abp.UCI_SAMPLING_RATE
    t = np.arange(0, 65, 1 / rate)
    ppg, ecg = np.sin(2 * np.pi * 1.1 * t), np.sin(2 * np.pi * 1.1 * t + 0.3) ** 15
    good = np.stack([ppg, 90 + 25 * np.sin(2 * np.pi * 1.1 * t), ecg])
    nan_abp = np.stack([ppg, np.full_like(t, np.nan), ecg])
    flush = good.copy()
    flush[1, : int(20 * rate)] = 1500.0  # first 30-s window only
    cells = np.empty((1, 3), dtype=object)
    cells[0, 0], cells[0, 1], cells[0, 2] = good, nan_abp, flush
    savemat(tmp_path / "part_1.mat", {"p": cells})
    dataset = build("abp", tmp_path, seed=0)
    metadata = dataset_metadata(dataset)
    assert metadata["options"]["layout"] == "uci_cuffless_bp"
    assert Counter(dataset["record"]) == {"part_1_0000": 2, "part_1_0002": 1}
    assert metadata["skipped_windows"] == {"abp_missing": 2, "abp_above_300_mmHg": 1}
    assert metadata["skipped_records"] == {"no_usable_window": 1}
    sbp, dbp = np.array(dataset["label"]).T
    assert sbp == pytest.approx(115, abs=1) and dbp == pytest.approx(65, abs=1)


def test_builders_require_a_reader():
    with pytest.raises(ValueError, match="reader=qualityfm_hf.recordings.io.read_recording"):
        vt_false_alarm.build_dataset(BUNDLED_VT)


def _recording(signals: dict, rate: float = 250.0):
    from qualityfm_hf.recordings.io import Recording

    return Recording(name="r", signals=signals, sampling_rates={k: rate for k in signals},
                     units={k: "mV" for k in signals}, comments=[], source="")


def test_vt_reads_the_next_ecg_lead_when_lead_ii_is_unusable_before_the_alarm():
    from qualityfm_hf.recordings.io import find_channel
    from qualityfm_hf.tasks.common import usable_ecg_channel

    t = np.arange(300 * 250) / 250
    beat = np.sin(2 * np.pi * 1.2 * t)
    lead_ii = beat.copy()
    lead_ii[290 * 250:] = np.nan  # disconnected in the last 10 s only
    recording = _recording({"II": lead_ii, "V": beat, "PLETH": beat})
    assert usable_ecg_channel(recording, find_channel, 290, 300) == "V"
    assert usable_ecg_channel(recording, find_channel, 0, 280) == "II"
    rows, reason = vt_false_alarm.record_windows(recording, find_channel)
    assert reason is None and rows[0]["channels"] == "PLETH,V"
    flat = _recording({"II": np.zeros(t.size), "V": np.full(t.size, 2.0)})
    assert usable_ecg_channel(flat, find_channel, 290, 300) == "II"  # none usable: the first, rejected later


def test_a_window_whose_ecg_is_flat_is_kept_with_the_ecg_masked_when_the_ppg_is_fine():
    from qualityfm_hf.finetuning.task_data import extract_row
    from qualityfm_hf.modeling.feature_extraction_qualityfm import QualityFMFeatureExtractor

    t = np.arange(10 * 250) / 250
    signals = np.stack([np.sin(2 * np.pi * 1.2 * t), np.zeros(t.size)])
    out, note = extract_row(QualityFMFeatureExtractor(), signals, [1, 1], 250.0)
    assert out is not None and note == "ECG_II flat -> ECG masked"
    assert out["channel_mask"].tolist() == [1, 0] and not out["input_values"][1].any()
    both_bad = np.stack([np.zeros(t.size), np.full(t.size, np.nan)])
    out, note = extract_row(QualityFMFeatureExtractor(), both_bad, [1, 1], 250.0)
    assert out is None and "masked" in note


@pytest.mark.parametrize("bad", ["7", "yes", "-1"])
def test_a_vt_label_outside_0_1_names_the_file_the_record_and_the_value(tmp_path, bad):
    path = tmp_path / "labels.csv"
    path.write_text(f"record,label\nv100s,1\nv176s,{bad}\n")
    with pytest.raises(ValueError, match=rf"labels.csv line 3: record 'v176s' has label '{bad}'; expected 1"):
        vt_false_alarm.read_label_csv(path)
    path.write_text("record,label\nv100s,1.0\nv176s,0\n")
    assert vt_false_alarm.read_label_csv(path) == {"v100s": 1, "v176s": 0}
