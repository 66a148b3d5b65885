"""Where the time of a base-model forward (inference) or pretraining step goes: torch.profiler, self CPU time per op.

    python benchmarks/profile_model.py --what inference   # batch 64 windows, eval, inference_mode
    python benchmarks/profile_model.py --what step        # batch 32 pairs: student + teacher + losses + Adam + EMA

Runs with the process set-up of the `qualityfm` command (glibc keeps freed memory); `--default-malloc` leaves
glibc's settings alone. RESULTS_NOTES.md quotes its output.
"""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--what", choices=("inference", "step"), default="step")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--default-malloc", action="store_true")
    parser.add_argument("--rows", type=int, default=14)
    args = parser.parse_args(argv)
    if not args.default_malloc:
        from qualityfm_hf.utils.memory import keep_freed_memory

        keep_freed_memory()
    import torch
    from torch.profiler import profile

    from qualityfm_hf import QualityFMConfig, QualityFMModel
    from qualityfm_hf.modeling.distillation_qualityfm import QualityFMForSelfDistillation

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = QualityFMConfig.from_preset("base")
    if args.what == "inference":
        model, x = QualityFMModel(config).eval(), torch.randn(64, 2, 9000)

        def run():
            with torch.inference_mode():
                model(x)
    else:
        model = QualityFMForSelfDistillation(config).train()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
        teacher_x, student_x = torch.rand(32, 2, 9000) * 2 - 1, torch.rand(32, 2, 9000) * 2 - 1

        def run():
            model(teacher_x, student_x).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            model.update_teacher(0.996)

    for _ in range(3):
        run()
    with profile() as prof:
        for _ in range(args.rounds):
            run()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.rows]:
        print(f"{e.key:45s} {100 * e.self_cpu_time_total / total:5.1f}%  "
              f"{e.self_cpu_time_total / args.rounds / 1000:7.1f} ms per {args.what}")
    print(f"total {total / args.rounds / 1000:.1f} ms per {args.what} (under the profiler)")


if __name__ == "__main__":
    main()
