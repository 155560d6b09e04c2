"""MT10 expert styles: each style's success on its own, per task, and how different the styles are.

    OMP_NUM_THREADS=1 python benchmarks/mt10_styles.py --seeds 100000:100050 --out benchmarks/results/mt10-expert-styles.json

Every style (`lwd.experts.metaworld.STYLES`) runs the same seeds of every MT10 task (by default the
50 held-out test seeds); success is Metaworld's flag at any step within 500, CPU seconds are
`time.process_time()` per episode. How different the styles are, from the hand's path (obs[:3]):
- sideways: how far (cm) the hand has moved horizontally when it has first risen 3 cm above its
  start (lift-first: ~0, it climbs straight up; a diagonal approach: about as far as it rose);
  "never rose" counts the episodes whose hand never got 3 cm above its start in the first 100 steps;
- speed: the hand's fastest step (cm/step) in the first 30 steps;
- paths: the mean per-step distance (cm) between the hands of a style and the scripted policy from
  the same seed (the shorter episode padded with its last position), next to the same figure for
  lift-first and slow with two expert salts (the spread their per-episode draws give).
The JSON keeps every seed's outcome next to the command, git commit, date and machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lwd.analysis.styles import path_distance
from lwd.demos import parse_seeds, rollout_expert
from lwd.envs.metaworld import MAX_EPISODE_STEPS, MT10_TASKS, MetaworldTaskEnv
from lwd.experts.metaworld import STYLES, MetaworldExpert
from lwd.provenance import provenance

RISE = 0.03  # m: "sideways" is read when the hand has first risen this far
SPEED_STEPS = 30


def run_episode(env: MetaworldTaskEnv, expert: MetaworldExpert, seed: int) -> tuple[dict, np.ndarray]:
    """One episode's outcome and path figures, and the hand's path (T, 3)."""
    start = time.process_time()
    run = rollout_expert(env, expert, seed, MAX_EPISODE_STEPS)
    cpu = time.process_time() - start
    hand = np.asarray(run.obs, np.float64)[:, :3]
    rose = np.flatnonzero(hand[:100, 2] - hand[0, 2] >= RISE)
    sideways = float(np.linalg.norm(hand[rose[0], :2] - hand[0, :2])) if len(rose) else None
    speed = np.linalg.norm(np.diff(hand[: SPEED_STEPS + 1], axis=0), axis=1)
    return {"seed": seed, "success": run.success, "steps": run.steps, "cpu_s": cpu,
            "sideways_cm_at_rise": None if sideways is None else 100 * sideways,
            "max_speed_cm_per_step": float(100 * speed.max())}, hand


PER_SEED_COLUMNS = ("seed", "success", "steps", "cpu_s", "sideways_cm_at_rise", "max_speed_cm_per_step")


def compact(episodes: dict[str, list[dict]]) -> dict[str, list[list]]:
    """Per style, one row per seed in PER_SEED_COLUMNS order (a list per episode keeps the JSON small)."""
    def value(v: object) -> object:
        return round(v, 4) if isinstance(v, float) else v

    return {key: [[value(row[c]) for c in PER_SEED_COLUMNS] for row in rows] for key, rows in episodes.items()}


def dumps(result: dict) -> str:
    """Indented JSON with every list of plain values on one line (the per-seed rows)."""
    text = json.dumps(result, indent=2)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="100000:100050", help="a:b (b exclusive) or a comma list")
    p.add_argument("--tasks", default=",".join(MT10_TASKS))
    p.add_argument("--out", default="benchmarks/results/mt10-expert-styles.json")
    args = p.parse_args()

    seeds = parse_seeds(args.seeds)
    runs = [(style, 0) for style in STYLES] + [("lift-first", 1), ("slow", 1)]
    per_task: dict[str, dict] = {}
    for task in args.tasks.split(","):
        env = MetaworldTaskEnv(task)
        episodes, paths = {}, {}
        for style, salt in runs:
            key = style if salt == 0 else f"{style} (salt 1)"
            expert = MetaworldExpert(task, style=style, salt=salt)
            results = [run_episode(env, expert, s) for s in tqdm(seeds, desc=f"{task} {key}", unit="ep", leave=False)]
            episodes[key] = [r[0] for r in results]
            paths[key] = [r[1] for r in results]
        env.close()
        summary = {}
        for key, rows in episodes.items():
            sideways = [r["sideways_cm_at_rise"] for r in rows if r["sideways_cm_at_rise"] is not None]
            summary[key] = {
                "success_rate": float(np.mean([r["success"] for r in rows])),
                "successes": int(sum(r["success"] for r in rows)),
                "failed_seeds": [r["seed"] for r in rows if not r["success"]],
                "mean_steps": float(np.mean([r["steps"] for r in rows])),
                "cpu_s_per_episode": float(np.mean([r["cpu_s"] for r in rows])),
                "median_sideways_cm_at_rise": float(np.median(sideways)) if sideways else None,
                "never_rose": len(rows) - len(sideways),
                "median_max_speed_cm_per_step": float(np.median([r["max_speed_cm_per_step"] for r in rows])),
            }
        pairs = {f"{key} vs scripted": float(np.mean([path_distance(a, b) for a, b in zip(paths[key], paths["scripted"])])) * 100
                 for key in ("lift-first", "slow")}
        pairs.update({f"{style} vs {style} (salt 1)": float(np.mean([path_distance(a, b) for a, b in
                                                                     zip(paths[style], paths[f"{style} (salt 1)"])])) * 100
                      for style in ("lift-first", "slow")})
        per_task[task] = {"styles": summary, "path_distance_cm": pairs, "per_seed": compact(episodes)}
        print(f"{task:24s} " + " | ".join(f"{k} {v['successes']}/{len(seeds)} {v['mean_steps']:.0f} st" for k, v in summary.items()
                                           if "salt" not in k) + " | paths " + ", ".join(f"{k} {v:.1f} cm" for k, v in pairs.items()), flush=True)

    overall = {key: {"success_rate": float(np.mean([t["styles"][key]["success_rate"] for t in per_task.values()])),
                     "successes": int(sum(t["styles"][key]["successes"] for t in per_task.values())),
                     "episodes": len(seeds) * len(per_task),
                     "mean_steps": float(np.mean([t["styles"][key]["mean_steps"] for t in per_task.values()])),
                     "cpu_s_per_episode": float(np.mean([t["styles"][key]["cpu_s_per_episode"] for t in per_task.values()]))}
               for key in per_task[next(iter(per_task))]["styles"]}
    result = {
        "provenance": provenance(["python", "benchmarks/mt10_styles.py", *sys.argv[1:]]),
        "protocol": (f"success = Metaworld's flag at any step within {MAX_EPISODE_STEPS}; cpu = time.process_time; "
                     f"sideways: horizontal hand travel (cm) when first {100 * RISE:g} cm above its start; "
                     f"speed: fastest hand step (cm) in the first {SPEED_STEPS}; paths: mean per-step hand distance (cm), same seed"),
        "seeds": [seeds[0], seeds[-1]], "episodes_per_task": len(seeds), "per_seed_columns": list(PER_SEED_COLUMNS),
        "overall": overall, "tasks": per_task,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dumps(result))
    for key, s in overall.items():
        print(f"{key:20s} success {s['successes']}/{s['episodes']} ({s['success_rate']:.3f}) mean steps {s['mean_steps']:.0f} "
              f"cpu {s['cpu_s_per_episode']:.2f} s/episode")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
