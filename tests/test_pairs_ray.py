"""`build_pairs(engine="ray")` on a local 2-CPU Ray instance: the local build's bytes, resume, errors.

Real records from tests/fixtures: v100s, v176s, v290s (PhysioNet 2015) and A00015 (PhysioNet 2017, a 30-s
ECG), two per shard, so a build has two shards of two records each.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys

import pytest
from conftest import FIXTURES, copy_records

from qualityfm_hf.cli.main import main
from qualityfm_hf.pairs import ray as pairs_ray
from qualityfm_hf.pairs.build import _complete_shards, build_pairs
from qualityfm_hf.utils import progress as progress_module

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

RECORDS = ("v100s", "v176s", "v290s", "A00015")
PER_SHARD = 2


def _digests(directory):
    """sha256 of every shard file and of manifest.json, by file name."""
    files = sorted(p for p in directory.iterdir() if p.suffix in (".parquet", ".json"))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("qualityfm build-pairs: error: ") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return copy_records(RECORDS, FIXTURES, tmp_path_factory.mktemp("ray") / "records")


@pytest.fixture(scope="module")
def local_build(records):
    """The reference: the default local engine, one process."""
    out = records.parent / "local"
    build_pairs(records, out, records_per_shard=PER_SHARD, progress=False)
    return out


@pytest.fixture(scope="module")
def ray_2cpus():
    """One new local Ray instance of 2 CPUs for the module (whatever RAY_ADDRESS says); builds use it."""
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


# =============================================================================
# Shards from results in completion order (no Ray needed, but it lives with the engine that needs it)
# =============================================================================
def test_complete_shards_puts_records_in_plan_order_and_yields_a_shard_when_its_last_record_is_back():
    counted = []
    arrivals = [(3, "d"), (0, "a"), (2, "c"), (1, "b")]  # Ray's completion order, across shards
    shards = list(_complete_shards([(0, [0, 1]), (1, [2, 3])], iter(arrivals), lambda: counted.append(1)))
    assert shards == [(1, [(2, "c"), (3, "d")]), (0, [(0, "a"), (1, "b")])]
    assert len(counted) == 4


# =============================================================================
# Errors (before any Ray instance starts: one test hides the ray package)
# =============================================================================
def test_unknown_engine_and_ray_address_without_ray_engine(records, tmp_path, capsys):
    with pytest.raises(ValueError, match=re.escape("unknown engine 'spark'; choose one of: local, ray.")):
        build_pairs(records, tmp_path / "p", engine="spark")
    with pytest.raises(ValueError, match=re.escape("ray_address='auto' needs engine='ray'")):
        build_pairs(records, tmp_path / "p", ray_address="auto")
    assert not (tmp_path / "p").exists()  # checked before anything is written

    args = ["build-pairs", "--input", str(records), "--output", str(tmp_path / "p"), "--no-progress"]
    assert main(args + ["--engine", "spark"]) == 1
    assert "choose one of: local, ray" in _one_line_error(capsys)
    assert main(args + ["--ray-address", "auto"]) == 1
    assert "--ray-address needs --engine ray" in _one_line_error(capsys)


def test_ray_engine_without_ray_names_the_extra(records, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when not installed
    with pytest.raises(ValueError, match=r"not installed.*" + re.escape("pip install qualityfm-hf[ray]")):
        build_pairs(records, tmp_path / "p", engine="ray")
    args = ["build-pairs", "--input", str(records), "--output", str(tmp_path / "p"), "--engine", "ray"]
    assert main(args) == 1
    assert "pip install qualityfm-hf[ray]" in _one_line_error(capsys)
    assert not (tmp_path / "p").exists()


def test_ray_client_addresses_are_refused_before_connecting(records, tmp_path, monkeypatch, capsys):
    # Ray Data does not run through Ray Client (Ray 2.60: "'Worker' object has no attribute 'core_worker'")
    with pytest.raises(ValueError, match=re.escape("ray://head:10001 is a Ray Client address")):
        build_pairs(records, tmp_path / "p", engine="ray", ray_address="ray://head:10001")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    args = ["build-pairs", "--input", str(records), "--output", str(tmp_path / "p"), "--engine", "ray"]
    assert main(args) == 1
    assert "(from RAY_ADDRESS) is a Ray Client address" in _one_line_error(capsys)
    assert not (tmp_path / "p").exists() and not ray.is_initialized()


# =============================================================================
# Builds on Ray
# =============================================================================
def test_ray_address_goes_to_ray_init_and_a_started_ray_is_shut_down(ray_2cpus, tmp_path, monkeypatch):
    class RecordingRay:
        """Stands for `ray` in pairs_ray: says it is not initialised and records init/shutdown, while Ray Data
        runs on the module's instance."""

        data = ray.data

        def __init__(self):
            self.calls = []

        def is_initialized(self):
            return False

        def init(self, **kwargs):
            self.calls.append(("init", kwargs))

        def shutdown(self):
            self.calls.append(("shutdown",))

    fake = RecordingRay()
    monkeypatch.setattr(pairs_ray, "require_ray", lambda: fake)
    one = copy_records(("v290s",), FIXTURES, tmp_path / "records")
    manifest = build_pairs(one, tmp_path / "p", engine="ray", ray_address="10.0.0.1:6379", progress=False)
    assert manifest["complete"] and manifest["counts"]["records_with_windows"] == 1
    assert fake.calls == [("init", {"address": "10.0.0.1:6379"}), ("shutdown",)]


def test_ray_build_is_byte_identical_to_local_build(ray_2cpus, records, local_build, monkeypatch):
    updates = []

    def counting_bar(*args, **kwargs):  # the real bar, with each update recorded
        bar = real_bar(*args, **kwargs)
        update = bar.update
        bar.update = lambda n=1: (updates.append(n), update(n))[1]
        return bar

    real_bar = progress_module.progress_bar
    monkeypatch.setattr(progress_module, "progress_bar", counting_bar)
    out = records.parent / "ray"
    manifest = build_pairs(records, out, records_per_shard=PER_SHARD, progress=False, engine="ray")
    assert manifest["complete"] and manifest["counts"]["shards"] == 2 and manifest["counts"]["pairs"] > 0
    assert updates == [1] * len(RECORDS)  # the bar advances per record, not per shard
    digests = _digests(out)
    assert sorted(digests) == ["manifest.json", "pairs-00000.parquet", "pairs-00001.parquet",
                               "windows-00000.parquet", "windows-00001.parquet"]
    assert digests == _digests(local_build)
    assert ray.is_initialized()  # an instance the caller started is left running


def test_ray_build_stopped_by_max_records_resumes_to_the_same_bytes(ray_2cpus, records, local_build, capsys):
    out = records.parent / "ray-resumed"
    args = ["build-pairs", "--input", str(records), "--output", str(out), "--records-per-shard",
            str(PER_SHARD), "--engine", "ray", "--json", "--no-progress"]
    assert main(args + ["--max-records", "3"]) == 0  # shard 0 complete, shard 1 holds 1 of its 2 records
    partial = json.loads(capsys.readouterr().out)
    assert not partial["complete"] and partial["counts"]["records_done"] == 3
    first = (out / "windows-00000.parquet").stat()
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["counts"]["records_done"] == len(RECORDS)
    again = (out / "windows-00000.parquet").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # complete shard reused
    assert _digests(out) == _digests(local_build)
