"""Dependencies point one way (modeling <- tasks <- qualityfm_hf) and Hub remote-code files stay flat."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

STDLIB = set(sys.stdlib_module_names)
REMOTE_CODE_ALLOWED = STDLIB | {"torch", "transformers", "numpy", "scipy", "huggingface_hub", "__future__"}


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


def test_feature_extractor_needs_no_torch_and_only_its_rhythm_sibling():
    # The feature extractor's remote code is copied with the sibling files it imports (transformers follows relative
    # imports), so one standalone sibling is fine; torch is not needed to prepare inputs.
    path = REPO_ROOT / "modeling" / "feature_extraction_qualityfm.py"
    siblings = [module for module, level in imports_of(path) if level]
    assert siblings == ["rhythm_qualityfm"]
    for file in (path, REPO_ROOT / "modeling" / "rhythm_qualityfm.py"):
        for module, level in imports_of(file):
            if file.name == "rhythm_qualityfm.py":
                assert level == 0, f"{file.name}: relative import {module}"
            if level == 0:
                assert module.split(".")[0] in REMOTE_CODE_ALLOWED - {"torch"}, f"{file.name} imports {module}"


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


def test_every_integration_sub_package_is_packaged():
    # Issue 12: qualityfm_hf/ is grouped into sub-packages by pipeline stage; pyproject lists packages one by one, so
    # a folder missing from that list (or without __init__.py) would be left out of the wheel.
    import tomllib

    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    folders = {path.parent for path in (REPO_ROOT / "qualityfm_hf").rglob("*.py") if "weights" not in path.parts}
    assert len(folders) > 2
    for folder in folders:
        assert (folder / "__init__.py").is_file(), f"{folder} holds modules but no __init__.py"
        dotted = ".".join(folder.relative_to(REPO_ROOT).parts)
        assert dotted in packages, f"{dotted} is not listed in pyproject's packages"


def _package_imports() -> dict[str, set[str]]:
    """module -> the package modules it imports, lazy imports inside functions included."""
    roots = {"qualityfm_hf": ("qualityfm_hf",), "modeling": ("qualityfm_hf", "modeling"),
             "tasks": ("qualityfm_hf", "tasks")}
    files = {}
    for folder, prefix in roots.items():
        for path in (REPO_ROOT / folder).rglob("*.py"):
            if "weights" in path.parts:
                continue  # copies of modeling/ shipped with the encoder
            parts = list(prefix) + list(path.relative_to(REPO_ROOT / folder).with_suffix("").parts)
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found |= {c for c in candidates if c in files and c != name}
        graph[name] = found
    return graph


def test_no_import_cycles_between_package_modules():
    # Issue 12: evaluation <-> finetuning and pairs <-> pairs_dataset imported each other (lazily, one way).
    graph = _package_imports()
    assert {"qualityfm_hf.finetuning.task_data", "qualityfm_hf.pairs.format", "qualityfm_hf.pretraining.trainer",
            "qualityfm_hf.recordings.io", "qualityfm_hf.reports.cards"} <= set(graph)
    assert "qualityfm_hf.finetuning.task_data" in graph["qualityfm_hf.reports.cards"]  # edges across sub-packages

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert cycles == []


def test_one_module_calls_the_polyphase_resampler():
    # Issue 12: three resamplers (feature extractor, pair builder, task windows) formed the rate ratio and bridged
    # gaps each a little differently.
    callers = sorted(str(path.relative_to(REPO_ROOT)) for folder in ("qualityfm_hf", "modeling", "tasks")
                     for path in (REPO_ROOT / folder).rglob("*.py")
                     if "weights" not in path.parts and "resample_poly(" in path.read_text())
    assert callers == ["modeling/feature_extraction_qualityfm.py"]


def test_no_module_is_left_at_an_old_flat_path():
    # Issue 12 grouped the modules by stage; everything that named the old flat paths (tasks/, benchmarks/, model
    # docstrings) now names the new homes, so no re-export is kept but the extractor's alias.
    flat = sorted(p.name for p in (REPO_ROOT / "qualityfm_hf").glob("*.py"))
    assert flat == ["__init__.py", "feature_extraction_qualityfm.py", "pipelines.py", "pretrained.py", "quickstart.py",
                    "registration.py"]


STAGES = {"quality": 1, "recordings": 1, "pairs": 2, "pretraining": 3, "finetuning": 4, "reports": 5}


def test_each_stage_imports_only_the_stages_before_it():
    # qualityfm_hf/README.md: the folders follow the path a recording takes, and a stage imports only the stages
    # before it (plus modeling, tasks, utils), lazy imports included. The one exception: saving a model writes its
    # card, so pretraining and fine-tuning call the card writer of the reports stage.
    later = []
    for source, targets in _package_imports().items():
        parts = source.split(".")
        if parts[0] != "qualityfm_hf" or len(parts) < 3 or parts[1] not in STAGES:
            continue
        for target in targets:
            stage = target.split(".")[1] if target.count(".") >= 1 else None
            if stage in STAGES and STAGES[stage] > STAGES[parts[1]] and target != "qualityfm_hf.reports.cards":
                later.append(f"{source} -> {target}")
    assert sum(1 for m in _package_imports() if m.split(".")[1:2] and m.split(".")[1] in STAGES) > 20
    assert later == []
