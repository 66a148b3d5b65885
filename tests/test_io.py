"""Readers: WFDB golden values against wfdb.rdrecord, the PhysioNet 2017 header workaround, multi-frequency
records, channel aliases, VitalDB and suffix dispatch."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import wfdb

from qualityfm_hf.recordings.io import Recording, find_channel, read_recording, read_vital, read_wfdb

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_v100s_matches_wfdb_rdrecord_sample_for_sample():
    recording = read_wfdb(FIXTURES / "v100s.hea")
    golden = wfdb.rdrecord(str(FIXTURES / "v100s"))  # (samples, channels) at record.fs
    assert recording.channels == ["II", "V", "PLETH", "RESP"]
    assert recording.sampling_rates == {"II": 250.0, "V": 250.0, "PLETH": 250.0, "RESP": 250.0}
    assert recording.units["II"] == "mV" and recording.units["PLETH"] == "NU"
    assert recording.comments == ["Ventricular_Tachycardia", "False alarm"]
    for i, name in enumerate(golden.sig_name):
        np.testing.assert_array_equal(recording.signals[name], golden.p_signal[:, i])
    # by hand from the header: first II sample = initial value 669 / gain 2264 per mV
    assert recording.signals["II"][0] == pytest.approx(669 / 2264, rel=0, abs=1e-12)
    assert recording.signals["II"].shape == (75000,)


def test_physionet2017_header_that_wfdb_rejects_still_loads():
    with pytest.raises(ValueError):
        wfdb.rdrecord(str(FIXTURES / "A00015"))  # ISO date on line 1 + CRLF: wfdb 4.3 refuses it
    recording = read_recording(FIXTURES / "A00015")
    raw = scipy.io.loadmat(FIXTURES / "A00015.mat")["val"][0]  # int16, gain 1000/mV, baseline 0
    assert recording.channels == ["ECG"]
    assert recording.sampling_rates["ECG"] == 300.0
    np.testing.assert_allclose(recording.signals["ECG"], raw / 1000.0, rtol=0, atol=1e-12)
    assert find_channel(recording, "ECG") == "ECG" and find_channel(recording, "ECG_II") is None
    assert find_channel(recording, "PPG") is None


def test_sanitised_header_is_written_elsewhere_and_source_untouched(tmp_path):
    for suffix in (".hea", ".mat"):
        shutil.copy(FIXTURES / f"A00015{suffix}", tmp_path / f"A00015{suffix}")
    before = (tmp_path / "A00015.hea").read_bytes()
    read_wfdb(tmp_path / "A00015.mat")
    assert (tmp_path / "A00015.hea").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A00015.hea", "A00015.mat"]


def test_multifrequency_record_keeps_each_channel_at_its_own_rate():
    recording = read_recording(FIXTURES / "mixedsignals")
    golden = wfdb.rdrecord(str(FIXTURES / "mixedsignals"), smooth_frames=False)
    frame_rate = 62.4725
    assert recording.sampling_rates["II"] == pytest.approx(4 * frame_rate)
    assert recording.sampling_rates["Pleth"] == pytest.approx(2 * frame_rate)
    assert recording.sampling_rates["Resp"] == pytest.approx(frame_rate)
    assert len(recording.signals["II"]) == 57600 and len(recording.signals["Pleth"]) == 28800
    np.testing.assert_array_equal(recording.signals["ABP"], golden.e_p_signal[3])
    # 230 s in every channel despite different rates
    assert recording.duration("II") == pytest.approx(recording.duration("Pleth"))
    assert find_channel(recording, "PPG") == "Pleth"
    assert find_channel(recording, "ABP") == "ABP"
    assert find_channel(recording, "ECG_II") == "II"


def test_mimic_segment_reads_with_lead_names():
    recording = read_recording(FIXTURES / "3000003_0003.hea")
    assert recording.channels == ["II", "V"] and recording.sampling_rates["II"] == 125.0
    assert len(recording.signals["V"]) == 1028


@pytest.mark.parametrize(
    "names, kind, expected",
    [
        (["RESP", "Pleth"], "PPG", "Pleth"),
        (["SNUADC/ECG_II", "SNUADC/PLETH"], "PPG", "SNUADC/PLETH"),
        (["SNUADC/ECG_II", "SNUADC/PLETH"], "ECG_II", "SNUADC/ECG_II"),
        (["ECG II", "PPG"], "ECG_II", "ECG II"),
        (["V", "III", "II"], "ECG", "II"),  # lead II wins even when not first
        (["RESP", "aVR", "V"], "ECG", "aVR"),  # else the first ECG lead
        (["MCL1", "ABP"], "ECG", "MCL1"),
        (["SNUADC/ART", "RESP"], "ABP", "SNUADC/ART"),
        (["RESP", "PLETH"], "ECG", None),
        (["II"], "ABP", None),
    ],
)
def test_find_channel_aliases(names, kind, expected):
    recording = Recording("r", {n: np.zeros(3) for n in names}, {n: 1.0 for n in names})
    assert find_channel(recording, kind) == expected


def test_find_channel_rejects_unknown_kind():
    with pytest.raises(ValueError, match="has to be one of"):
        find_channel(Recording("r", {}, {}), "SpO2")


def test_vital_file_written_with_vitaldb_reads_back(tmp_path):
    vitaldb = pytest.importorskip("vitaldb")
    t = np.arange(5000) / 500  # 10 s at SNUADC's 500 Hz
    vital = vitaldb.VitalFile()
    vital.add_track("SNUADC/ECG_II", [{"dt": 1000.0, "val": np.sin(2 * np.pi * t).astype(np.float32)}],
                    srate=500, unit="mV")
    vital.add_track("SNUADC/PLETH", [{"dt": 1000.0, "val": (50 + np.cos(2 * np.pi * t)).astype(np.float32)}],
                    srate=500, unit="")
    path = tmp_path / "case.vital"
    vital.to_vital(str(path))

    recording = read_recording(path)
    assert recording.channels == ["SNUADC/ECG_II", "SNUADC/PLETH"]
    assert recording.sampling_rates["SNUADC/PLETH"] == pytest.approx(300.0)
    ppg = recording.signals[find_channel(recording, "PPG")]
    assert len(ppg) == 3000  # 10 s at 1/300 s
    assert np.nanmin(ppg) == pytest.approx(49.0, abs=1e-3) and np.nanmax(ppg) == pytest.approx(51.0, abs=1e-3)
    assert recording.units["SNUADC/ECG_II"] == "mV"
    with pytest.raises(ValueError, match="has none of the tracks"):
        read_vital(path, tracks=("SNUADC/ART",))


def test_missing_and_corrupt_records_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.hea"):
        read_recording(tmp_path / "nope")
    (tmp_path / "bad.hea").write_text("bad 1 250 1000\nbad.mat 16+24 200/mV 16 0 0 0 0 II\n")
    (tmp_path / "bad.mat").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="bad.hea"):
        read_recording(tmp_path / "bad.hea")
    with pytest.raises(ValueError, match="supported: WFDB"):
        read_recording(tmp_path / "signal.csv")
