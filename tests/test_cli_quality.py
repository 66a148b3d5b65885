"""`qualityfm quality`: table and JSON output on real fixtures, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qualityfm_hf.cli.main import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_json_has_one_row_per_window_with_scores_in_range(capsys):
    assert main(["quality", str(FIXTURES / "v100s"), "--json", "--window-seconds", "60", "--num-workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    record = out["records"][0]
    assert (record["ppg_channel"], record["ecg_channel"]) == ("PLETH", "II")
    assert [w["start_s"] for w in record["windows"]] == [0, 60, 120, 180, 240]  # 300 s / 60 s
    for w in record["windows"]:
        assert 0 <= w["ecg"] <= 1 and 0 <= w["ppg"] <= 1
        assert w["combined"] == pytest.approx((w["ecg"] + w["ppg"]) / 2, abs=1e-4)
        assert w["class"] in ("Bad", "Poor", "Acceptable", "Good", "Excellent")


def test_table_notes_missing_ppg(capsys):
    # A00015 is 20.3 s of single-lead ECG: 10-s windows give 2 rows, scored from the ECG alone.
    assert main(["quality", str(FIXTURES / "A00015.hea"), "--window-seconds", "10", "--num-workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "PPG: missing" in out and "no lead II; ECG scored on ECG" in out
    rows = [line for line in out.splitlines() if "PPG missing: scored from ECG alone" in line]
    assert len(rows) == 2


def test_missing_file_is_one_line_error(capsys, tmp_path):
    assert main(["quality", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err and "no such record" in err


def test_unsupported_format_and_bad_window_are_errors(capsys, tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n")
    assert main(["quality", str(tmp_path / "x.csv")]) == 1
    assert "supported" in capsys.readouterr().err
    assert main(["quality", str(FIXTURES / "v100s"), "--window-seconds", "0"]) == 1
    assert "--window-seconds" in capsys.readouterr().err


def test_a_folder_of_records_scores_each_record_and_an_empty_folder_is_one_line(capsys, tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    for name in ("v100s", "v176s"):
        for suffix in (".hea", ".mat"):
            (folder / f"{name}{suffix}").write_bytes((FIXTURES / f"{name}{suffix}").read_bytes())
    assert main(["quality", str(folder), "--json", "--window-seconds", "60", "--num-workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [Path(r["record"]).name for r in out["records"]] == ["v100s", "v176s"]
    (tmp_path / "empty").mkdir()
    assert main(["quality", str(tmp_path / "empty")]) == 1
    assert "is a folder without WFDB records" in capsys.readouterr().err


def centred_pleth_record(folder: Path) -> Path:
    """v100s with its PLETH centred on 0, as the monitor exported PLETH in many PhysioNet 2015 records."""
    import numpy as np
    import wfdb

    record = wfdb.rdrecord(str(FIXTURES / "v100s"), channel_names=["II", "PLETH"])
    signals = record.p_signal.copy()
    signals[:, 1] -= np.nanmean(signals[:, 1])
    wfdb.wrsamp("centred", fs=record.fs, units=record.units, sig_name=record.sig_name, p_signal=signals,
                fmt=["16", "16"], write_dir=str(folder))
    return folder / "centred"


def test_a_raw_record_with_a_centred_pleth_scores_without_warnings(tmp_path, capsys, recwarn):
    # Issue 20 item 5.3: `qualityfm quality` on raw PhysioNet 2015 records warned "Pass raw PPG windows, not centred
    # or normalised ones" once per record with such a PLETH, naming none, and scored the windows whose mean fell
    # below 0 as having no PPG signal.
    record = centred_pleth_record(tmp_path)
    assert main(["quality", str(record), "--json", "--num-workers", "1"]) == 0
    centred = json.loads(capsys.readouterr().out)["records"][0]
    assert main(["quality", str(FIXTURES / "v100s"), "--json", "--num-workers", "1"]) == 0
    offset = json.loads(capsys.readouterr().out)["records"][0]
    assert not [w for w in recwarn if "PPG" in str(w.message)] and centred["notes"] == []
    assert [w["ppg"] for w in centred["windows"]] == pytest.approx([w["ppg"] for w in offset["windows"]], abs=2e-3)


def test_a_genuinely_negative_ppg_is_noted_once_under_the_record(shared_data, capsys, recwarn):
    # v212s: in 4 of its 10 windows the PLETH sits well below 0 (means down to -12 for a swing of 5).
    folder = shared_data / "physionet2015_vt"
    assert main(["quality", str(folder / "v212s"), str(folder / "v162s"), "--num-workers", "1"]) == 0
    out = capsys.readouterr().out
    assert not [w for w in recwarn if "PPG" in str(w.message)]
    notes = [line for line in out.splitlines() if "note:" in line]
    assert len(notes) == 1 and "4 of 10 windows have a PPG mean below 0" in notes[0]
    assert out.index("v212s") < out.index(notes[0]) < out.index("v162s")  # printed under v212s, its record
