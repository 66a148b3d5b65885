"""Task data moved to `qualityfm_hf.finetuning.task_data`; this path still imports it, because the task builders'
error message and docstrings (`tasks/common.py`) tell users to call `qualityfm_hf.task_data.build_task_table`."""

from .finetuning.task_data import *  # noqa: F403
