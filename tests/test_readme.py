"""The README's commands and example stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    commands = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
                if "pytest" in line and not line.lstrip().startswith("#")]
    assert len(commands) == 1, commands
    assert f"```bash\n{commands[0]}\n```" in README


@pytest.mark.parametrize("ci,slow_collected", [("", False), ("true", True)])
def test_the_test_command_runs_the_slow_tests_only_under_ci(ci, slow_collected):
    """The README's command deselects the slow tests; CI, which runs that same command with CI=true, keeps them."""
    env = {**os.environ, "CI": ci}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "tests/test_quickstart.py"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ("test_quickstart_end_to_end" in out.stdout) is slow_collected
    assert "test_verdicts_follow_the_numbers" in out.stdout


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
