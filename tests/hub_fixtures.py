"""Pytest fixtures for the loopback fake Hub (`tests/hub_server.py`).

Import them in `conftest.py` with `from hub_fixtures import fake_hub, fake_hub_endpoint, hub_env  # noqa: F401`.

Hub clients must run in **subprocesses**: `huggingface_hub.constants.ENDPOINT` is read when
huggingface_hub is first imported and transformers caches one `HfApi`, so pointing an already-imported
client at the fake Hub would need monkeypatching two globals. `hub_env` is the environment for such a
subprocess; `run_hub_python(code, env)` runs one with a time limit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import FakeHub

FAKE_TOKEN = "hf_fake_token"


def hub_subprocess_env(
    endpoint: str, hf_home: str | Path, token: str = FAKE_TOKEN, xet: bool = True
) -> dict[str, str]:
    """`os.environ` pointed at the fake Hub, with its own `HF_HOME` so downloads cannot hit a warm cache.

    Offline switches are removed (a conftest may set `HF_HUB_OFFLINE=1` for every other test) and
    telemetry/progress bars are off. Xet stays enabled, as for real users: the fake Hub never sends
    Xet headers, so transfers stay plain HTTP while `upload_folder` takes its default pipelined path.
    `xet=False` sets `HF_HUB_DISABLE_XET=1`, which clients of `FakeHub(lfs=True)` need: huggingface_hub
    sends LFS uploads through Xet whenever `hf_xet` is installed, and the fake Hub has no Xet storage.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE_")) and key != "TRANSFORMERS_OFFLINE"
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_TOKEN=token,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    return env


def run_hub_python(code: str, env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run `python -c code` with `env`; fail the test with the child's stderr if it exits non-zero."""
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        pytest.fail(
            f"subprocess exited {proc.returncode}\n--- stdout\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A running `FakeHub` (empty, in memory); stopped after the test, and by itself after 10 minutes."""
    with FakeHub(token=FAKE_TOKEN, max_lifetime_s=600.0) as hub:
        yield hub


@pytest.fixture
def fake_lfs_hub() -> Iterator[FakeHub]:
    """A running `FakeHub(lfs=True)`: binary and `.gitattributes`-matched files go through Git LFS, as on
    the Hub. Its clients need `hub_subprocess_env(..., xet=False)`."""
    with FakeHub(token=FAKE_TOKEN, max_lifetime_s=600.0, lfs=True) as hub:
        yield hub


@pytest.fixture
def fake_hub_endpoint(fake_hub: FakeHub) -> str:
    """The fake Hub's URL, e.g. `http://127.0.0.1:38211`, to use as `HF_ENDPOINT`."""
    return fake_hub.url


@pytest.fixture
def hub_env(fake_hub_endpoint: str, tmp_path: Path) -> dict[str, str]:
    """Subprocess environment for the fake Hub with a fresh `HF_HOME` under `tmp_path`."""
    return hub_subprocess_env(fake_hub_endpoint, tmp_path / "hf_home")
