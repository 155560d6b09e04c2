"""Scripted robomimic experts on held-out seeds: success rate, episode length, CPU-seconds.

    python benchmarks/robomimic_expert.py --task lift --seeds 100000:100050 \\
        --out benchmarks/results/robomimic-expert-lift.json

An episode succeeds if the env's own success check is true at any step within 400 (the env
terminates there). CPU time is `time.process_time()` around each episode (env + expert), so it
is comparable across machines with other loads; run with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from lwd.demos import parse_seeds, rollout_expert
from lwd.envs.perturb import apply_perturbation
from lwd.envs.robomimic import MAX_EPISODE_STEPS, TASKS, RobomimicEnv
from lwd.experts.robomimic import RobomimicExpert
from lwd.provenance import provenance


def run_episode(env: gym.Env, expert: RobomimicExpert, seed: int) -> dict:
    started = time.process_time()
    run = rollout_expert(env, expert, seed, MAX_EPISODE_STEPS)
    return {"seed": seed, "success": run.success, "steps": run.steps, "cpu_s": round(time.process_time() - started, 4),
            "final_phase": expert.phase}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--seeds", default="100000:100050")
    p.add_argument("--salt", type=int, default=0)
    p.add_argument("--perturb", default=None, help="e.g. block-push:20:0.02 / object-push:3:0.05: how robust the expert is")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = Path(args.out or f"benchmarks/results/robomimic-expert-{args.task}.json")
    seeds = parse_seeds(args.seeds)

    env = apply_perturbation(RobomimicEnv(args.task), args.perturb)
    expert = RobomimicExpert(args.task, salt=args.salt)
    episodes = [run_episode(env, expert, seed) for seed in tqdm(seeds, desc=f"expert {args.task}", unit="ep")]
    env.close()

    successes = [e["success"] for e in episodes]
    result = {
        "provenance": provenance(["python", "benchmarks/robomimic_expert.py", *sys.argv[1:]]),
        "task": args.task,
        "seeds": args.seeds,
        "salt": args.salt,
        "perturbation": args.perturb or "none",
        "episodes": len(episodes),
        "success_rate": float(np.mean(successes)),
        "mean_steps": float(np.mean([e["steps"] for e in episodes])),
        "mean_steps_successful": float(np.mean([e["steps"] for e in episodes if e["success"]])) if any(successes) else None,
        "mean_cpu_s": float(np.mean([e["cpu_s"] for e in episodes])),
        "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
        "per_episode": episodes,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{args.task}: success {result['success_rate']:.3f} ({sum(successes)}/{len(episodes)}), "
          f"mean {result['mean_steps']:.0f} steps, {result['mean_cpu_s']:.2f} CPU-s/episode -> {out}")


if __name__ == "__main__":
    main()
