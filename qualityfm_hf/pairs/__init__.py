"""Stage 2: quality-divergent pairs of 30-s windows, the pretraining data (paper notes §2, §2.2, §4.1).

`build` turns a folder of recordings into a pairs folder (`build_pairs`), `format` is that folder's on-disk contract
(manifest, Parquet shards, checksums), `dataset` reads it back as a torch dataset (`load_pairs`, map-style or
streaming) or a `datasets.Dataset` with provenance (`load_pairs_table`), and `ray` spreads the segmenting over a Ray
cluster (`build_pairs(..., engine="ray")`).

The names below are the stage's entry points, importable from `qualityfm_hf.pairs` as before the package was split.
"""

from .build import build_pairs, find_records, make_pairs
from .dataset import load_pairs, load_pairs_table
from .format import FORMAT_NAME, FORMAT_VERSION, read_manifest

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "build_pairs", "find_records", "load_pairs", "load_pairs_table",
           "make_pairs", "read_manifest"]
