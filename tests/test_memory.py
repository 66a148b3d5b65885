"""`utils.memory.keep_freed_memory`: freed blocks are reused, not faulted in again (glibc only).

The blocks are malloc'd through ctypes rather than as tensors, so no other allocation lands above them on the
heap (it would stop glibc's trimming by chance and make the default case look good)."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")

REALLOCATE = """
import ctypes, ctypes.util, resource, sys
import qualityfm_cli  # noqa: F401  (as the CLI does: defers `import qualityfm_hf`'s torch import, ~8 s)
from qualityfm_hf.utils.memory import keep_freed_memory

kept = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 16 * 2**20  # below the 32 MiB mmap threshold keep_freed_memory sets


def step():  # a training step's activations: several blocks alive at once, written, then all freed
    blocks = [libc.malloc(size) for _ in range(6)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    for block in blocks:
        libc.free(block)


for _ in range(2):
    step()  # the heap grows to what a step needs
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", REALLOCATE, mode], capture_output=True, text=True, check=True)
    kept, count = out.stdout.split()[-2:]
    return kept, int(count)


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    kept, with_setting = faults("keep")
    if kept != "True":
        pytest.skip("not glibc: keep_freed_memory changes nothing here")
    _, without = faults("default")
    # By default glibc trims the heap once more than twice its adaptive mmap threshold is free at its top, so each
    # step writes 96 MiB of fresh pages again (about 24,000 minor faults of 4 KiB); kept memory needs none.
    assert without > 5 * 20_000
    assert with_setting < 1_000
