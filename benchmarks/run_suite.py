"""The performance suite of issues 5 and 13: one command, JSON + Markdown out.

    python benchmarks/run_suite.py                      # full suite, about 15 minutes on 2 shared cores
    python benchmarks/run_suite.py --quick              # reduced sizes, a smoke check
    python benchmarks/run_suite.py --only model pairs   # some figure groups (P is always measured)

Writes `benchmarks/results/suite.json` and `benchmarks/RESULTS.md`. Every compute figure is a ratio to P, this
process's own fp32 matmul throughput (2048³, `--threads` threads) measured right before that figure, because
the shared machine drifts 10–25% between runs; bf16 figures are a ratio to the bf16 matmul peak measured the
same way (2048³ where the CPU has bf16 instructions, 512³ where torch emulates bf16). No figure is compared
with a number taken on another machine. Every timed figure keeps all its rounds and reports their median, min
and max; a ratio to P divides each round by the median of P's rounds, and P's own spread is reported beside
it. Model FLOPs come from `torch.utils.flop_counter.FlopCounterMode` in train mode on the plain `nn.Conv1d`
tokenizer (the FLOPs of the architecture, not of the Toeplitz GEMMs the fast path executes, which are also
reported). Attention, quality scoring and pair building/loading run their own benchmark scripts as
subprocesses. Not collected by pytest; tests never assert timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
GROUPS = ("model", "attention", "quality", "pairs")
DEFAULT_MALLOC_ENV = "QUALITYFM_SUITE_DEFAULT_MALLOC"  # set: leave glibc's malloc settings as they are
sys.path.insert(0, str(REPO / "benchmarks"))
from suite_report import machine, spread  # noqa: E402


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> int:
    """Reset VmHWM to the current RSS; returns that RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return rss("VmRSS")


def timed_rounds(fn, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls of `fn`, after `warmup` untimed ones. All rounds are kept: on a
    shared machine the best one alone hides how far the figure moves."""
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rounds.append(time.perf_counter() - start)
    return rounds


def bf16_in_hardware() -> bool:
    isa = machine()["isa"]
    return isa["avx512_bf16"] or isa["amx_bf16"]


def peak_gflops(dtype=None) -> dict:
    """P: GFLOP/s of 5 `a @ b` rounds (`spread`), with the size: 2048³, but bf16 without bf16 instructions is
    emulated (100× slower), so there it is timed at 512³."""
    import torch

    dtype = dtype or torch.float32
    size = 2048 if dtype == torch.float32 or bf16_in_hardware() else 512
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    rounds = timed_rounds(lambda: a @ b, 5 if size == 2048 else 2)
    return {**spread([2 * size**3 / s / 1e9 for s in rounds]), "size": size, "dtype": str(dtype)}


def per_round(values: list[float], scale: float) -> dict:
    """`spread` of each round's value × `scale` (a throughput, a ratio to the median P)."""
    return spread([v * scale for v in values])


def model_flops(fn) -> int:
    """FLOPs of `fn()` with the reference `nn.Conv1d` tokenizer (the architecture's FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    from qualityfm_hf.modeling.modeling_qualityfm import QualityFMTemporalConv

    QualityFMTemporalConv.use_matmul_conv = False
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        QualityFMTemporalConv.use_matmul_conv = True
    return counter.get_total_flops()


def executed_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ---------------------------------------------------------------------------------------------------------------
# Model figures


def encoder_inference(batch: int, repeats: int) -> dict:
    import torch

    from qualityfm_hf import QualityFMConfig, QualityFMModel

    torch.manual_seed(0)
    model = QualityFMModel(QualityFMConfig.from_preset("base"))
    x = torch.randn(batch, 2, 9000)
    model.train()
    flops = model_flops(lambda: model(x)) / batch
    run_flops = executed_flops(lambda: model(x)) / batch
    model.eval()
    p = peak_gflops()
    with torch.inference_mode():
        windows = [batch / s for s in timed_rounds(lambda: model(x), repeats)]
        reference = model(x).last_hidden_state
    fp32 = {"batch": batch, "P_gflops": p, "windows_per_s": spread(windows), "mflop_per_window": flops / 1e6,
            "executed_mflop_per_window": run_flops / 1e6, "achieved_gflops": per_round(windows, flops / 1e9),
            "mfu": per_round(windows, flops / 1e9 / p["median"])}

    # bf16, the documented path: weights loaded with `from_pretrained(..., dtype=torch.bfloat16)` and bf16 input,
    # as the pipelines do with `dtype=torch.bfloat16`. Its peak is the bf16 matmul's.
    import tempfile

    from transformers import AutoModel

    p_bf16 = peak_gflops(torch.bfloat16)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        half = AutoModel.from_pretrained(folder, dtype=torch.bfloat16).eval()
    x_half = x.to(torch.bfloat16)
    with torch.inference_mode():
        windows = [batch / s for s in timed_rounds(lambda: half(x_half), max(3, repeats // 2))]
        out = half(x_half).last_hidden_state.float()
    bf16 = {**bf16_figure(batch, windows, flops, p_bf16, fp32, out, reference), "path": "from_pretrained(dtype=bf16)"}

    # bf16 autocast over the fp32 weights, for comparison: every call casts the weights again.
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        windows = [batch / s for s in timed_rounds(lambda: model(x), max(3, repeats // 2))]
        out = model(x).last_hidden_state.float()
    autocast = {**bf16_figure(batch, windows, flops, p_bf16, fp32, out, reference), "path": "autocast"}
    return {"fp32": fp32, "bf16": bf16, "bf16_autocast": autocast}


def bf16_figure(batch, windows, flops, p_bf16, fp32, out, reference) -> dict:
    """Throughput as a share of the bf16 matmul peak, and the error against the fp32 tokens."""
    diff = (out - reference).abs()
    return {"batch": batch, "P_bf16_gflops": p_bf16, "windows_per_s": spread(windows),
            "achieved_gflops": per_round(windows, flops / 1e9),
            "mfu_bf16": per_round(windows, flops / 1e9 / p_bf16["median"]),
            "vs_fp32": statistics.median(windows) / fp32["windows_per_s"]["median"],
            "max_abs_diff": diff.max().item(), "max_rel_diff": (diff.max() / reference.abs().max()).item(),
            "mean_abs_diff": diff.mean().item()}


def pretraining_step(preset: str, batch: int, repeats: int, bf16: bool = False) -> dict:
    """One step outside the Trainer: student + teacher + losses + backward + Adam + EMA, split into phases.

    `bf16`: the forward under bf16 autocast with fp32 weights, Adam state and EMA (what `pretrain --bf16` runs: the
    Trainer's autocast; the losses and FFTs stay in float32); its share is of the bf16 matmul peak."""
    import torch

    from qualityfm_hf import QualityFMConfig
    from qualityfm_hf.modeling.distillation_qualityfm import QualityFMForSelfDistillation

    torch.manual_seed(0)
    model = QualityFMForSelfDistillation(QualityFMConfig.from_preset(preset)).train()
    params = [p for p in model.parameters() if p.requires_grad]
    fused = True
    try:
        optimizer = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-4, fused=True)
    except (RuntimeError, TypeError):
        fused = False
        optimizer = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-4, foreach=True)
    teacher_x, student_x = torch.rand(batch, 2, 9000) * 2 - 1, torch.rand(batch, 2, 9000) * 2 - 1

    def forward_backward():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(teacher_x, student_x).loss
        loss.backward()

    def update():
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_teacher(0.996)

    flops = model_flops(forward_backward)
    optimizer.zero_grad(set_to_none=True)
    forward_backward()
    update()  # warm-up: Adam state allocated
    p = peak_gflops(torch.bfloat16 if bf16 else None)
    phases = {"forward_backward_s": [], "optimizer_ema_s": []}
    for _ in range(repeats):
        start = time.perf_counter()
        forward_backward()
        middle = time.perf_counter()
        update()
        end = time.perf_counter()
        phases["forward_backward_s"].append(middle - start)
        phases["optimizer_ema_s"].append(end - middle)
    steps = [a + b for a, b in zip(*phases.values())]
    return {"preset": preset, "batch_pairs": batch, "bf16_autocast": bf16, "P_gflops": p, "optimizer": "Adam(fused)" if fused else
            "Adam(foreach)", "ema": "torch._foreach_lerp_", "gflop_per_step": flops / 1e9,
            "step_s": spread(steps),
            "pairs_per_s": spread([batch / s for s in steps]),
            "mfu": spread([flops / s / 1e9 / p["median"] for s in steps]),
            "forward_backward_s": spread(phases["forward_backward_s"]),
            "optimizer_ema_s": spread(phases["optimizer_ema_s"]),
            "optimizer_ema_fraction": spread([o / s for o, s in zip(phases["optimizer_ema_s"], steps)]),
            "parameters": sum(p.numel() for p in model.student.parameters())}


def long_recording_cell(layout: str, hours: float, repeats: int) -> dict:
    """One layout in a fresh process, so its peak RSS is its own: peak RSS of the first call minus RSS before."""
    import torch

    from qualityfm_hf import QualityFMConfig, QualityFMModel

    torch.manual_seed(0)
    model = QualityFMModel(QualityFMConfig.from_preset("base")).eval()
    samples = int(hours * 3600 * 300)
    x = torch.rand(1, 2, samples) * 2 - 1
    if layout == "windows_30s":
        x = x.view(2, -1, 9000).transpose(0, 1).contiguous()  # (n, 2, 9000)
    with torch.inference_mode():
        base = reset_peak()
        tokens = model(x).last_hidden_state.shape
        peak = rss("VmHWM") - base
        seconds = spread(timed_rounds(lambda: model(x), repeats, warmup=0))
    return {"seconds": seconds, "peak_extra_mib": peak / 2**20, "tokens": list(tokens),
            "backend": model.encoder.attention_backend(tokens[1], False), "batch": x.shape[0]}


def long_recording(hours: float, repeats: int, threads: int) -> dict:
    """1 h of ECG+PPG at 300 Hz as one token sequence (blocked attention) vs 30-s windows; time and peak RSS."""
    out = {"samples": int(hours * 3600 * 300), "P_gflops": peak_gflops()}
    for layout in ("one_sequence", "windows_30s"):
        result = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--cell",
                                 f"{layout},{hours},{repeats}"], capture_output=True, text=True, cwd=REPO)
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-800:])
        out[layout] = json.loads(result.stdout.strip().splitlines()[-1])
    out["windows"] = out["windows_30s"]["batch"]
    out["backend_one_sequence"] = out["one_sequence"]["backend"]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Sub-benchmarks


def subprocess_json(args: list[str], output: Path, timeout: int) -> dict:
    start = time.perf_counter()
    # Relative to the repo (the cwd), so the recorded command names no path of this machine.
    output = output.relative_to(REPO) if output.is_relative_to(REPO) else output
    result = subprocess.run([sys.executable, *args, "--output", str(output)], cwd=REPO, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        return {"error": result.stderr[-1500:], "command": " ".join(args)}
    data = json.loads((REPO / output).read_text())
    return {"command": "python " + " ".join(args), "seconds": time.perf_counter() - start, "result": data}


def model_figures(record, threads: int, quick: bool) -> None:
    # Each model figure runs in a fresh process: in one long process the base step ran 14× slower after the
    # bf16 autocast and huge-model figures (0.35 s vs 5 s forward+backward), which measured the process, not
    # the model.
    def isolated(*call, env=None):
        return lambda: json.loads(subprocess.run(
            [sys.executable, __file__, "--threads", str(threads), "--figure", json.dumps(call)],
            capture_output=True, text=True, cwd=REPO, check=True, env=env).stdout.strip().splitlines()[-1])

    record("encoder_inference", isolated("encoder_inference", 16 if quick else 64, 3 if quick else 10))
    record("pretrain_base_b32", isolated("pretraining_step", "base", 8 if quick else 32, 2 if quick else 5))
    record("pretrain_base_b32_default_malloc", isolated("pretraining_step", "base", 8 if quick else 32,
                                                        2 if quick else 5, env={**os.environ, DEFAULT_MALLOC_ENV: "1"}))
    record("pretrain_base_b32_bf16", isolated("pretraining_step", "base", 8 if quick else 32, 2 if quick else 5,
                                              True))
    if not quick:
        record("pretrain_huge_b32", isolated("pretraining_step", "huge", 32, 2))
    record("pretrain_huge_b2", isolated("pretraining_step", "huge", 2, 2 if quick else 4))
    record("long_recording", lambda: long_recording(0.1 if quick else 1.0, 2 if quick else 3, threads))


def attention_figure(threads: int, quick: bool, results: Path) -> dict:
    from suite_report import attention_summary

    tokens = [18, 1800] if quick else [18, 180, 1800, 7200, 36000, 100000]
    p = peak_gflops()
    run = subprocess_json(["benchmarks/bench_attention.py", "--tokens", *map(str, tokens), "--threads",
                           str(threads)], results / "suite_attention.json", 3600)
    run["P_gflops_before"] = p
    if "result" in run:
        run["summary"] = attention_summary(run["result"]["rows"])
    return run


def pairs_figure(quick: bool, results: Path) -> dict:
    """Pair building (1 and 2 processes) and loading: in-memory vs streaming through a DataLoader with the
    real collator and with plain stacking, 0/1/2 DataLoader workers, interleaved rounds (`bench_pairs.py`)."""
    size = ["--max-records", "16", "--records-per-shard", "4", "--rounds", "2"] if quick else [
        "--max-records", "120", "--records-per-shard", "16", "--rounds", "3"]
    workers = ["--num-workers", "1", "2", "--loader-workers", "0", "1", "2"]
    return subprocess_json(["benchmarks/bench_pairs.py", *size, *workers], results / "suite_pairs.json", 1800)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes and repeats, for a smoke check")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=GROUPS, help="only these figure groups (P always runs)")
    parser.add_argument("--skip", nargs="*", default=[], choices=GROUPS, help="figure groups to skip")
    parser.add_argument("--output", default=str(RESULTS / "suite.json"),
                        help="the suite's JSON; the sub-benchmarks' JSON files go beside it")
    parser.add_argument("--markdown", default=str(REPO / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--figure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    # As the `qualityfm` command does before it loads torch: glibc keeps freed blocks instead of returning them to
    # the OS, so a step does not pay page faults on fresh memory (utils/memory.py). One figure is also measured
    # without it (DEFAULT_MALLOC_ENV) to show what that is worth.
    if not os.environ.get(DEFAULT_MALLOC_ENV):
        from qualityfm_hf.utils.memory import keep_freed_memory

        keep_freed_memory()
    import torch

    torch.set_num_threads(args.threads)
    if args.figure:
        name, *call_args = json.loads(args.figure)
        print(json.dumps(globals()[name](*call_args)))
        return 0
    if args.cell:
        layout, hours, repeats = args.cell.split(",")
        print(json.dumps(long_recording_cell(layout, float(hours), int(repeats))))
        return 0
    from suite_report import environment, write_markdown

    quick, groups = args.quick, [g for g in (args.only or GROUPS) if g not in args.skip]
    command = "python benchmarks/run_suite.py" + (" --quick" if quick else "") + (
        f" --only {' '.join(groups)}" if len(groups) < len(GROUPS) else "")
    suite = {"command": command, "quick": quick, "groups": groups, "environment": environment(args.threads),
             "load_before": load(), "figures": {}}
    figures = suite["figures"]

    def record(name, fn):
        print(f"[{time.strftime('%H:%M:%S')}] {name} (load {load()})", flush=True)
        start = time.perf_counter()
        try:
            figures[name] = fn()
        except Exception as error:  # one failing figure must not lose the others
            figures[name] = {"error": f"{type(error).__name__}: {error}"}
        figures[name]["load_after"] = load()
        figures[name]["wall_s"] = time.perf_counter() - start
        print(json.dumps(figures[name], default=str)[:600], flush=True)

    results = Path(args.output).resolve().parent
    results.mkdir(parents=True, exist_ok=True)
    record("peak", lambda: {"fp32_gflops": peak_gflops(), "bf16_gflops": peak_gflops(torch.bfloat16)})
    if "model" in groups:
        model_figures(record, args.threads, quick)
    if "attention" in groups:
        record("attention", lambda: attention_figure(args.threads, quick, results))
    if "quality" in groups:
        record("quality", lambda: subprocess_json(
            ["benchmarks/bench_quality.py", "--max-windows", "200" if quick else "1200"],
            results / "suite_quality.json", 1800))
    if "pairs" in groups:
        record("pairs", lambda: pairs_figure(quick, results))
    suite["load_after"] = load()
    Path(args.output).write_text(json.dumps(suite, indent=1, default=str) + "\n")
    write_markdown(suite, Path(args.markdown))
    print(f"wrote {args.output} and {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
