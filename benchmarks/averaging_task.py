"""A task where averaging two demonstrated styles fails, measured: reach-wall from the low start.

    OMP_NUM_THREADS=1 python benchmarks/averaging_task.py --out benchmarks/results/averaging-task.json

The task (`metaworld/reach-wall-low`, lwd.envs.reach_wall): Metaworld's reach-wall-v3 with the hand
starting below the wall's top, centred in front of it, the same start for every seed. Two experts
(lwd.experts.reach_wall): "left" rounds the wall's left end, "right" its right end.

What runs, all on the held-out seeds (100000 + i) and one thread:
1. each style alone (success, steps, where it passes the wall), and the mean of the two experts'
   actions at every state (no learning: what a perfect regressor of 50/50 data would do);
2. demonstrations (successful episodes from seeds 0, 1, ...): mixed (`--styles left,right`, each
   episode's style drawn from its seed), left only, right only, the same number each;
3. BC (lwd's MLP 128-128, preset default, `--steps` steps, lr `--lr`) on each, per training seed,
   evaluated with `lwd eval`'s evaluator; the same policies are rolled out again here to read their
   paths (the two must agree on every episode's success, checked);
4. the control: the same mixed data and BC on `metaworld/reach-wall-low/spread-<cm>`, where the
   start moves sideways per seed by up to that much, so the state hints a side.

Path figures per episode (fingertips, obs[:3]): `aside_cm`, how far the hand has moved sideways from
its start when it is halfway to the wall (y 0.62; the experts are 13-14 cm aside there); `pressed`,
steps spent within 5 cm in front of the wall's face, between its ends (3 cm margin), below its top; `passed`,
the side it first crossed the wall's front line on (left, right, over, or never) and `passed_at`
the step it did; `demo_left_share`, the
share of "left" among the mixed demonstrations with the episode's goal (Metaworld's MT1 has 50
goals, shared by demonstration and test seeds: a goal whose demonstrations lean to one side is a
cue a regressor can use). A hand pressed against the wall has its fingers squeezed (the finger
opening, obs[3] and obs[21], drops from 1.00 to ~0.69, a reading no demonstration has), which sends a
min-max normalised MLP far off its data; so BC on the mixed data is also rolled out with those two
readings clipped to the dataset's range (`fingers_clipped`), to show what the averaging alone does.
The JSON keeps every episode next to the command, commit, date and machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lwd.analysis.styles import wall_crossing
from lwd.checkpoint import load_model
from lwd.demos import parse_seeds, parse_styles, rollout_expert, write_demos
from lwd.envs.reach_wall import LOW_START
from lwd.experts.reach_wall import STYLES, WALL_HIGH, WALL_LOW, DetourExpert
from lwd.pipeline import evaluate_run, train_run
from lwd.provenance import provenance
from lwd.suites import REACH_WALL_LOW, Suite, make_suite

HALFWAY_Y = float(LOW_START[1] + WALL_LOW[1]) / 2  # 0.62: where `aside_cm` is read
PRESS_DEPTH = 0.05  # m in front of the wall's face (the fingertips stop 2-4 cm before it, by height)
PRESSED_LONG = 10  # steps: an episode counted "pressed at the wall" spends at least this many there
FINGERS = [3, 21]  # obs: the finger opening, now and one step before (Metaworld's frame stack)


def path_figures(path: np.ndarray) -> dict[str, Any]:
    """aside_cm, pressed and passed of one episode's fingertip path (T, 3); see the module docstring."""
    half = np.flatnonzero(path[:, 1] >= HALFWAY_Y)
    passed, passed_at = wall_crossing(path)
    between = (path[:, 0] > WALL_LOW[0] - 0.03) & (path[:, 0] < WALL_HIGH[0] + 0.03)
    pressed = between & (path[:, 1] > WALL_LOW[1] - PRESS_DEPTH) & (path[:, 1] < WALL_LOW[1]) & (path[:, 2] < WALL_HIGH[2])
    return {"aside_cm": round(100 * float(path[half[0], 0] - path[0, 0]), 2) if len(half) else None,
            "pressed": int(pressed.sum()), "passed": passed, "passed_at": passed_at}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    aside = [abs(r["aside_cm"]) for r in rows if r["aside_cm"] is not None]
    out = {"successes": int(sum(r["success"] for r in rows)), "episodes": len(rows),
           "success_rate": float(np.mean([r["success"] for r in rows])),
           "mean_steps": float(np.mean([r["steps"] for r in rows])),
           "median_abs_aside_cm": float(np.median(aside)) if aside else None,
           "within_3cm_of_centre_at_halfway": int(sum(a < 3.0 for a in aside)),
           "pressed_at_wall": int(sum(r["pressed"] >= PRESSED_LONG for r in rows)),
           "median_pressed_steps": float(np.median([r["pressed"] for r in rows])),
           "median_passed_at": _median_or_none([r["passed_at"] for r in rows]),
           "passed": {side: int(sum(r["passed"] == side for r in rows)) for side in ("left", "right", "over", "never")}}
    if rows and "start_offset_cm" in rows[0]:
        sided = [r for r in rows if r["passed"] in ("left", "right") and r["start_offset_cm"] != 0]
        out["passed_on_the_side_the_start_leans_to"] = [int(sum((r["passed"] == "right") == (r["start_offset_cm"] > 0)
                                                                for r in sided)), len(sided)]
    return out


def _median_or_none(values: list[int | None]) -> float | None:
    """Median with None (never) counted as later than everything; None when that is the median."""
    median = float(np.median([np.inf if v is None else v for v in values]))
    return median if np.isfinite(median) else None


def rollout(env: Any, act: Any, reset: Any, seed: int, max_steps: int) -> tuple[bool, int, np.ndarray, dict]:
    """One episode with `act(obs)`; (success, steps, fingertip path (T+1, 3), the reset info)."""
    obs, info = env.reset(seed=seed)
    first_info = info
    reset(seed)
    path, success, steps = [obs[:3]], False, 0
    for steps in range(1, max_steps + 1):
        obs, _, terminated, truncated, info = env.step(act(obs))
        path.append(obs[:3])
        success = success or bool(info["success"])
        if terminated or truncated:
            break
    return success, steps, np.asarray(path, np.float64), first_info


def episode_row(suite: Suite, seed: int, success: bool, steps: int, path: np.ndarray, info: dict) -> dict[str, Any]:
    row = {"seed": seed, "success": success, "steps": steps, "goal_index": int(info["goal_index"]), **path_figures(path)}
    if suite.name != REACH_WALL_LOW:
        row["start_offset_cm"] = round(100 * float(info["hand_start"][0] - LOW_START[0]), 2)
    return row


def run_experts(suite: Suite, seeds: list[int]) -> dict[str, Any]:
    """Each style alone, and the mean of both experts' actions, on `seeds`."""
    env = suite.make_env(suite.tasks[0])
    out: dict[str, Any] = {}
    for style in STYLES:
        expert = DetourExpert(style)
        rows = [episode_row(suite, s, *rollout(env, lambda o: expert.act(o), expert.reset, s, suite.max_episode_steps))
                for s in tqdm(seeds, desc=f"{suite.name} {style}", unit="ep", leave=False)]
        out[style] = {**summary(rows), "per_episode": rows}
    both = [DetourExpert(style) for style in STYLES]
    rows = [episode_row(suite, s, *rollout(env, lambda o: np.mean([e.act(o) for e in both], axis=0),
                                           lambda seed: [e.reset(seed) for e in both], s, suite.max_episode_steps))
            for s in tqdm(seeds, desc=f"{suite.name} mean of styles", unit="ep", leave=False)]
    out["mean of the two styles"] = {**summary(rows), "per_episode": rows}
    env.close()
    return out


def goal_left_share(suite: Suite, data: Path) -> dict[int, float]:
    """{goal index: share of "left" among the demonstrations with that goal} of a styled dataset."""
    from lwd.data import Episodes

    episodes = Episodes.load(data)
    env = suite.make_env(suite.tasks[0])
    votes: dict[int, list[int]] = {}
    for i, seed in enumerate(episodes.attrs["seeds"]):
        goal = int(env.reset(seed=int(seed))[1]["goal_index"])
        votes.setdefault(goal, []).append(int(STYLES[int(episodes.episode(i)["style"][0])] == "left"))
    env.close()
    return {goal: float(np.mean(v)) for goal, v in votes.items()}


def finger_range(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """The finger-opening readings' range in a dataset (lowest, highest), (2,) each."""
    from lwd.data import Episodes

    fingers = np.asarray(Episodes.load(data).data["obs"][:])[:, FINGERS]
    return fingers.min(axis=0), fingers.max(axis=0)


def train_and_evaluate(learner: Learner, suite: Suite, data: Path, run_dir: Path, seed: int, seeds: list[int],
                       shares: dict[int, float] | None, fingers: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    """Train `learner`, evaluate it with lwd eval's evaluator and again here for the paths (a
    generating method is reset with the episode's seed in both, so they draw the same policies);
    with `fingers`, also roll it out with the finger readings clipped to that range (the wall
    squeezes the fingers, a reading no demonstration has; the clipped rollout shows what is left
    without it)."""
    started = time.perf_counter()
    train_run(learner.method, data, run_dir, preset=learner.preset, overrides=list(learner.settings),
              train_overrides=list(learner.train_settings), seed=seed, progress=False, overwrite=True)
    train_seconds = time.perf_counter() - started
    evaluated = evaluate_run(run_dir, env=suite.name, episodes=len(seeds), seed_start=seeds[0], progress=False)
    by_seed = {e["seed"]: e for e in evaluated["episodes"]}
    model = load_model(run_dir)
    policy = model.make_policy(model.runtime_options())
    env = suite.make_env(suite.tasks[0])
    rows = []
    for s in seeds:
        row = episode_row(suite, s, *rollout(env, policy.act, policy.reset, s, suite.max_episode_steps))
        if row["success"] != by_seed[s]["success"] or row["steps"] != by_seed[s]["steps"]:
            raise RuntimeError(f"{run_dir} seed {s}: the path rollout disagrees with lwd eval "
                               f"({row['success']}/{row['steps']} vs {by_seed[s]['success']}/{by_seed[s]['steps']})")
        if shares is not None:
            row["demo_left_share"] = shares.get(row["goal_index"])
        rows.append(row)
    clipped = []
    if fingers is not None:
        def act_clipped(obs: np.ndarray) -> np.ndarray:
            obs = obs.copy()
            obs[FINGERS] = np.clip(obs[FINGERS], *fingers)
            return policy.act(obs)

        clipped = [episode_row(suite, s, *rollout(env, act_clipped, policy.reset, s, suite.max_episode_steps)) for s in seeds]
    env.close()
    out = {**summary(rows), "train_seconds": round(train_seconds, 1), "lwd_eval_success": evaluated["mean_success"],
           "run_dir": str(run_dir), "per_episode": rows}
    if clipped:
        out["fingers_clipped"] = {**summary(clipped), "per_episode": clipped}
    if shares is not None:  # do BC's few decided episodes follow their goal's demonstrations?
        by_side = {side: [r["demo_left_share"] for r in rows if r["passed"] == side and r["demo_left_share"] is not None]
                   for side in ("left", "right", "never")}
        out["mean_demo_left_share_by_side"] = {side: float(np.mean(v)) if v else None for side, v in by_side.items()}
    return out


@dataclass(frozen=True)
class Learner:
    """What is trained on each dataset: an lwd method, its preset and `--set`/`--train-set` settings."""

    method: str
    preset: str
    settings: tuple[str, ...]
    train_settings: tuple[str, ...]

    def describe(self) -> str:
        return " ".join([f"{self.method} --preset {self.preset}", *(f"--set {s}" for s in self.settings),
                         *(f"--train-set {s}" for s in self.train_settings)])


def dumps(result: dict) -> str:
    """Indented JSON with every list of plain values and every per-episode row on one line."""
    text = json.dumps(result, indent=2)
    text = re.sub(r"\{\s+(\"seed\"[^{}]*?)\s+\}", lambda m: "{" + " ".join(m.group(1).split()) + "}", text)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="100000:100050", help="evaluation seeds: a:b (b exclusive) or a comma list")
    p.add_argument("--demos", type=int, default=100, help="successful demonstrations per dataset")
    p.add_argument("--method", default="bc", help="what learns from the demonstrations: bc (the default), lwd, dp, ...")
    p.add_argument("--label", default="", help="the result's key in --out (default: the method's name); other labels "
                   "already in --out are kept, so several methods' results share one file")
    p.add_argument("--preset", default="default", help="the method's preset")
    p.add_argument("--set", dest="settings", action="append", default=[], help="method setting k=v (repeatable)")
    p.add_argument("--train-set", dest="train_settings", action="append", default=[], help="training setting k=v (repeatable)")
    p.add_argument("--steps", type=int, default=5000, help="BC training steps (method bc only)")
    p.add_argument("--lr", type=float, default=1e-3, help="BC learning rate (method bc only)")
    p.add_argument("--datasets", default="mixed,left only,right only",
                   help="which of the low start's datasets to train on (the spreads' controls are mixed)")
    p.add_argument("--train-seeds", default="0,1")
    p.add_argument("--spreads", default="2,5,10", help="control: start spreads in cm ('' for none)")
    p.add_argument("--work", default="/tmp/lwd-averaging-task", help="where the datasets and runs go")
    p.add_argument("--out", default="benchmarks/results/averaging-task.json")
    args = p.parse_args()
    torch.set_num_threads(1)

    if args.method == "bc":
        learner = Learner("bc", args.preset, (f"steps={args.steps}", *args.settings), (f"lr={args.lr}", *args.train_settings))
    else:
        learner = Learner(args.method, args.preset, tuple(args.settings), tuple(args.train_settings))
    label_key = args.label or args.method
    seeds, train_seeds = parse_seeds(args.seeds), [int(s) for s in args.train_seeds.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    suites = [make_suite(REACH_WALL_LOW)] + [make_suite(f"{REACH_WALL_LOW}/spread-{cm}") for cm in args.spreads.split(",") if cm]
    result: dict[str, Any] = {
        "protocol": (f"success = Metaworld's flag at any step within 500 on seeds {seeds[0]}..{seeds[-1]}; each learner "
                     f"trained with one thread on each dataset per training seed (its command under learners); aside_cm read "
                     f"at y {HALFWAY_Y:.2f}; pressed_at_wall = >= {PRESSED_LONG} steps within {100 * PRESS_DEPTH:g} cm in front "
                     "of the wall's face, between its ends (3 cm margin), below its top; fingers_clipped: the same policy with "
                     "obs[3] and obs[21] (finger opening) clipped to the dataset's range"),
        "settings": {"demos_per_dataset": args.demos, "eval_seeds": [seeds[0], seeds[-1]]},
        "experts": {}, "learners": {}}
    out = Path(args.out)
    if out.exists():  # other learners' results: kept, if they were measured on the same data and seeds
        kept = json.loads(out.read_text())
        if kept.get("settings") != result["settings"]:
            raise SystemExit(f"{out} was measured with other settings ({kept.get('settings')}); give another --out")
        result["learners"], result["experts"] = kept["learners"], kept["experts"]  # experts rerun below replace theirs
    result["learners"][label_key] = {"learner": learner.describe(), "train_seeds": train_seeds,
                                     "provenance": provenance(["python", "benchmarks/averaging_task.py", *sys.argv[1:]])}
    for suite in suites:
        result["experts"][suite.name] = run_experts(suite, seeds)
        e = result["experts"][suite.name]
        print(f"{suite.name:36s} experts: " + " | ".join(f"{k} {v['successes']}/{v['episodes']} (pressed at the wall {v['pressed_at_wall']})"
                                                          for k, v in e.items()), flush=True)

    chosen = [d.strip() for d in args.datasets.split(",") if d.strip()]
    mixes = {"mixed": "left,right", "left only": "left", "right only": "right"}
    unknown = sorted(set(chosen) - set(mixes))
    if unknown:
        raise SystemExit(f"--datasets {unknown}: not one of {sorted(mixes)}")
    datasets = [(suites[0], label, mixes[label]) for label in chosen]
    datasets += [(suite, "mixed", "left,right") for suite in suites[1:]]
    for suite, label, mix in datasets:
        tag = suite.name.split("/")[-1] + "-" + label.split()[0]
        data = work / f"{tag}.zarr"
        shutil.rmtree(data, ignore_errors=True)  # made afresh: demonstrations are seeded, so this is the same data
        episodes = write_demos(suite, data, args.demos, styles=parse_styles(mix, suite), progress=False)
        shares = goal_left_share(suite, data) if label == "mixed" else None
        fingers = finger_range(data) if label == "mixed" and suite.name == REACH_WALL_LOW else None
        cell: dict[str, Any] = {"data": str(data), "style_counts": episodes.attrs["style_counts"],
                                "steps": int(episodes.num_steps), "runs": {}}
        for seed in train_seeds:
            cell["runs"][str(seed)] = train_and_evaluate(learner, suite, data, work / f"{label_key}-{tag}-s{seed}", seed,
                                                         seeds, shares, fingers)
            r = cell["runs"][str(seed)]
            print(f"{suite.name:36s} {label_key} on {label:10s} seed {seed}: success {r['successes']}/{r['episodes']}, pressed at the wall "
                  f"{r['pressed_at_wall']}, passed {r['passed']}, |aside| median {r['median_abs_aside_cm']} cm "
                  f"(train {r['train_seconds']} s)", flush=True)
            if "fingers_clipped" in r:
                c = r["fingers_clipped"]
                print(f"{'':36s}   finger readings clipped: success {c['successes']}/{c['episodes']}, pressed at the wall "
                      f"{c['pressed_at_wall']} (median {c['median_pressed_steps']} steps), passed {c['passed']}", flush=True)
        cell["success_rate_mean"] = float(np.mean([r["success_rate"] for r in cell["runs"].values()]))
        result["learners"][label_key].setdefault(suite.name, {})[label] = cell
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dumps(result))  # after every cell: a long run keeps what it has done
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
