"""The README's commands and example stay true."""

from __future__ import annotations

import re

import torch
from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command_then_the_slow_tests():
    pytest_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
                    if "pytest" in line and not line.lstrip().startswith("#")]
    assert len(pytest_lines) == 2, pytest_lines
    readme_command, slow = pytest_lines
    assert f"```bash\n{readme_command}\n```" in README
    slow_command = slow.split(" || ")[0]  # `|| [ $? -eq 5 ]`: no slow test collected is no failure
    assert slow_command.startswith(".venv/bin/python -m pytest -q -m ") and "slow" in slow_command
    assert f"`{slow_command}`" in README  # the README says what CI runs besides its test command


def test_readme_python_example_runs_on_the_bundled_record(monkeypatch):
    example = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(REPO_ROOT)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["tokens"].shape == (10, 18, 512)
    assert torch.isfinite(namespace["tokens"]).all()


def test_readme_pipeline_example_embeds_the_bundled_record(monkeypatch):
    first, second = re.findall(r"```python\n(.*?)```", README, re.S)[:2]
    embedding_part = second.split("classify =")[0]  # the classifier needs a fine-tuned folder of the user's
    monkeypatch.chdir(REPO_ROOT)
    namespace: dict = {}
    exec(compile(first + embedding_part + "\nresult = embed({**channels, 'sampling_rate': record.fs})", "README.md",
                 "exec"), namespace)
    assert namespace["result"]["embedding"].shape == (512,) and namespace["result"]["windows"] == 10
