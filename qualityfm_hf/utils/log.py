"""The package's log: `qualityfm_hf.*` loggers of the standard library, quiet by default in Python as transformers
is (warnings only), at INFO under the `qualityfm` command (`--verbosity` changes it).

    from qualityfm_hf.utils.log import get_logger, set_verbosity
    set_verbosity("info")  # show the progress messages of finetune_cv, quickstart, ...
"""

from __future__ import annotations

import logging
import sys

ROOT = "qualityfm_hf"
LEVELS = ("debug", "info", "warning", "error")


def get_logger(name: str) -> logging.Logger:
    """The logger of module `name` (`__name__` of a `qualityfm_hf` module)."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (pytest and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def set_verbosity(level: str | int) -> None:
    """Level of every `qualityfm_hf` logger; the first call adds one stderr handler (`[qualityfm] message`)."""
    root = logging.getLogger(ROOT)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if not any(getattr(handler, "_qualityfm", False) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[qualityfm] %(message)s"))
        handler._qualityfm = True
        root.addHandler(handler)
        root.propagate = False


__all__ = ["LEVELS", "get_logger", "set_verbosity"]
