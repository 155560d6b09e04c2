"""MT10 benchmark: LWD (preset mt10) vs multitask MLP BC (preset mt10), several training seeds.

    python benchmarks/mt10.py --seeds 0,1            # or: make bench-mt10

Both methods train on the same 50 scripted demonstrations per task and are evaluated on the same
50 test seeds per task (100000..100049). Writes benchmarks/results/mt10.json (every figure, the
command, git commit, date, machine) and prints a Markdown table for BENCHMARKS.md.
Runs are cached under runs/bench-mt10/ and reused when present.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lwd.data import Episodes
from lwd.demos import collect_demos
from lwd.suites import make_suite
from lwd.pipeline import evaluate_run, train_run
from lwd.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--methods", default="lwd,bc")
    p.add_argument("--preset", default="mt10")
    p.add_argument("--demos", type=int, default=50)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--n-envs", type=int, default=2)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench-mt10"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mt10.json"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)

    suite = make_suite("metaworld/mt10")
    runs = Path(args.runs)
    data = runs / f"mt10-demos{args.demos}.zarr"
    if not data.exists():
        collect_demos(suite, args.demos).save(data)
    demos = Episodes.load(data)
    results: dict[str, dict] = {"provenance": provenance(["python", "benchmarks/mt10.py", *__import__("sys").argv[1:]]),
                                "data": {"path": str(data), "episodes": demos.num_episodes, "steps": demos.num_steps,
                                         "demo_seconds": demos.attrs.get("seconds")}, "runs": {}}
    for method in args.methods.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            run_dir = runs / f"{method}-{args.preset}-s{seed}"
            t0 = time.perf_counter()
            if not (run_dir / "model.safetensors").exists():
                train_run(method, data, run_dir, preset=args.preset, seed=seed, resume=(run_dir / "train_state").exists())
            train_s = json.loads((run_dir / "train_log.json").read_text())["seconds"]
            result = evaluate_run(run_dir, episodes=args.episodes, n_envs=args.n_envs, vector="async" if args.n_envs > 1 else "sync")
            result["train_seconds"] = train_s
            results["runs"][f"{method}-s{seed}"] = result
            print(f"{method} seed {seed}: mean success {result['mean_success']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict) -> str:
    runs = results["runs"]
    tasks = list(next(iter(runs.values()))["per_task"])
    methods = sorted({k.rsplit("-s", 1)[0] for k in runs})
    lines = ["| task | " + " | ".join(f"{m} (mean ± sd over seeds)" for m in methods) + " |", "|---|" + "---|" * len(methods)]
    for task in [*tasks, "MEAN"]:
        cells = []
        for m in methods:
            vals = [r["mean_success"] if task == "MEAN" else r["per_task"][task]["success_rate"] for k, r in runs.items() if k.rsplit("-s", 1)[0] == m]
            cells.append(f"{np.mean(vals):.3f} ± {np.std(vals):.3f} (" + ", ".join(f"{v:.2f}" for v in vals) + ")")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    for key, label in [("params_per_step", "per-step params"), ("flops_per_step", "FLOPs / control step (nominal)"),
                       ("flops_per_step_measured", "FLOPs / control step (measured in eval)")]:
        cells = [f"{next(r for k, r in runs.items() if k.rsplit('-s', 1)[0] == m)['cost'].get(key, float('nan')):,.0f}" for m in methods]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
