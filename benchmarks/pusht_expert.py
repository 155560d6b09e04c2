"""PushT expert: success rate and CPU time per episode over a range of seeds.

    python benchmarks/pusht_expert.py --seeds 100000:100050 --out benchmarks/results/pusht-expert-heldout.json
    python benchmarks/pusht_expert.py --seeds 100050:100450 --out benchmarks/results/pusht-expert-further.json

Success is the env's own flag (coverage > 0.95) within 300 steps; CPU seconds are
`time.process_time()` per episode (env + expert, one process; run with OMP_NUM_THREADS=1).
The JSON keeps every seed's outcome next to the command, git commit, date and machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from lwd.demos import parse_seeds, rollout_expert
from lwd.envs.perturb import apply_perturbation
from lwd.envs.pusht import MAX_EPISODE_STEPS, PushTEnv
from lwd.experts.pusht import PushTExpert
from lwd.provenance import provenance


def run_episode(env: gym.Env, expert: PushTExpert, seed: int) -> dict:
    start = time.process_time()
    run = rollout_expert(env, expert, seed, MAX_EPISODE_STEPS)
    return {"seed": seed, "success": run.success, "steps": run.steps, "max_score": run.max_score,
            "final_coverage": run.last_info["coverage"], "cpu_s": time.process_time() - start}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="100000:100050", help="a:b (b exclusive) or a comma list")
    p.add_argument("--diversity", type=float, default=1.0)
    p.add_argument("--salt", type=int, default=0)
    p.add_argument("--perturb", default=None, help="e.g. block-push:20:0.02 / object-push:3:0.05: how robust the expert is")
    p.add_argument("--out", default="benchmarks/results/pusht-expert-heldout.json")
    args = p.parse_args()

    seeds = parse_seeds(args.seeds)
    env = apply_perturbation(PushTEnv(), args.perturb)
    expert = PushTExpert(diversity=args.diversity, salt=args.salt)
    episodes = [run_episode(env, expert, s) for s in tqdm(seeds, desc="pusht expert", unit="ep")]
    cpu = np.array([e["cpu_s"] for e in episodes])
    result = {
        "provenance": provenance(["python", "benchmarks/pusht_expert.py", *sys.argv[1:]]),
        "expert": {"class": "lwd.experts.pusht.PushTExpert", "diversity": args.diversity, "salt": args.salt},
        "protocol": f"success = env flag (coverage > 0.95) within {MAX_EPISODE_STEPS} steps; cpu = time.process_time",
        "perturbation": args.perturb or "none",
        "episodes": len(episodes),
        "success_rate": float(np.mean([e["success"] for e in episodes])),
        "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
        "mean_steps": float(np.mean([e["steps"] for e in episodes])),
        "mean_max_score": float(np.mean([e["max_score"] for e in episodes])),
        "cpu_s_per_episode": {"mean": float(cpu.mean()), "max": float(cpu.max()), "total": float(cpu.sum())},
        "per_seed": episodes,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"success {result['success_rate']:.3f} over {len(episodes)} seeds; CPU s/episode mean "
          f"{cpu.mean():.2f} max {cpu.max():.2f}; failed: {result['failed_seeds']} -> {args.out}")


if __name__ == "__main__":
    main()
