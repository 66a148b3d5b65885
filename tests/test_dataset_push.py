"""`build_task_dataset(...).push_to_hub` then `datasets.load_dataset` through the loopback Hub (issue 11).

datasets writes each split as Parquet shards and deletes every shard once it is preuploaded, so it needs
the Hub's LFS path: the fake Hub runs with `lfs=True` and its clients with Xet off (`tests/hub_server.py`).
The client runs in a subprocess because huggingface_hub reads `HF_ENDPOINT` when it is imported.
`save_to_disk`/`load_from_disk` is covered in `tests/test_task_datasets.py`.
"""

from __future__ import annotations

import hashlib
import json

import hub_fixtures
import pytest
from conftest import REPO_ROOT
from hub_fixtures import FAKE_TOKEN, hub_subprocess_env, run_hub_python
from hub_server import FakeHub
from huggingface_hub import DatasetCard

fake_lfs_hub = hub_fixtures.fake_lfs_hub

BUNDLED_VT = REPO_ROOT / "qualityfm_hf" / "data" / "physionet2015_vt"
REPO_ID = "org/vt-windows"
SPLITS = ["train", "validation", "test"]

PUSH_AND_LOAD = """
import json, warnings
import numpy as np
import datasets, qualityfm_hf

warnings.simplefilter("ignore")
data = qualityfm_hf.build_task_dataset("vt-false-alarm", {data_dir!r}, seed=5)
# Two shards for train, so load_dataset has to put a split back together from several files.
commit = data.push_to_hub({repo_id!r}, commit_message="VT windows", num_shards={{"train": 2}})
loaded = datasets.load_dataset({repo_id!r}, cache_dir={cache_dir!r})
# The same, with the provenance kept in the dataset card.
qualityfm_hf.push_task_dataset(data, {repo_id!r} + "-kept")
provenance = qualityfm_hf.task_dataset_provenance({repo_id!r} + "-kept")
kept = datasets.load_dataset({repo_id!r} + "-kept", cache_dir={cache_dir!r})


def same_rows(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.keys() != y.keys():
            return False
        for key in x:
            if key == "signals":  # float32 windows; a missing channel would be NaN
                if not np.array_equal(np.asarray(x[key], np.float32), np.asarray(y[key], np.float32),
                                      equal_nan=True):
                    return False
            elif x[key] != y[key]:
                return False
    return True


print(json.dumps({{
    "commit": commit.oid,
    "splits": {{"original": list(data), "loaded": list(loaded)}},
    "rows": {{s: [data[s].num_rows, loaded[s].num_rows] for s in data}},
    "records": {{s: [list(data[s]["record"]), list(loaded[s]["record"])] for s in data}},
    "features_equal": {{s: loaded[s].features == data[s].features for s in data}},
    "features": loaded["train"].features.to_dict(),
    "same_rows": {{s: same_rows(data[s].to_list(), loaded[s].to_list()) for s in data}},
    "first_label": [data["train"][0]["label"], loaded["train"][0]["label"]],
    "signal_shape": list(np.asarray(loaded["train"][0]["signals"]).shape),
    "description": [data["train"].info.description, loaded["train"].info.description],
    "provenance": provenance,
    "kept_rows": {{s: kept[s].num_rows for s in kept}},
}}))
"""


# The round trip is one subprocess pushing and loading through the loopback LFS Hub (10-20 s): the three tests on
# it run with the slow tests in CI (.ci/run). The fast suite keeps the LFS path (the last test), save_to_disk and
# the card's provenance with the Hub calls stubbed (tests/test_task_datasets.py).
@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """Push the bundled VT windows once per module; the Hub's state and the client's report, for the tests."""
    tmp = tmp_path_factory.mktemp("dataset_push")
    with FakeHub(token=FAKE_TOKEN, max_lifetime_s=600.0, lfs=True) as hub:
        env = hub_subprocess_env(hub.url, tmp / "hf_home", xet=False)
        code = PUSH_AND_LOAD.format(data_dir=str(BUNDLED_VT), repo_id=REPO_ID, cache_dir=str(tmp / "load_cache"))
        out = json.loads(run_hub_python(code, env, timeout=300).stdout.strip().splitlines()[-1])
        yield {
            "out": out,
            "files": hub.files(REPO_ID, repo_type="dataset"),
            "kept_files": hub.files(REPO_ID + "-kept", repo_type="dataset"),
            "lfs": hub.lfs_files(REPO_ID, repo_type="dataset"),
            "requests": list(hub.requests),
            "unhandled": list(hub.unhandled),
        }


@pytest.mark.slow
def test_load_dataset_gives_back_the_pushed_splits_features_and_rows(round_trip):
    out = round_trip["out"]
    assert out["splits"] == {"original": SPLITS, "loaded": SPLITS}
    assert all(original == loaded for original, loaded in out["rows"].values())
    assert sum(original for original, _ in out["rows"].values()) == 12  # the bundled records, one window each
    assert all(original == loaded for original, loaded in out["records"].values())
    records = [set(original) for original, _ in out["records"].values()]
    assert len(set.union(*records)) == sum(map(len, records))  # still split by record
    assert out["features_equal"] == dict.fromkeys(SPLITS, True)
    assert out["features"]["label"] == {"names": ["false alarm", "true alarm"], "_type": "ClassLabel"}
    assert out["features"]["record"] == {"dtype": "string", "_type": "Value"}
    assert out["same_rows"] == dict.fromkeys(SPLITS, True)
    assert out["first_label"][0] == out["first_label"][1] in (0, 1)
    assert out["signal_shape"][0] == 2 and out["signal_shape"][1] > 1000  # a PPG + ECG window, not a stub


@pytest.mark.slow
def test_shards_went_through_lfs_and_load_dataset_read_them_from_the_hub(round_trip):
    files, lfs = round_trip["files"], round_trip["lfs"]
    shards = {path for path in files if path.endswith(".parquet")}
    assert shards == {
        "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
        "data/validation-00000-of-00001.parquet", "data/test-00000-of-00001.parquet",
    }
    assert all(files[path][:4] == b"PAR1" for path in shards)
    assert lfs == shards  # README.md and .gitattributes stay regular files
    card = DatasetCard(files["README.md"].decode())
    info = card.data.dataset_info  # one config: a mapping, not a list
    label = next(f for f in info["features"] if f["name"] == "label")
    assert label["dtype"]["class_label"]["names"] == {"0": "false alarm", "1": "true alarm"}
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {
        s: rows[0] for s, rows in round_trip["out"]["rows"].items()
    }
    requests = round_trip["requests"]
    assert sum(path.endswith(".git/info/lfs/objects/batch") and f"/{REPO_ID}.git/" in path
               for _, path in requests) == len(shards)
    commit = round_trip["out"]["commit"]
    for shard in shards:  # load_dataset downloaded every shard from the pushed commit
        assert ("GET", f"/datasets/{REPO_ID}/resolve/{commit}/{shard}") in requests
    assert round_trip["unhandled"] == []


@pytest.mark.slow
def test_push_to_hub_drops_the_provenance_and_push_task_dataset_keeps_it(round_trip):
    out = round_trip["out"]
    original = json.loads(out["description"][0])
    assert original["seed"] == 5 and len(original["splits"]) == 12
    # datasets writes only features, splits and sizes into the card: load_dataset gives no description back.
    assert not out["description"][1]
    assert out["provenance"] == original  # every record's split, the seed, the options
    assert out["kept_rows"] == {s: rows[0] for s, rows in out["rows"].items()}
    card = DatasetCard(round_trip["kept_files"]["README.md"].decode())
    assert "## Provenance" in card.text and "seed 5" in card.text
    plain = DatasetCard(round_trip["files"]["README.md"].decode()).data.dataset_info
    assert {k: card.data.dataset_info[k] for k in ("features", "splits")} == {k: plain[k] for k in ("features", "splits")}


def test_lfs_upload_download_and_unchanged_reupload(fake_lfs_hub, tmp_path):
    """The fake Hub's LFS path on its own, with huggingface_hub: what the dataset push rests on."""
    payload = bytes(range(256)) * 64  # binary: LFS whatever its name
    code = """
import json
from huggingface_hub import HfApi, hf_hub_download
payload = bytes(range(256)) * 64
api = HfApi()
api.create_repo("org/blobs", repo_type="dataset")
first = api.upload_file(path_or_fileobj=payload, path_in_repo="x/blob.bin", repo_id="org/blobs",
                        repo_type="dataset")
api.upload_file(path_or_fileobj=b"text", path_in_repo="notes.txt", repo_id="org/blobs", repo_type="dataset")
api.upload_file(path_or_fileobj=payload, path_in_repo="x/blob.bin", repo_id="org/blobs",
                        repo_type="dataset")
(entry,) = [e for e in api.list_repo_tree("org/blobs", repo_type="dataset", recursive=True)
            if e.path == "x/blob.bin"]
path = hf_hub_download("org/blobs", "x/blob.bin", repo_type="dataset", revision=first.oid)
print(json.dumps({"same": open(path, "rb").read() == payload, "lfs": entry.lfs and dict(entry.lfs),
                  "size": entry.size}))
"""
    env = hub_subprocess_env(fake_lfs_hub.url, tmp_path / "hf_home", xet=False)
    out = json.loads(run_hub_python(code, env).stdout.strip().splitlines()[-1])
    assert out["same"] and out["size"] == len(payload)
    assert out["lfs"]["sha256"] == hashlib.sha256(payload).hexdigest() and out["lfs"]["size"] == len(payload)
    assert fake_lfs_hub.lfs_files("org/blobs", repo_type="dataset") == {"x/blob.bin"}
    puts = [path for method, path in fake_lfs_hub.requests if method == "PUT"]
    assert len(puts) == 1  # the unchanged re-upload sent no bytes
    assert fake_lfs_hub.unhandled == []
