"""`qualityfm build-pairs` on real records: text and JSON summaries, resume, one-line errors."""

from __future__ import annotations

import json

from conftest import FIXTURES, copy_records

from qualityfm_hf.cli.main import main

RECORDS = ("v100s", "v176s", "v290s")


def _records_dir(root):
    return copy_records(RECORDS, FIXTURES, root)


def test_build_pairs_json_summary_and_resume(tmp_path, capsys):
    records = _records_dir(tmp_path / "records")
    out = tmp_path / "pairs"
    args = ["build-pairs", "--input", str(records), "--output", str(out), "--json", "--no-progress"]
    assert main(args + ["--max-records", "2", "--records-per-shard", "1"]) == 0
    partial = json.loads(capsys.readouterr().out)
    assert not partial["complete"] and partial["counts"]["records_done"] == 2
    assert main(args + ["--records-per-shard", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["counts"]["records_done"] == 3
    assert summary["counts"]["windows_kept"] == 27 and summary["rejects"]["ecg_nan"] == 3
    matrix = summary["class_matrix"]["counts"]
    assert sum(map(sum, matrix)) == summary["counts"]["pairs"] > 0


def test_build_pairs_text_output_lists_rejects_and_class_matrix(tmp_path, capsys):
    records = _records_dir(tmp_path / "records")
    assert main(["build-pairs", "--input", str(records), "--output", str(tmp_path / "p"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "records: 3 of 3 done: 3 with windows, 0 shorter than one 30-s window, 0 with every window rejected" in text
    assert "windows: 30 cut, 27 kept, 3 rejected (3 ECG more than 20% missing)\n" in text
    assert "class matrix (rows: teacher class, columns: student class)" in text
    assert text.splitlines()[-1].startswith("Excellent")


def test_build_pairs_errors_are_one_line(tmp_path, capsys):
    assert main(["build-pairs", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("qualityfm build-pairs: error: input directory") and len(err.strip().splitlines()) == 1
    assert main(["build-pairs", "--input", str(tmp_path), "--output", str(tmp_path / "p"), "--max-records", "0"]) == 1
    assert "--max-records must be >= 1" in capsys.readouterr().err


def test_build_pairs_says_records_were_too_short_rather_than_all_rejected(tmp_path, capsys):
    # Issue 20 item 5.3: 30-s-or-shorter AF ECGs were counted as "all windows rejected" beside "0 rejected".
    args = ["build-pairs", "--input", str(FIXTURES / "physionet2017_af"), "--output", str(tmp_path / "p"),
            "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "records: 8 of 8 done: 6 with windows, 2 shorter than one 30-s window, 0 with every window rejected, " \
           "0 skipped\nwindows: 6 cut, 6 kept, 0 rejected\n" in text
    assert "all windows rejected" not in text
    assert main([*args, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert (counts["records_too_short"], counts["records_all_rejected"], counts["records_without_windows"]) == (2, 0, 2)
