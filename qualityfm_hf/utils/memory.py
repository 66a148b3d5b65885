"""Keep freed memory in the process instead of handing it back to the OS (glibc malloc only).

Training and batched inference allocate and free the same large tensors every step. By default glibc gives blocks
above its mmap threshold back to the OS on free and trims the heap's top, so every step pays for the page faults
of fresh memory: on a 2-core AMD EPYC a base pretraining step took 270-298 ms this way and 225-233 ms with the
settings below, and the first tokenizer convolution's patch copy ran at about 2 GB/s instead of 20
(benchmarks/RESULTS.md). The cost is that the process keeps its peak memory until it exits. The `qualityfm`
command calls `keep_freed_memory()` before it loads torch; from Python call it yourself, or start the process with
`MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=2147483647`, which has the same effect.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int: about 2 GiB, the most it can say


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds so freed blocks up to 32 MiB are reused, not returned to the OS.
    Returns True when both were set; False (and changes nothing) off Linux/glibc, e.g. on macOS or musl."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; a threshold above glibc's maximum is refused with 0.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                   TRIM_THRESHOLD_BYTES))
