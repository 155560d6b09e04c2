"""PushT expert styles: each style's success on its own, and how different the styles are.

    OMP_NUM_THREADS=1 python benchmarks/pusht_styles.py --seeds 100000:100050 --out benchmarks/results/pusht-expert-styles.json

Every style (`lwd.experts.pusht.STYLES`) runs the same seeds (by default the 50 held-out test
seeds, as in `pusht_expert.py`); success is the env's own flag within 300 steps, CPU seconds are
`time.process_time()` per episode. How different the styles are, measured two ways:
- order: per episode, which comes first, the angle error below ANGLE_DONE (15 deg) or the
  centre-of-mass distance below DISTANCE_DONE (20 px); a style that turns first should show the
  angle first in most episodes, one that translates first the distance first. Counted over the
  "contested" episodes only, those that start with both errors above their thresholds (in the
  others the order is decided by the start, whatever the style);
- paths: for each pair of styles, the mean over time of the distance (px) between the two agents
  from the same seed (the shorter episode padded with its last position), next to the same
  figure for one style with two expert salts (the within-style spread the sampling gives).
The JSON keeps every seed's outcome next to the command, git commit, date and machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lwd.analysis.styles import path_distance
from lwd.demos import parse_seeds, rollout_expert
from lwd.envs.pusht import MAX_EPISODE_STEPS, PushTEnv
from lwd.experts.pusht import STYLES, PushTExpert, pose_errors
from lwd.provenance import provenance

ANGLE_DONE = np.radians(15.0)
DISTANCE_DONE = 20.0


def run_episode(env: PushTEnv, expert: PushTExpert, seed: int) -> tuple[dict, np.ndarray]:
    """One episode's outcome and order figures, and the agent's path (T, 2)."""
    start = time.process_time()
    run = rollout_expert(env, expert, seed, MAX_EPISODE_STEPS)
    cpu = time.process_time() - start
    poses = _poses(env, seed, run.actions)  # the block's pose is not in the keypoint obs: replay
    errors = np.array([pose_errors(*p) for p in poses])  # (T + 1, 2): distance px, angle rad
    t_angle = _first(errors[:, 1] < ANGLE_DONE)
    t_dist = _first(errors[:, 0] < DISTANCE_DONE)
    order = "tie" if t_angle == t_dist else ("angle first" if t_angle < t_dist else "distance first")
    episode = {
        "seed": seed, "success": run.success, "steps": run.steps, "cpu_s": cpu,
        "start_distance_px": float(errors[0, 0]), "start_angle_deg": float(np.degrees(errors[0, 1])),
        "step_angle_done": t_angle, "step_distance_done": t_dist, "order": order,
        "angle_deg_when_distance_done": float(np.degrees(errors[min(t_dist, len(errors) - 1), 1])),
        "distance_px_when_angle_done": float(errors[min(t_angle, len(errors) - 1), 0]),
    }
    return episode, np.asarray([o[-2:] for o in run.obs], np.float64)


def _poses(env: PushTEnv, seed: int, actions: list[np.ndarray]) -> list[tuple[float, float, float]]:
    """Block poses along an episode, by replaying its actions (the env is deterministic per seed)."""
    _, info = env.reset(seed=seed)
    poses = [tuple(info["state"][4:7])]
    for action in actions:
        _, _, _, _, info = env.step(action)
        poses.append(tuple(info["state"][4:7]))
    return poses


def _first(mask: np.ndarray) -> int:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else len(mask)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="100000:100050", help="a:b (b exclusive) or a comma list")
    p.add_argument("--styles", default=",".join(STYLES))
    p.add_argument("--out", default="benchmarks/results/pusht-expert-styles.json")
    args = p.parse_args()

    seeds = parse_seeds(args.seeds)
    styles = args.styles.split(",")
    env = PushTEnv()  # keypoint observations: the agent is the last two numbers
    per_style: dict[str, list[dict]] = {}
    paths: dict[str, list[np.ndarray]] = {}
    runs = [(style, 0) for style in styles] + [(styles[0], 1)]  # + the first style with another salt
    for style, salt in runs:
        key = style if salt == 0 else f"{style} (salt 1)"
        expert = PushTExpert(style=style, salt=salt)
        results = [run_episode(env, expert, s) for s in tqdm(seeds, desc=key, unit="ep")]
        per_style[key] = [r[0] for r in results]
        paths[key] = [r[1] for r in results]

    summary = {}
    for key, episodes in per_style.items():
        cpu = np.array([e["cpu_s"] for e in episodes])
        contested = [e for e in episodes if e["start_angle_deg"] >= np.degrees(ANGLE_DONE) and e["start_distance_px"] >= DISTANCE_DONE]
        orders = [e["order"] for e in contested]
        summary[key] = {
            "success_rate": float(np.mean([e["success"] for e in episodes])),
            "successes": int(sum(e["success"] for e in episodes)),
            "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
            "mean_steps": float(np.mean([e["steps"] for e in episodes])),
            "cpu_s_per_episode": {"mean": float(cpu.mean()), "max": float(cpu.max())},
            "contested_episodes": len(contested),
            "share_angle_first": orders.count("angle first") / max(len(orders), 1),
            "share_distance_first": orders.count("distance first") / max(len(orders), 1),
            "share_tie": orders.count("tie") / max(len(orders), 1),
            "median_angle_deg_when_distance_done": float(np.median([e["angle_deg_when_distance_done"] for e in contested])),
            "median_distance_px_when_angle_done": float(np.median([e["distance_px_when_angle_done"] for e in contested])),
        }
    pairs = {}
    for a, b in itertools.combinations(per_style, 2):
        d = [path_distance(x, y) for x, y in zip(paths[a], paths[b])]
        pairs[f"{a} vs {b}"] = {"mean_px": float(np.mean(d)), "median_px": float(np.median(d)),
                                "share_same_path": float(np.mean(np.array(d) == 0.0))}

    result = {
        "provenance": provenance(["python", "benchmarks/pusht_styles.py", *sys.argv[1:]]),
        "protocol": (f"success = env flag (coverage > 0.95) within {MAX_EPISODE_STEPS} steps; cpu = time.process_time; "
                     f"order: first step with angle error < 15 deg vs centre-of-mass distance < {DISTANCE_DONE:g} px; "
                     "paths: mean per-step agent distance, same seed"),
        "seeds": [seeds[0], seeds[-1]], "episodes_per_style": len(seeds),
        "styles": summary, "path_distance": pairs, "per_seed": per_style,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for key, s in summary.items():
        print(f"{key:24s} success {s['successes']}/{len(seeds)} steps {s['mean_steps']:.0f} cpu {s['cpu_s_per_episode']['mean']:.2f} "
              f"of {s['contested_episodes']} contested: angle-first {s['share_angle_first']:.2f} distance-first {s['share_distance_first']:.2f} tie {s['share_tie']:.2f} "
              f"| angle when placed {s['median_angle_deg_when_distance_done']:.0f} deg, distance when turned "
              f"{s['median_distance_px_when_angle_done']:.0f} px")
    for pair, d in pairs.items():
        print(f"{pair:48s} agent paths {d['mean_px']:.0f} px apart (median {d['median_px']:.0f}); "
              f"identical in {d['share_same_path']:.0%} of seeds")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
