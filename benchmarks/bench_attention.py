"""Time and peak memory of each windowed-attention backend, 18 to 100,000 tokens.

One attention layer of the base model (d 512, 4 heads, window 8, global token 0), batch 1, fp32, forward and
forward+backward. Each cell runs in a fresh process so peak memory is its own: peak RSS after warm-up
(VmHWM, reset through /proc/self/clear_refs) minus RSS before the timed calls. Dense backends ("eager", "sdpa")
build an n × n mask and scores, so they run only where that fits in `--dense-limit-gib`.

    python benchmarks/bench_attention.py --output benchmarks/results/attention.json

Not collected by pytest; tests never assert timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TOKENS = [18, 180, 1_800, 7_200, 10_000, 36_000, 100_000]
BACKENDS = ["eager", "sdpa", "qfm_blocked"]
MODES = ["forward", "forward+backward"]


def read_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def run_cell(backend: str, tokens: int, mode: str, repeats: int) -> dict:
    import torch

    from qualityfm_hf import QualityFMConfig
    from qualityfm_hf.modeling.attention_qualityfm import windowed_mask
    from qualityfm_hf.modeling.modeling_qualityfm import QualityFMAttention

    torch.manual_seed(0)
    config = QualityFMConfig.from_preset("base", attention_dropout=0.0)
    attention = QualityFMAttention(config)
    token_mask = torch.ones(1, tokens, dtype=torch.bool)
    hidden = torch.randn(1, tokens, config.hidden_size, requires_grad=mode != "forward")

    def step():
        mask = token_mask if backend == "qfm_blocked" else windowed_mask(token_mask, config.half_window)
        if mode == "forward":
            with torch.no_grad():
                attention(hidden, mask, backend)
        else:
            out, _ = attention(hidden, mask, backend)
            out.sum().backward()
            hidden.grad = None
            attention.zero_grad(set_to_none=True)

    step()  # warm-up
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline = read_status("VmRSS")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "backend": backend, "tokens": tokens, "mode": mode, "median_s": statistics.median(times),
        "min_s": min(times), "peak_extra_mib": (read_status("VmHWM") - baseline) / 2**20, "repeats": repeats,
    }


def dense_bytes(tokens: int, mode: str) -> float:
    # bool mask + fp32 scores and probabilities per head (4 heads); backward keeps about twice as much.
    per = tokens * tokens * (1 + 4 * 4 * 2)
    return per * (2 if mode != "forward" else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="benchmarks/results/attention.json")
    parser.add_argument("--tokens", type=int, nargs="*", default=TOKENS)
    parser.add_argument("--dense-limit-gib", type=float, default=12.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.cell:
        import torch

        torch.set_num_threads(args.threads)
        backend, tokens, mode = args.cell.split(",")
        tokens = int(tokens)
        repeats = 5 if tokens <= 10_000 else 2
        print(json.dumps(run_cell(backend, tokens, mode, repeats)))
        return

    rows = []
    for tokens in args.tokens:
        for backend in BACKENDS:
            for mode in MODES:
                if backend != "qfm_blocked" and dense_bytes(tokens, mode) > args.dense_limit_gib * 2**30:
                    rows.append({"backend": backend, "tokens": tokens, "mode": mode, "skipped": "dense mask too big"})
                    continue
                result = subprocess.run(
                    [sys.executable, __file__, "--cell", f"{backend},{tokens},{mode}", "--threads", str(args.threads)],
                    capture_output=True, text=True,
                )
                if result.returncode != 0:
                    rows.append({"backend": backend, "tokens": tokens, "mode": mode, "error": result.stderr[-500:]})
                else:
                    rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
                row = rows[-1]
                print(f"{tokens:>7} {backend:<12} {mode:<17} "
                      + (f"{row['median_s'] * 1e3:10.2f} ms {row['peak_extra_mib']:9.1f} MiB" if "median_s" in row
                         else row.get("skipped", "error")), flush=True)

    import torch

    meta = {
        "benchmark": "windowed attention backends", "layer": "QualityFMAttention, base (d 512, 4 heads, w 8)",
        "batch": 1, "dtype": "float32", "threads": args.threads, "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
