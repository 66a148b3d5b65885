"""The pairs directory format, known in one place: name and version, the manifest, checksums and atomic writes.

`pairs.build_pairs` writes it and `pairs_dataset` reads it; both import this module and neither imports the other
for it. Layout: `manifest.json` (format name + version, config, per-record status, counts, the completed shards with
their files' rows, bytes and sha256) and per shard `windows-NNNNN.parquet` and `pairs-NNNNN.parquet`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

FORMAT_NAME = "qualityfm-pairs"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(table, path: Path) -> dict:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)  # atomic on POSIX: a reader sees the old file or the whole new one
    return {"file": path.name, "rows": table.num_rows, "bytes": path.stat().st_size, "sha256": _sha256(path)}


def _write_json_atomic(data: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def shard_file_problem(directory: Path, entry: dict) -> str | None:
    """Why the shard files of manifest entry `entry` cannot be trusted (`"<file> is damaged: <why>"`), or None.
    Checks existence, size and sha256 (`file_problem`); the builder and the loaders call it alike."""
    for key in ("windows", "pairs"):
        path = Path(directory) / entry[key]["file"]
        problem = file_problem(path, entry[key])
        if problem:
            return f"{path} is damaged: {problem}"
    return None


def read_manifest(directory: str | os.PathLike) -> dict:
    """The manifest of a pairs directory, after checking its format name and version.

    Raises:
        `FileNotFoundError`: no `manifest.json`. `ValueError`: unreadable, or another format or version.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        folder = Path(directory)
        if folder.is_dir() and (any(folder.glob("*.hea")) or any(folder.glob("*.vital"))):
            # A records folder: pairs belong in a folder of their own, not among the records.
            raise FileNotFoundError(
                f"{directory} holds records, not pairs (no {MANIFEST}). Build pairs from them first: `qualityfm "
                f"build-pairs --input {directory} --output pairs/{folder.resolve().name}`, then pass that folder."
            )
        raise FileNotFoundError(
            f"{path} not found: {directory} is not a pairs directory. Build one with "
            f"`qualityfm build-pairs --input RECORDS --output {directory}`."
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); rebuild the directory with `qualityfm build-pairs`.")
    found = (manifest.get("format"), manifest.get("format_version"))
    if found != (FORMAT_NAME, FORMAT_VERSION):
        raise ValueError(
            f"{path} has format {found[0]!r} version {found[1]!r}, but this qualityfm-hf reads {FORMAT_NAME!r} "
            f"version {FORMAT_VERSION}. Rebuild it: `qualityfm build-pairs --input RECORDS --output NEW_DIR` "
            "(or delete the old directory first)."
        )
    return manifest


# Shard files whose sha256 matched the manifest in this process, keyed by (path, size, mtime): each is hashed once
# per process (about 0.1 s per 50 MB), however often it is loaded.
_VERIFIED: set[tuple[str, int, int]] = set()


def file_problem(path: Path, info: dict) -> str | None:
    """Why one shard file does not match its manifest entry `info` (`bytes`, `sha256`), or None. Bytes flipped in
    place keep a file's size; only its digest shows the change."""
    if not path.is_file():
        return "it is missing"
    stat = path.stat()
    if stat.st_size != info["bytes"]:
        return f"the manifest recorded {info['bytes']} bytes, found {stat.st_size}"
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if info.get("sha256") is None or key in _VERIFIED:
        return None
    if _sha256(path) != info["sha256"]:
        return "its sha256 does not match the manifest (same size, changed bytes)"
    _VERIFIED.add(key)
    return None


def window_tables(directory: str | os.PathLike, columns: list[str] | None = None):
    """The windows table of each shard the manifest lists, as pyarrow tables (optionally only `columns`), in
    shard order; each file's sha256 is checked first."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    for shard in read_manifest(directory)["shards"]:
        path = directory / shard["windows"]["file"]
        problem = file_problem(path, shard["windows"])
        if problem:
            raise ValueError(f"shard file {path} is damaged: {problem}. Rerun `qualityfm build-pairs` with the same "
                             "--input and --output: it rebuilds only this shard.")
        yield pq.read_table(path, columns=columns)


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MANIFEST", "file_problem", "read_manifest", "shard_file_problem",
           "window_tables"]
