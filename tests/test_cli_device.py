"""One device rule for the commands that run the model (issue 20 item 5.4): `--device {cpu,cuda}`, CUDA when torch
sees one, else CPU; `--device cuda` without CUDA is a one-line error; finetune and pretrain map it onto
TrainingArguments."""

from __future__ import annotations

import argparse

import pytest
import torch

from qualityfm_hf.cli.device import add_device_argument, resolve_device
from qualityfm_hf.cli.main import build_parser, main

MODEL_COMMANDS = ("finetune", "pretrain", "embed", "evaluate", "predict", "probe")


def test_every_command_that_runs_the_model_takes_the_same_device_option():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in MODEL_COMMANDS:
        device = next(a for a in commands[name]._actions if "--device" in a.option_strings)
        assert (device.default, device.metavar) == (None, "{cpu,cuda}"), name
        assert "cuda when torch sees a CUDA device, else cpu" in device.help, name


@pytest.mark.parametrize("cuda", [False, True])
def test_the_default_is_cuda_when_torch_sees_one_else_cpu(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    parser = argparse.ArgumentParser()
    add_device_argument(parser)
    assert resolve_device(parser.parse_args([])) == ("cuda" if cuda else "cpu")
    assert resolve_device(parser.parse_args(["--device", "cpu"])) == "cpu"


def test_cuda_without_cuda_and_unknown_devices_are_one_line_errors(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for argv in (["finetune", "--task", "af", "--data", str(tmp_path), "--model", "base", "--output", str(tmp_path)],
                 ["pretrain", "--pairs", str(tmp_path), "--output", str(tmp_path / "run")],
                 ["embed", "--task", "af", "--data", str(tmp_path), "--model", "base", "--output", "e.parquet"],
                 ["predict", "--model", "base", "record"]):
        assert main([*argv, "--device", "cuda"]) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err == (f"qualityfm {argv[0]}: error: --device cuda was asked for, but torch sees no CUDA device; use "
                       "--device cpu (or leave --device out)."), err
    assert main(["predict", "--model", "base", "record", "--device", "cuda:1"]) == 1
    assert "expected cpu or cuda (choose one of several GPUs with CUDA_VISIBLE_DEVICES)" in capsys.readouterr().err


def test_finetune_and_pretrain_map_the_device_onto_training_arguments(monkeypatch, tmp_path):
    from qualityfm_hf.cli.finetune import parse_training_arguments as finetune_arguments
    from qualityfm_hf.cli.pretrain import parse_training_arguments as pretrain_arguments

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for parse in (lambda extra, device: finetune_arguments(extra, str(tmp_path), device),
                  lambda extra, device: pretrain_arguments(extra, str(tmp_path), "default", device)):
        on_cpu = parse([], "cpu")
        assert on_cpu.use_cpu and not on_cpu.dataloader_pin_memory and on_cpu.device.type == "cpu"
        # An explicit TrainingArguments option still wins over what --device implies.
        assert not parse(["--use_cpu", "false"], "cpu").use_cpu
        if torch.cuda.is_available():
            on_gpu = parse([], "cuda")
            assert not on_gpu.use_cpu and on_gpu.dataloader_pin_memory and on_gpu.device.type == "cuda"
