"""The `qualityfm` entry point: every failure is one line on stderr unless --debug / QUALITYFM_DEBUG asks for the
traceback (issue 10 item 13)."""

from __future__ import annotations

import pytest
from conftest import REPO_ROOT

from qualityfm_hf.cli import main as cli_main
from qualityfm_hf.cli import predict as cli_predict

RECORDS = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"


@pytest.fixture
def failing_predict(monkeypatch):
    def boom(args):
        raise RuntimeError("something the command did not foresee\non two lines")

    original = cli_predict.predict_command_parser

    def parser(subparsers):
        p = original(subparsers)
        p.set_defaults(func=boom)
        return p

    monkeypatch.setattr(cli_predict, "predict_command_parser", parser)


def test_an_unforeseen_error_is_one_line_that_says_how_to_see_the_traceback(failing_predict, capsys, monkeypatch):
    monkeypatch.delenv(cli_main.DEBUG_ENV, raising=False)
    assert cli_main.main(["predict", "--model", "x", "record"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("qualityfm predict: error: RuntimeError: something the command did not foresee on two lines")
    assert "qualityfm --debug predict" in err and "QUALITYFM_DEBUG=1" in err


def test_debug_flag_and_environment_show_the_traceback(failing_predict, monkeypatch):
    with pytest.raises(RuntimeError, match="did not foresee"):
        cli_main.main(["--debug", "predict", "--model", "x", "record"])
    monkeypatch.setenv(cli_main.DEBUG_ENV, "1")
    with pytest.raises(RuntimeError, match="did not foresee"):
        cli_main.main(["predict", "--model", "x", "record"])


def test_pretrain_on_a_records_folder_says_to_build_pairs_elsewhere(tmp_path, capsys):
    # The old advice was `build-pairs --output RECORDS_DIR`: pairs written among the records.
    assert cli_main.main(["pretrain", "--pairs", str(RECORDS), "--output", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{RECORDS} holds records, not pairs" in err
    assert f"--output pairs/{RECORDS.name}" in err and f"--output {RECORDS}`" not in err
