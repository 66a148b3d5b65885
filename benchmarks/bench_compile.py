"""Does `torch.compile` (inductor, default mode) speed up base-encoder inference on this CPU? (RESULTS_NOTES.md)

Eager and compiled fp32 inference at batch 64 in one process, each as a share of the fp32 2048³ matmul P measured
just before it, with the compiled model's largest difference from eager:

    python benchmarks/bench_compile.py              # inductor defaults
    python benchmarks/bench_compile.py --freezing   # + torch._inductor.config.freezing (weight prepacking)
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--freezing", action="store_true", help="inductor's freezing (constant weights, prepacked)")
    args = parser.parse_args(argv)
    from qualityfm_hf.utils.memory import keep_freed_memory

    keep_freed_memory()  # as the qualityfm command and the suite
    import torch
    from run_suite import peak_gflops, timed_rounds  # the suite's timing: all rounds kept, median used

    from qualityfm_hf import QualityFMConfig, QualityFMModel

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = QualityFMModel(QualityFMConfig.from_preset("base")).eval()
    x = torch.randn(64, 2, 9000)
    flops = 169.6e6 * 64  # the model's FLOPs per batch (FlopCounterMode, RESULTS.md)

    def share(fn) -> str:
        seconds = statistics.median(timed_rounds(fn, 9, warmup=2))
        p = peak_gflops()["median"]
        return f"{flops / seconds / 1e9 / p:.1%} of P = {p:.0f} GFLOP/s"

    with torch.inference_mode():
        reference = model(x).last_hidden_state
        eager = share(lambda: model(x))
        start = time.perf_counter()
        import torch._inductor.config as inductor_config

        inductor_config.freezing = args.freezing
        compiled = torch.compile(model)
        difference = (compiled(x).last_hidden_state - reference).abs().max().item()
        compile_seconds = time.perf_counter() - start
        fused = share(lambda: compiled(x))
    print(f"eager {eager}; compiled {fused} (compiling took {compile_seconds:.0f} s; max abs diff {difference:.1e})")


if __name__ == "__main__":
    main()
