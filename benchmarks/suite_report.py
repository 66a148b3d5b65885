"""Environment capture and the Markdown table of `run_suite.py` (kept apart so the runner stays readable)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30


def environment(threads: int) -> dict:
    import torch

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    flags = Path("/proc/cpuinfo").read_text()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]

    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {
        "device": f"{cpu} ({', '.join(isa)}), {os.cpu_count()} cores, {threads} torch threads",
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("torch", "transformers", "numpy", "scipy", "neurokit2", "datasets")},
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "modeling", "benchmarks/run_suite.py")),
    }


def attention_summary(rows: list[dict]) -> dict:
    """Blocked vs dense at 7,200 tokens and the blocked backend's 100,000-token forward+backward."""
    cells = {(r["backend"], r["tokens"], r["mode"]): r for r in rows if "median_s" in r}
    out = {}
    for mode in ("forward", "forward+backward"):
        blocked = cells.get(("qfm_blocked", 7200, mode))
        for dense in ("eager", "sdpa"):
            ref = cells.get((dense, 7200, mode))
            if blocked and ref:
                out[f"{dense}_{mode}_7200"] = {
                    "dense_s": ref["median_s"], "blocked_s": blocked["median_s"],
                    "speedup": ref["median_s"] / blocked["median_s"],
                    "dense_mib": ref["peak_extra_mib"], "blocked_mib": blocked["peak_extra_mib"],
                    "memory_ratio": blocked["peak_extra_mib"] / max(ref["peak_extra_mib"], 1e-9),
                }
    big = cells.get(("qfm_blocked", 100000, "forward+backward"))
    if big:
        out["blocked_forward+backward_100000"] = {"seconds": big["median_s"], "peak_extra_gib": big["peak_extra_mib"]
                                                  / 1024}
    growth = sorted((t, r["median_s"]) for (b, t, m), r in cells.items()
                    if b == "qfm_blocked" and m == "forward+backward")
    out["blocked_forward+backward_s_by_tokens"] = dict(growth)
    return out


def _fmt(value, digits=1):
    return "—" if value is None else f"{value:,.{digits}f}"


def _met(ok) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def table_rows(figures: dict) -> list[tuple]:
    rows = []
    peak = figures.get("peak", {})
    rows.append(("fp32 matmul 2048³ (P)", f"{_fmt(peak.get('fp32_gflops'))} GFLOP/s", "100%", "—", "—"))
    rows.append(("bf16 matmul (512³)", f"{_fmt(peak.get('bf16_gflops'), 2)} GFLOP/s", "—", "—", "—"))
    enc = figures.get("encoder_inference", {})
    if "fp32" in enc:
        f = enc["fp32"]
        rows.append((f"base encoder inference fp32, batch {f['batch']}", f"{_fmt(f['windows_per_s'])} windows/s "
                     f"({_fmt(f['achieved_gflops'])} GFLOP/s; P {_fmt(f['P_gflops'])})", f"{100 * f['mfu']:.1f}%",
                     "≥ 85% of P", _met(f["mfu"] >= 0.85)))
        rows.append(("FLOPs per base window (FlopCounterMode, train)", f"{f['mflop_per_window']:.1f} M (executed "
                     f"with Toeplitz convs {f['executed_mflop_per_window']:.1f} M)", "—", "169.6 M",
                     _met(abs(f["mflop_per_window"] - 169.6) < 0.5)))
        b = enc["bf16"]
        rows.append((f"base encoder inference bf16 autocast, batch {b['batch']}", f"{_fmt(b['windows_per_s'])} "
                     f"windows/s = {b['vs_fp32_reference']:.2f}× 638; max abs diff {b['max_abs_diff']:.3g} (rel "
                     f"{b['max_rel_diff']:.3g}) vs fp32", "—", "≥ 2× 638 windows/s, max rel diff ≤ 5e-2",
                     _met(b["vs_fp32_reference"] >= 2 and b["max_rel_diff"] <= 5e-2)))
    for key, label in (("pretrain_base_b32", "base"), ("pretrain_huge_b32", "huge")):
        s = figures.get(key, {})
        if "mfu" in s:
            rows.append((f"{label} pretraining step, batch {s['batch_pairs']} pairs ({s['optimizer']})",
                         f"{_fmt(s['pairs_per_s'], 2)} pairs/s ({s['gflop_per_step']:.1f} GFLOP/step; P "
                         f"{_fmt(s['P_gflops'])})", f"{100 * s['mfu']:.1f}%", "≥ 65% of P", _met(s["mfu"] >= 0.65)))
    s = figures.get("pretrain_huge_b2", {})
    if "mfu" in s:
        rows.append((f"huge pretraining step, batch 2: optimizer + EMA share ({s['optimizer']}, {s['ema']})",
                     f"{100 * s['optimizer_ema_fraction']:.1f}% of {s['step_s']:.2f} s", f"{100 * s['mfu']:.1f}%",
                     "≤ 10% of the step", _met(s["optimizer_ema_fraction"] <= 0.10)))
    att = figures.get("attention", {}).get("summary", {})
    for dense in ("eager", "sdpa"):
        a = att.get(f"{dense}_forward+backward_7200")
        if a:
            rows.append((f"attention 7,200 tokens fwd+bwd: blocked vs dense {dense}",
                         f"{a['speedup']:.1f}× faster ({a['dense_s']:.2f} s → {a['blocked_s'] * 1e3:.0f} ms), "
                         f"memory {a['blocked_mib']:.0f} / {a['dense_mib']:.0f} MiB = {a['memory_ratio']:.3f}",
                         "—", "≥ 20× faster, ≤ 1/10 memory",
                         _met(a["speedup"] >= 20 and a["memory_ratio"] <= 0.1)))
    big = att.get("blocked_forward+backward_100000")
    if big:
        rows.append(("attention 100,000 tokens fwd+bwd (blocked)", f"{big['seconds']:.2f} s, "
                     f"{big['peak_extra_gib']:.2f} GiB", "—", "≤ 4 GiB", _met(big["peak_extra_gib"] <= 4)))
    q = figures.get("quality", {}).get("result", {}).get("runs", {})
    if q:
        one, every = q.get("one_core", {}), q.get("all_cores", {})
        rows.append(("quality scoring (ECG rrSQI + PPG SQI), one core", f"{_fmt(one.get('windows_per_s_wall'))} "
                     "windows/s", "—", "≥ 500 windows/s", _met((one.get("windows_per_s_wall") or 0) >= 500)))
        rows.append(("quality scoring, all cores", f"{_fmt(every.get('windows_per_s_wall'))} windows/s (efficiency "
                     f"{_fmt(every.get('cpu_efficiency_vs_one_core'), 2)} per core)", "—", "near-linear in cores",
                     _met((every.get("cpu_efficiency_vs_one_core") or 0) >= 0.8)))
    pairs = figures.get("pairs", {}).get("result", {})
    for row in pairs.get("build", []):
        rows.append((f"pair building, {row['num_workers']} worker(s), {row['records']} records",
                     f"{row['records_per_s']} records/s, {row['windows_per_s']} windows/s", "—", "—", "—"))
    if pairs.get("load"):
        load = pairs["load"]
        rows.append((f"pair loading, {load['pairs']} pairs", f"in-memory {load['in_memory_pairs_per_s']} pairs/s, "
                     f"streaming {load['streaming_pairs_per_s']} pairs/s", "—", "—", "—"))
    long = figures.get("long_recording", {})
    if "one_sequence" in long:
        one, win = long["one_sequence"], long["windows_30s"]
        rows.append((f"long recording {long['samples']:,} samples: one sequence ({long['backend_one_sequence']}, "
                     f"{one['tokens'][1]:,} tokens) vs {long['windows']} × 30-s windows",
                     f"{one['seconds']:.2f} s / {one['peak_extra_mib']:.0f} MiB vs {win['seconds']:.2f} s / "
                     f"{win['peak_extra_mib']:.0f} MiB", "—", "—", "—"))
    for name, figure in figures.items():
        if "error" in figure:
            rows.append((name, "failed: " + figure["error"].splitlines()[-1][:200], "—", "—", "**no**"))
    return rows


def write_markdown(suite: dict, path: Path, notes: str = "") -> None:
    env = suite["environment"]
    lines = [
        "# Performance suite results",
        "",
        f"Command: `{suite['command']}`  ",
        f"Device: {env['device']} (torch CPU capability {env['torch_capability']})  ",
        f"Versions: Python {env['python']}, " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + "  ",
        f"Commit: {env['commit']}" + (" + uncommitted modeling/suite changes" if env["dirty"] else "") + "  ",
        f"Load average (1/5/15 min) before: {suite['load_before']}, after: {suite['load_after']} — other "
        "engineers' jobs share the 2 cores, so each compute figure is a ratio to P measured right before it.",
        "",
        "| figure | measured | % of P | target | met? |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in table_rows(suite["figures"])]
    notes_file = path.with_name("RESULTS_NOTES.md")
    if notes_file.exists():
        lines += ["", notes_file.read_text().strip()]
    lines += ["", "Raw numbers: `benchmarks/results/suite.json` (and `suite_attention.json`, `suite_quality.json`, "
              "`suite_pairs.json`)."]
    path.write_text("\n".join(lines) + "\n")
