"""Dependencies point one way (modeling <- tasks <- qualityfm_hf) and Hub remote-code files stay flat."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

STDLIB = set(sys.stdlib_module_names)
REMOTE_CODE_ALLOWED = STDLIB | {"torch", "transformers", "numpy", "huggingface_hub", "__future__"}


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(module, relative level) for every import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "modeling").glob("*.py")), ids=lambda p: p.name)
def test_modeling_files_import_only_torch_transformers_and_flat_siblings(path):
    for module, level in imports_of(path):
        if level:
            assert level == 1 and "." not in module, f"{path.name}: `from {'.' * level}{module}` is not flat"
            assert (REPO_ROOT / "modeling" / f"{module}.py").exists(), f"{path.name}: no sibling {module}.py"
        else:
            assert module.split(".")[0] in REMOTE_CODE_ALLOWED, f"{path.name} imports {module}"


def test_feature_extractor_is_standalone_remote_code():
    path = REPO_ROOT / "qualityfm_hf" / "feature_extraction_qualityfm.py"
    for module, level in imports_of(path):
        assert level == 0, f"relative import {module} would not ship with the checkpoint"
        assert module.split(".")[0] in REMOTE_CODE_ALLOWED | {"scipy"}, module


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "tasks").rglob("*.py")), ids=lambda p: str(p.name))
def test_tasks_never_import_the_integration_layer(path):
    for module, level in imports_of(path):
        top = module.split(".")[0] if not level else None
        if top == "qualityfm_hf":
            assert module.startswith(("qualityfm_hf.tasks", "qualityfm_hf.modeling")), f"{path} imports {module}"
        if level >= 2:  # ..x from inside tasks/ reaches qualityfm_hf/*
            parent = path.parent.relative_to(REPO_ROOT / "tasks").parts
            assert level - 1 <= len(parent) or module.startswith("modeling"), f"{path} imports {'.' * level}{module}"


def test_nothing_named_modeling_or_tasks_is_installed_top_level():
    import tomllib

    setuptools_cfg = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = setuptools_cfg["packages"]
    assert all(name == "qualityfm_hf" or name.startswith("qualityfm_hf.") for name in packages), packages
    assert setuptools_cfg["package-dir"]["qualityfm_hf.modeling"] == "modeling"
    assert setuptools_cfg["package-dir"]["qualityfm_hf.tasks"] == "tasks"
    for sub in ("modeling", "tasks"):  # every source directory with modules is packaged, under qualityfm_hf
        for init in (REPO_ROOT / sub).rglob("__init__.py"):
            dotted = ".".join(("qualityfm_hf",) + init.parent.relative_to(REPO_ROOT).parts)
            assert dotted in packages, f"{dotted} is not listed in pyproject's packages"
