"""End to end through the fake Hub with the real huggingface_hub and transformers clients.

Each client runs in a subprocess (`hub_env`): huggingface_hub reads `HF_ENDPOINT` at import time.
"""

import json

import hub_fixtures
import pytest
from hub_fixtures import hub_subprocess_env, run_hub_python

# Registered here too so this module runs before (and after) conftest.py imports the fixtures.
fake_hub = hub_fixtures.fake_hub
fake_hub_endpoint = hub_fixtures.fake_hub_endpoint
hub_env = hub_fixtures.hub_env

PUSH_TINY_BERT = """
import json, torch
from transformers import BertConfig, BertModel
torch.manual_seed(0)
config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=16, max_position_embeddings=16)
model = BertModel(config)
info = model.push_to_hub("org/tiny", commit_message="tiny bert")
torch.save(model.state_dict(), {weights!r})
print(json.dumps({{"commit": info.oid}}))
"""

# `cache_dir` is None for a fresh process with a fresh HF_HOME, or an empty folder in the pushing process.
LOAD_TINY_BERT = """
import json, torch
from huggingface_hub import HfApi
from transformers import AutoModel
model = AutoModel.from_pretrained("org/tiny", cache_dir={cache_dir!r})
expected = torch.load({weights!r})
same = all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
api = HfApi()
print(json.dumps({{
    "same": same, "n_tensors": len(expected), "type": type(model).__name__,
    "files": sorted(api.list_repo_files("org/tiny")),
    "sha": api.model_info("org/tiny").sha,
}}))
"""


@pytest.mark.parametrize(
    "fresh_process",
    # Two torch+transformers imports take over 20 s on 2 busy cores; the one-process variant stays fast.
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["same-process-fresh-cache", "fresh-process-fresh-hf-home"],
)
def test_push_to_hub_then_from_pretrained_gives_identical_weights(fake_hub, tmp_path, fresh_process):
    weights = str(tmp_path / "expected.pt")
    push_env = hub_subprocess_env(fake_hub.url, tmp_path / "home_push")
    if fresh_process:
        push = run_hub_python(PUSH_TINY_BERT.format(weights=weights), push_env)
        load_env = hub_subprocess_env(fake_hub.url, tmp_path / "home_load")
        load = run_hub_python(LOAD_TINY_BERT.format(weights=weights, cache_dir=None), load_env)
        pushed = json.loads(push.stdout.splitlines()[-1])
        loaded = json.loads(load.stdout.splitlines()[-1])
        cache = tmp_path / "home_load" / "hub"
    else:
        cache = tmp_path / "fresh_cache"
        code = PUSH_TINY_BERT.format(weights=weights) + LOAD_TINY_BERT.format(
            weights=weights, cache_dir=str(cache)
        )
        lines = run_hub_python(code, push_env).stdout.splitlines()
        pushed, loaded = json.loads(lines[-2]), json.loads(lines[-1])

    assert loaded["type"] == "BertModel"
    assert loaded["same"] and loaded["n_tensors"] > 10
    assert {"config.json", "model.safetensors", ".gitattributes"} <= set(loaded["files"])
    assert loaded["sha"] == pushed["commit"]
    assert json.loads(fake_hub.files("org/tiny")["config.json"])["hidden_size"] == 8
    # The weights really came through the server (transformers resolves `main` to the commit sha first).
    assert ("GET", f"/org/tiny/resolve/{pushed['commit']}/model.safetensors") in fake_hub.requests
    assert any(cache.glob("models--org--tiny/snapshots/*/model.safetensors"))
    assert fake_hub.unhandled == []


def test_upload_folder_download_and_errors(hub_env, fake_hub, tmp_path):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.json").write_text('{"b": 1}')
    code = f"""
import json
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
api = HfApi()
api.create_repo("org/data")
api.create_repo("org/data", exist_ok=True)
first = api.upload_folder(repo_id="org/data", folder_path={str(folder)!r}, commit_message="first")
api.upload_file(path_or_fileobj=b"changed", path_in_repo="a.txt", repo_id="org/data")
out = {{
    "recursive": sorted(api.list_repo_files("org/data")),
    "top": sorted(e.path for e in api.list_repo_tree("org/data")),
    "b": open(hf_hub_download("org/data", "sub/b.json")).read(),
    "a_now": open(hf_hub_download("org/data", "a.txt")).read(),
    "a_then": open(hf_hub_download("org/data", "a.txt", revision=first.oid)).read(),
}}
for call, exc in [(lambda: hf_hub_download("org/data", "missing.txt"), EntryNotFoundError),
                  (lambda: api.model_info("org/none"), RepositoryNotFoundError)]:
    try:
        call()
        out[exc.__name__] = "not raised"
    except exc:
        out[exc.__name__] = "raised"
print(json.dumps(out))
"""
    out = json.loads(run_hub_python(code, hub_env).stdout.splitlines()[-1])
    assert out["recursive"] == [".gitattributes", "a.txt", "sub/b.json"]
    assert out["top"] == [".gitattributes", "a.txt", "sub"]
    assert out["b"] == '{"b": 1}'
    assert (out["a_now"], out["a_then"]) == ("changed", "alpha")
    assert out["EntryNotFoundError"] == out["RepositoryNotFoundError"] == "raised"
    assert fake_hub.unhandled == []


def test_writes_need_the_token(fake_hub, tmp_path):
    env = hub_subprocess_env(fake_hub.url, tmp_path / "hf_home", token="hf_wrong")
    code = "from huggingface_hub import HfApi\nHfApi().create_repo('org/x')"
    with pytest.raises(pytest.fail.Exception, match="401"):
        run_hub_python(code, env)
    assert ("model", "org/x") not in fake_hub.repos
