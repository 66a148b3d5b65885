"""Ray Data engine of `build_pairs`: segment and score records on a Ray cluster (`engine="ray"`).

Only the per-record work leaves the driver. Each record's task goes out as one row of a Ray Data dataset,
a task per row, and comes back as the record's `RecordWindows`; the driver still groups them into shards
and writes every shard and the manifest itself, exactly as the local build does, so both engines give the
same bytes and resume the same way. Inputs must therefore be readable at the same path on every node; the
output is written only by the driver.

The driver must run on a node of the cluster (address `"auto"` or `"HEAD:6379"`): Ray Data does not run
through Ray Client, so `ray://` addresses are refused up front (with Ray 2.60 its executor fails at once:
`'Worker' object has no attribute 'core_worker'`).

Ray is imported only here and only when the engine is asked for, so `qualityfm_hf` works without it
(`pip install qualityfm-hf[ray]` adds it).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

INSTALL_HINT = "pip install qualityfm-hf[ray]"


def require_ray():
    """The `ray` module, with Ray Data importable.

    Raises:
        `ValueError`: Ray or Ray Data is not installed; the message gives the install command.
    """
    try:
        import ray
        import ray.data  # noqa: F401  (ray without its [data] extra imports, but has no usable Ray Data)
    except ImportError as err:
        raise ValueError(
            f"the Ray engine needs Ray Data, which is not installed ({err}); run `{INSTALL_HINT}`."
        ) from err
    return ray


def check_address(address: str | None) -> None:
    """Refuse a Ray Client address (`ray://...`, given or in `RAY_ADDRESS`) before connecting: Ray Data
    needs a driver on a node of the cluster.

    Raises:
        `ValueError`: the address is a Ray Client address; the message says what to use instead.
    """
    effective = address if address is not None else os.environ.get("RAY_ADDRESS")
    if effective and effective.startswith("ray://"):
        where = "" if address is not None else " (from RAY_ADDRESS)"
        raise ValueError(
            f"{effective}{where} is a Ray Client address, and Ray Data does not run through Ray Client; "
            "run the build on a node of the cluster with address 'auto' (`--ray-address auto`)."
        )


@contextmanager
def ray_session(address: str | None = None):
    """Connect to Ray for the duration of the block: to `address` (`"auto"`, `"HEAD:6379"`; see
    `check_address`) or, when `None`, to the cluster in `RAY_ADDRESS` or a new local instance. An instance
    already initialised in this process is used as it is and left running; one started here is shut down
    on leaving."""
    ray = require_ray()
    check_address(address)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


@contextmanager
def _quiet_data_context(ray):
    """Ray Data without its own progress bars, restored afterwards: the build's bar already counts
    records, and two bars on one terminal garble each other."""
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars
    context.enable_progress_bars = False
    try:
        yield
    finally:
        context.enable_progress_bars = saved


def _run_row(row: dict, fn: Callable) -> dict:
    """Ray Data row function: `fn` of the row's task. Task and result travel pickled, because Arrow, which
    holds the rows, would turn a `RecordWindows` (numpy arrays of set dtypes and shapes) into other types."""
    result = fn(pickle.loads(row["task"]))
    return {"index": row["index"], "result": pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)}


def ray_map(fn: Callable, tasks: dict[int, Any], address: str | None = None) -> Iterator[tuple[int, Any]]:
    """`(key, fn(task))` for every item of `tasks`, computed on Ray with Ray Data, in the order results
    arrive.

    Args:
        fn (`Callable`): A module-level function (Ray ships it to the workers by reference, so the package
            must be importable on every node).
        tasks (`dict[int, Any]`): Picklable tasks by key, submitted in this order.
        address (`str | None`, defaults to `None`): Ray cluster address, see `ray_session`.

    Yields:
        `tuple[int, Any]`: A key of `tasks` and its result, each key once, in completion order.
    """
    if not tasks:
        return
    with ray_session(address) as ray, _quiet_data_context(ray):
        items = [{"index": key, "task": pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)}
                 for key, task in tasks.items()]
        # One block per record, so each record is a task of its own and records spread over every free
        # CPU (by default Ray Data packs many rows into one block, which one worker runs one by one).
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        for row in dataset.map(_run_row, fn_kwargs={"fn": fn}).iter_rows():
            yield int(row["index"]), pickle.loads(row["result"])


__all__ = ["INSTALL_HINT", "check_address", "ray_map", "ray_session", "require_ray"]
