"""Progress bars for the package's long loops, with one switch.

`progress_bar(iterable, desc=...)` is a tqdm bar on stderr, shown unless bars are off: `disable_progress_bars()`
(what `qualityfm --no-progress` calls; it also silences transformers', datasets' and huggingface_hub's bars) or
`QUALITYFM_NO_PROGRESS=1`.
"""

from __future__ import annotations

import os

_ENABLED = True
ENV = "QUALITYFM_NO_PROGRESS"


def progress_enabled() -> bool:
    return _ENABLED and os.environ.get(ENV, "").lower() in ("", "0", "false")


def disable_progress_bars() -> None:
    """Turn off every progress bar: this package's, transformers', datasets' and huggingface_hub's."""
    global _ENABLED
    _ENABLED = False
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        import datasets
        import transformers

        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover - both are dependencies
        pass


def progress_bar(iterable=None, *, desc: str, total: int | None = None, unit: str = "it", leave: bool = False,
                 initial: int = 0, disable: bool = False):
    """A tqdm bar (stderr) over `iterable`; disabled when the caller asks (`disable`) or bars are off globally."""
    from tqdm.auto import tqdm

    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, initial=initial,
                disable=disable or not progress_enabled())


__all__ = ["disable_progress_bars", "progress_bar", "progress_enabled"]
