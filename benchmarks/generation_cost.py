"""Success against FLOPs per control step: LWD with fewer sampler steps and rarer generations.

    OMP_NUM_THREADS=1 python benchmarks/generation_cost.py runs/mt10-lwd --horizons 8,32,episode \\
        --inference-steps 1,2,5,10 --episodes 50 --n-envs 2 --out benchmarks/results/generation-cost-mt10.json

Almost all of LWD's per-step FLOPs are generation (the latent denoiser run once per DDIM step,
plus the hypernetwork), paid once every H steps. This evaluates one trained run at every
(H, DDIM steps) pair, with no retraining, and plots mean success against FLOPs per control step
(counted by torch's FlopCounterMode, as in every table). Each finished cell is written to --out at
once, and cells already there are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _horizon(text: str) -> int:
    return 0 if text == "episode" else int(text)


def main() -> None:
    from lwd.pipeline import evaluate_run
    from lwd.provenance import provenance

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--horizons", default="8,32,episode")
    p.add_argument("--inference-steps", default="1,2,5,10")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--n-envs", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {"run": args.run, "cells": []}
    done = {(c["action_horizon"], c["inference_steps"]) for c in result["cells"]}
    for horizon in map(_horizon, args.horizons.split(",")):
        for steps in map(int, args.inference_steps.split(",")):
            if (horizon, steps) in done:
                continue
            r = evaluate_run(args.run, episodes=args.episodes, n_envs=args.n_envs, vector="async", progress=False,
                             action_horizon=horizon, sampler="ddim", inference_steps=steps)
            cell = {"action_horizon": horizon, "inference_steps": steps, "mean_success": r["mean_success"],
                    "per_task": {t: v["success_rate"] for t, v in r["per_task"].items()},
                    "flops_per_step": r["cost"]["flops_per_step"],
                    "flops_per_step_measured": r["cost"].get("flops_per_step_measured"),
                    "flops_generation": r["cost"].get("flops_generation"), "episodes": sum(v["episodes"] for v in r["per_task"].values()),
                    "seconds": r["seconds"], "provenance": provenance()}
            result["cells"].append(cell)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")
            print(f"H={horizon or 'episode'} DDIM-{steps}: success {cell['mean_success']:.3f} at "
                  f"{cell['flops_per_step']:,.0f} FLOPs/step", flush=True)
    _plot(result, out.with_suffix(".png"))


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for horizon in sorted({c["action_horizon"] for c in result["cells"]}, key=lambda h: h or 10**9):
        cells = sorted((c for c in result["cells"] if c["action_horizon"] == horizon), key=lambda c: c["flops_per_step"])
        ax.plot([c["flops_per_step"] for c in cells], [c["mean_success"] for c in cells], "o-",
                label=f"H = {horizon or 'episode'}")
        for c in cells:
            ax.annotate(str(c["inference_steps"]), (c["flops_per_step"], c["mean_success"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per control step (labels: DDIM steps)")
    ax.set_ylabel("mean success")
    ax.set_title(Path(result["run"]).name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
