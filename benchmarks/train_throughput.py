"""Training throughput (samples per second) against processes, threads, a busy neighbour, device and precision.

    python benchmarks/train_throughput.py --out benchmarks/results/train-throughput-cpu.json
    python benchmarks/train_throughput.py --device cuda --processes 1,2 --threads 1 --busy no \\
        --precisions no,bf16 --methods lwd:mt10-quick,dp:cpu,dp:default --out benchmarks/results/train-throughput-gpu.json

Each configuration is one real `lwd train` (under torchrun for several processes) on MT10 expert
demos (5 per task, made once and cached under data/bench/); samples/s is the training stage's
samples (steps x global batch) over its seconds, from the run's train_log.json. "busy" starts
one neighbour process that keeps one core busy with single-threaded torch matmuls for the whole
run, as another training job on a shared machine would. The configurations of one invocation run
back to back, so compare them as ratios; this machine is noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

METHOD_STEPS = {"lwd": ("vae", "vae_steps", "prior_steps=1"), "dp": ("dp", "steps", None), "bc": ("bc", "steps", None)}
BURNER = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a = (a @ a).tanh()\n"


def _data(root: Path) -> Path:
    path = root / "data" / "bench" / "mt10-5.zarr"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "lwd.cli", "demos", "metaworld/mt10", "--episodes", "5", "--out", str(path)], check=True)
    return path


def _run(method: str, preset: str, data: Path, out: Path, steps: int, processes: int, threads: int, device: str,
         precision: str, port: int) -> dict:
    stage, steps_key, extra = METHOD_STEPS[method]
    args = ["train", method, "--data", str(data), "--out", str(out), "--preset", preset, "--set", f"{steps_key}={steps}",
            "--device", device, "--precision", precision, "--threads", str(threads)]
    if extra:
        args += ["--set", extra]
    launcher = [sys.executable, "-m", "lwd.cli"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", str(port), "-m", "lwd.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(launcher + args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(launcher + args)} failed:\n{done.stderr[-3000:]}")
    log = json.loads((out / "train_log.json").read_text())
    samples, seconds = log["samples"][stage], log["seconds"][stage]
    return {"stage": stage, "steps": steps, "samples": samples, "seconds": round(seconds, 3),
            "samples_per_s": round(samples / seconds, 1), "hardware": log["hardware"]}


def main() -> None:
    from lwd.provenance import provenance

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="lwd:mt10-quick,dp:cpu", help="METHOD:PRESET list")
    p.add_argument("--steps", default="lwd=300,dp=60,bc=2000", help="training steps per method")
    p.add_argument("--processes", default="1,2")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--busy", default="no,yes", help="with a busy neighbour process: no, yes or both")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", default="no")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    root = Path(__file__).resolve().parents[1]
    data = _data(root)
    steps = {k: int(v) for k, v in (item.split("=") for item in args.steps.split(","))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for busy in args.busy.split(","):
            burner = subprocess.Popen([sys.executable, "-c", BURNER]) if busy == "yes" else None
            try:
                for spec in args.methods.split(","):
                    method, preset = spec.split(":")
                    for processes in map(int, args.processes.split(",")):
                        for threads in map(int, args.threads.split(",")):
                            if processes > 1 and threads > 1 and args.device == "cpu":
                                continue  # more threads than cores: not a configuration anyone should run
                            for precision in args.precisions.split(","):
                                out = Path(tmp) / f"{method}-{preset}-{processes}-{threads}-{busy}-{precision}"
                                row = {"method": method, "preset": preset, "processes": processes, "threads": threads,
                                       "busy_neighbour": busy == "yes", "device": args.device, "precision": precision,
                                       **_run(method, preset, data, out, steps[method], processes, threads, args.device,
                                              precision, 29500 + len(rows))}
                                rows.append(row)
                                print(json.dumps(row), flush=True)
            finally:
                if burner is not None:
                    burner.kill()
    result = {"rows": rows, "data": str(data.relative_to(root)), "provenance": provenance()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
