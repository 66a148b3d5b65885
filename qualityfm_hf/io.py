"""The readers moved to `qualityfm_hf.recordings.io`; this path still imports them, because the task builders'
error message and docstrings (`tasks/common.py`) tell users to pass `qualityfm_hf.io.read_recording`."""

from .recordings.io import *  # noqa: F403
