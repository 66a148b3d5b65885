"""Why a run slows down several-fold when other jobs share the cores, and what bounds it.

Times a fixed training workload (the VT head, base preset, forward + backward + Adam on batches of 16 ten-second
windows) in fresh processes under each OpenMP setting, on quiet cores and with `--hogs` busy-loop processes beside
it (what a shared machine looks like to us). Rounds interleave the settings, so drifting background load hits each
alike. Prints seconds per step (median over rounds) and writes JSON.

    python benchmarks/bench_busy_cores.py --hogs 2 --rounds 3 --steps 10 --output benchmarks/results/busy_cores.json
    python benchmarks/bench_busy_cores.py --hog-kind torch --hogs 1 --rounds 2 --steps 5 \
        --output benchmarks/results/busy_cores_torch.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "default (active spin)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}

WORKLOAD = r"""
import time, torch
from qualityfm_hf import QualityFMConfig
from qualityfm_hf.modeling.heads_qualityfm import QualityFMForVTFalseAlarm
torch.manual_seed(0)
net = QualityFMForVTFalseAlarm(QualityFMConfig.from_preset("base"))
opt = torch.optim.Adam(net.parameters(), 1e-4)
x, y = torch.randn(16, 2, 3000), torch.randint(0, 2, (16, 1)).float()
def step():
    loss = net(input_values=x, labels=y).loss
    loss.backward(); opt.step(); opt.zero_grad()
for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(STEPS):
    step()
print((time.perf_counter() - t) / STEPS)
"""


def hog(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


# Another torch job on the same cores (a test suite, a second training run), with the OpenMP defaults: many small
# parallel regions, so its threads spin between them as ours do.
TORCH_HOG = r"""
import time, torch
x = torch.randn(64, 512)
w = torch.randn(512, 512)
stop_at = STOP_AT
while time.time() < stop_at:
    for _ in range(50):
        x = torch.tanh(x @ w) * 0.5
"""


def start_hogs(kind: str, count: int) -> list:
    stop_at = time.time() + 900
    if kind == "busy-loop":
        hogs = [mp.Process(target=hog, args=(stop_at,)) for _ in range(count)]
        for process in hogs:
            process.start()
        return hogs
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return [subprocess.Popen([sys.executable, "-c", TORCH_HOG.replace("STOP_AT", str(stop_at))], env=env)
            for _ in range(count)]


def run(env: dict, steps: int) -> float:
    code = WORKLOAD.replace("STEPS", str(steps))
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hogs", type=int, default=2, help="processes beside the loaded runs")
    parser.add_argument("--hog-kind", choices=("busy-loop", "torch"), default="busy-loop",
                        help="what they run: a pure-Python busy loop, or a torch job with OpenMP's defaults")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    loaded = f"{args.hogs} {args.hog_kind} hogs"
    results = {f"{load}: {name}": [] for load in ("quiet", loaded) for name in SETTINGS}
    for _ in range(args.rounds):
        for name, env in SETTINGS.items():
            results[f"quiet: {name}"].append(run(env, args.steps))
            hogs = start_hogs(args.hog_kind, args.hogs)
            if args.hog_kind == "torch":
                time.sleep(5)  # let the hogs import torch and start working
            try:
                results[f"{loaded}: {name}"].append(run(env, args.steps))
            finally:
                for process in hogs:
                    process.terminate()
    summary = {key: {"median_s_per_step": statistics.median(v), "rounds": v} for key, v in results.items()}
    for key, value in summary.items():
        print(f"{key:45s} {value['median_s_per_step'] * 1000:8.1f} ms/step  {[round(t * 1000) for t in value['rounds']]}")
    if args.output:
        info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                "loadavg_at_end": os.getloadavg(), "steps": args.steps, "hogs": args.hogs,
                "hog_kind": args.hog_kind, "results": summary}
        with open(args.output, "w") as handle:
            json.dump(info, handle, indent=2)


if __name__ == "__main__":
    main()
