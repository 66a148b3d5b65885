"""Pretraining moved to `qualityfm_hf.pretraining` (split into recipes, collator, callbacks, trainer, plots). This path
stays only while benchmarks/bench_pairs.py (maintained with the benchmark suite) imports it; delete it once that file
imports `qualityfm_hf.pretraining`."""

from .pretraining.callbacks import *  # noqa: F403
from .pretraining.collator import *  # noqa: F403
from .pretraining.plots import *  # noqa: F403
from .pretraining.recipes import *  # noqa: F403
from .pretraining.trainer import *  # noqa: F403
