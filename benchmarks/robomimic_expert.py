"""Scripted robomimic experts on held-out seeds: success rate, episode length, CPU-seconds.

    python benchmarks/robomimic_expert.py --task lift --seeds 100000:100050 \\
        --out benchmarks/results/robomimic-expert-lift.json

An episode succeeds if the env's own success check is true at any step within 400 (the env
terminates there). CPU time is `time.process_time()` around each episode (env + expert), so it
is comparable across machines with other loads; run with OMP_NUM_THREADS=1.

`--style` runs one of the expert's styles (Lift: waypoint, other-grasp, slow; Can: waypoint,
side-grasp, slow); each episode then also records what tells the styles apart, from the
observations: how far the hand turned about the vertical (deg, first to last step) and its mean
speed (cm per step).

    python benchmarks/robomimic_expert.py --task lift --style other-grasp --seeds 100000:100050 \
        --out benchmarks/results/robomimic-expert-lift-other-grasp.json
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
from lwd.experts.robomimic import RobomimicExpert, _hand_yaw, _wrap
from lwd.provenance import provenance


def run_episode(env: gym.Env, expert: RobomimicExpert, seed: int) -> dict:
    started = time.process_time()
    run = rollout_expert(env, expert, seed, MAX_EPISODE_STEPS)
    cpu = round(time.process_time() - started, 4)
    obs = np.asarray(run.obs, np.float64)
    eef = obs[:, -9:-6]  # robot0_eef_pos, robot0_eef_quat (x, y, z, w), robot0_gripper_qpos end the obs
    turn = _wrap(_hand_yaw(obs[-1, -6:-2]) - _hand_yaw(obs[0, -6:-2]))
    return {"seed": seed, "success": run.success, "steps": run.steps, "cpu_s": cpu, "final_phase": expert.phase,
            "hand_turn_deg": round(float(np.degrees(abs(turn))), 2),
            "speed_cm_per_step": round(float(np.linalg.norm(np.diff(eef, axis=0), axis=1).mean() * 100), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--seeds", default="100000:100050")
    p.add_argument("--salt", type=int, default=0)
    p.add_argument("--style", default="waypoint", help="the expert's style (lift: waypoint, other-grasp, slow; can: waypoint, side-grasp, slow)")
    p.add_argument("--perturb", default=None, help="e.g. block-push:20:0.02 / object-push:3:0.05: how robust the expert is")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = Path(args.out or f"benchmarks/results/robomimic-expert-{args.task}.json")
    seeds = parse_seeds(args.seeds)

    env = apply_perturbation(RobomimicEnv(args.task), args.perturb)
    expert = RobomimicExpert(args.task, salt=args.salt, style=args.style)
    episodes = [run_episode(env, expert, seed) for seed in tqdm(seeds, desc=f"expert {args.task}", unit="ep")]
    env.close()

    successes = [e["success"] for e in episodes]
    result = {
        "provenance": provenance(["python", "benchmarks/robomimic_expert.py", *sys.argv[1:]]),
        "task": args.task,
        "seeds": args.seeds,
        "salt": args.salt,
        "style": args.style,
        "perturbation": args.perturb or "none",
        "episodes": len(episodes),
        "success_rate": float(np.mean(successes)),
        "mean_steps": float(np.mean([e["steps"] for e in episodes])),
        "mean_steps_successful": float(np.mean([e["steps"] for e in episodes if e["success"]])) if any(successes) else None,
        "mean_cpu_s": float(np.mean([e["cpu_s"] for e in episodes])),
        "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
        "median_hand_turn_deg": float(np.median([e["hand_turn_deg"] for e in episodes])),
        "mean_speed_cm_per_step": float(np.mean([e["speed_cm_per_step"] for e in episodes])),
        "per_episode": episodes,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{args.task}: success {result['success_rate']:.3f} ({sum(successes)}/{len(episodes)}), "
          f"mean {result['mean_steps']:.0f} steps, {result['mean_cpu_s']:.2f} CPU-s/episode, hand turn median "
          f"{result['median_hand_turn_deg']:.0f} deg, speed {result['mean_speed_cm_per_step']:.2f} cm/step -> {out}")


if __name__ == "__main__":
    main()
