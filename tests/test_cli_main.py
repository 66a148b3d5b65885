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


LAUNCHER_CHECK = """
import sys
import qualityfm_cli

commands = [[], ["build-pairs"], ["quality"], ["pretrain"], ["finetune"], ["evaluate"], ["predict"], ["embed"],
            ["probe"], ["push"], ["quickstart"], ["env"]]
for command in commands:
    try:
        qualityfm_cli.main(command + ["--help"])
    except SystemExit as stop:
        assert stop.code == 0, (command, stop.code)
try:
    qualityfm_cli.main(["finetune", "--task", "nope", "--data", "x", "--model", "y"])  # an argument error
except SystemExit as stop:
    assert stop.code == 2
print("heavy after help:", sorted(m for m in ("torch", "transformers") if m in sys.modules))
assert qualityfm_cli.main(["env"]) == 0  # a command runs with the package loaded and registered
from transformers import AutoConfig
print("registered:", type(AutoConfig.for_model("qualityfm")).__name__)
"""


def test_help_and_argument_errors_do_not_import_torch():
    # Issue 11: `qualityfm --help` took 7-9 s because torch and transformers loaded first.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LAUNCHER_CHECK], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "heavy after help: []" in done.stdout
    assert "registered: QualityFMConfig" in done.stdout


def test_options_are_kebab_case_and_never_abbreviated(tmp_path, capsys):
    parser = cli_main.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        for action in command._actions:
            primary = [o for o in action.option_strings if o.startswith("--")][:1]
            assert all("_" not in option for option in primary), (name, action.option_strings)
    # Prefixes are errors, in the package's own options and in the TrainingArguments pass-through alike.
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    assert cli_main.main(["pretrain", "--pairs", str(pairs), "--output", str(tmp_path / "run"),
                          "--num_train_epoch", "1"]) == 1
    assert "unrecognised options ['--num_train_epoch', '1']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli_main.main(["build-pairs", "--input", str(tmp_path), "--output", str(pairs), "--num-work", "2"])
    assert stop.value.code == 2 and "unrecognized arguments: --num-work 2" in capsys.readouterr().err
    # The old snake_case spellings of pretrain's own options still parse, to the same destination.
    args, _ = parser.parse_known_args(["pretrain", "--pairs", "p", "--output", "o", "--no_augment",
                                       "--base_learning_rate", "2e-4"])
    assert args.no_augment and args.base_learning_rate == 2e-4


def test_env_prints_json_with_every_key_package(capsys):
    import json

    assert cli_main.main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["packages"]["qualityfm-hf"] and info["packages"]["torch"].startswith("2.")
    assert {"platform", "python", "torch_threads", "cuda_available"} <= set(info)
