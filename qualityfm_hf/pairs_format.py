"""The pairs folder's format moved to `qualityfm_hf.pairs.format`. This path stays only while
benchmarks/bench_pairs.py (maintained with the benchmark suite) imports it to clear the checksum cache; delete it once
that file imports `qualityfm_hf.pairs.format`."""

from .pairs.format import *  # noqa: F403
from .pairs.format import _VERIFIED  # noqa: F401
