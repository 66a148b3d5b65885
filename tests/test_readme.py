"""The README's commands and example stay true."""

from __future__ import annotations

import re
import types

import pytest
import torch
from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    commands = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
                if "pytest" in line and not line.lstrip().startswith("#")]
    assert len(commands) == 1, commands
    assert f"```bash\n{commands[0]}\n```" in README


@pytest.mark.parametrize("ci,markexpr,kept", [("", "", {"fast"}), ("true", "", {"fast", "slow"}),
                                               ("", "slow", {"fast", "slow", "gpu"})])
def test_the_test_command_runs_the_slow_tests_only_under_ci(monkeypatch, ci, markexpr, kept):
    """The README's command deselects the slow (and gpu) tests; CI, which runs that same command with CI=true, keeps
    the slow ones; an explicit -m leaves the choice to pytest."""
    import conftest

    class Item:
        def __init__(self, name, marker=None):
            self.name, self.marker = name, marker

        def get_closest_marker(self, name):
            return name if name == self.marker else None

    monkeypatch.setenv("CI", ci)
    items = [Item("fast"), Item("slow", "slow"), Item("gpu", "gpu")]
    deselected = []
    config = types.SimpleNamespace(option=types.SimpleNamespace(markexpr=markexpr),
                                   hook=types.SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)))
    conftest.pytest_collection_modifyitems(config, items)
    assert {item.name for item in items} == kept
    assert {item.name for item in deselected} == {"fast", "slow", "gpu"} - kept


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
