"""Why do learned policies fail on robomimic tasks? Classify every push, and how far each episode got.

    OMP_NUM_THREADS=1 python benchmarks/robomimic_push_diagnosis.py RUN [RUN ...] --task lift \\
        --action-horizon 8 --perturb object-push:3:0.05 --seeds 100000:100050 \\
        --out benchmarks/results/robomimic-push-diagnosis-lift.json

Each run (and the scripted expert, as the reference) is rolled out on the same seeds with the
same pushes as `lwd eval` / `lwd bench` (same env, same seeded perturbation wrapper, same policy
runtime), and every push is classified from the privileged simulator state at the moment it
happens:

- `held`: the fingers were closed on the object, which was within 3 cm of the gripper or lifted
  3 cm off its rest (a push then knocks it out of the hand, or loosens the grip);
- `free`: any other push (during the approach, or after a drop).

The per-episode record says how many pushes of each kind it got and whether it succeeded, and
whether the gripper re-opened after the object was knocked out of it (a re-grasp attempt). The
summary gives success split by "was the object knocked out of the hand at least once".

It also records how far every episode got through the task, from the simulator state, so failures
can be told apart without pushes too (`--perturb none`):

- `lifted`: the object rose 3 cm above its resting height at some step (it was grasped: nothing
  else lifts it);
- `over_target` (Can and Square): the lifted object came within reach of its goal (Can: 8 cm of
  the centre of the goal quadrant of the bin, in the table plane; Square: 4 cm of the peg);
- `success`: the env's own check.

A failure is then `never_lifted` (grasp failed), `lifted_not_over_target` (dropped or lost in
transport) or `over_target_not_placed` (placing or inserting failed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lwd.checkpoint import load_model
from lwd.demos import parse_seeds
from lwd.envs.perturb import apply_perturbation
from lwd.suites import make_suite
from lwd.provenance import provenance

HELD_DISTANCE_M = 0.03
LIFT_HEIGHT_M = 0.03
#: Horizontal distance (m) from the goal within which a lifted object counts as brought over it.
OVER_TARGET_M = {"can": 0.08, "square": 0.04}
#: Panda finger joint opening (robot0_gripper_qpos[0] - [1]) below which the fingers are closing on something.
CLOSED_GAP = 0.07


def _raised(info: dict, rest_height: float) -> bool:
    """The object is lifted off its rest: only the gripper lifts it."""
    return float(info["object_pos"][2]) > rest_height + LIFT_HEIGHT_M


def _held(info: dict, rest_height: float) -> bool:
    """Fingers closed on the object: it is near the gripper, or lifted off its rest.

    The lifted test matters on Square: its object position is the nut's centre, about 6 cm from the
    handle the gripper holds, so nearness alone misses a held nut.
    """
    gap = float(info["gripper_qpos"][0] - info["gripper_qpos"][1])
    near = np.linalg.norm(info["eef_pos"] - info["object_pos"]) < HELD_DISTANCE_M
    return bool(gap < CLOSED_GAP and (near or _raised(info, rest_height)))


def rollout(env, actor, seed: int, max_steps: int, task: str) -> dict:
    """One episode; `actor(obs, info)` gives the action. Returns pushes by kind, the phases reached and the outcome."""
    last_info: dict = {}
    pushes: list[dict] = []
    unwrapped = env.unwrapped
    original_push = unwrapped.push_object

    def recording_push(rng: np.random.Generator, magnitude: float) -> None:
        pushes.append({"step": steps, "kind": "held" if _held(last_info, rest_height) else "free"})
        original_push(rng, magnitude)

    unwrapped.push_object = recording_push
    try:
        obs, last_info = env.reset(seed=seed)
        rest_height = float(last_info["object_pos"][2])
        steps, success, reopened_after_drop, dropped = 0, False, False, False
        lifted, over_target = False, False
        for steps in range(max_steps):
            action = actor(obs, last_info)
            obs, _, terminated, truncated, info = env.step(action)
            if dropped and action[-1] < 0:  # robosuite: -1 opens the gripper
                reopened_after_drop = True
            if pushes and pushes[-1]["kind"] == "held" and pushes[-1]["step"] == steps:
                dropped = True
            last_info = info
            success = success or bool(info["success"])
            raised = _raised(info, rest_height)
            lifted = lifted or raised
            if task in OVER_TARGET_M and raised:
                over_target = over_target or float(np.linalg.norm(info["object_pos"][:2] - info["target_pos"][:2])) < OVER_TARGET_M[task]
            if terminated or truncated:
                break
    finally:
        unwrapped.push_object = original_push
    return {"seed": seed, "success": success, "steps": steps + 1, "lifted": lifted,
            "over_target": over_target if task in OVER_TARGET_M else None,
            "pushes_free": sum(p["kind"] == "free" for p in pushes),
            "pushes_held": sum(p["kind"] == "held" for p in pushes),
            "reopened_after_knocked_out": reopened_after_drop,
            "pushes": [[p["step"], p["kind"]] for p in pushes]}


def make_actor(name: str, suite, task: str, action_horizon: int) -> tuple[Callable[[int], None], Callable]:
    """(reset(seed), act(obs, info)) for the scripted expert ("expert") or a trained run directory."""
    if name == "expert":
        expert = suite.make_expert(task)
        return expert.reset, expert.act
    policy = (model := load_model(name)).make_policy(model.runtime_options(action_horizon=action_horizon))
    return policy.reset, lambda obs, info: policy.act(obs)


def summarise(episodes: list[dict], early: int) -> dict:
    knocked = [e for e in episodes if e["pushes_held"] > 0]
    clean = [e for e in episodes if e["pushes_held"] == 0]

    def rate(rows: list[dict]) -> float | None:
        return float(np.mean([e["success"] for e in rows])) if rows else None

    failed = [e for e in episodes if not e["success"]]
    phases = {"failures": len(failed),
              "failures_never_lifted": sum(not e["lifted"] for e in failed)}
    if episodes and episodes[0]["over_target"] is not None:
        phases["failures_lifted_not_over_target"] = sum(e["lifted"] and not e["over_target"] for e in failed)
        phases["failures_over_target_not_placed"] = sum(bool(e["over_target"]) for e in failed)
    else:
        phases["failures_lifted"] = sum(e["lifted"] for e in failed)
    return {
        **phases,
        "success": rate(episodes),
        "episodes": len(episodes),
        "episodes_knocked_out_of_hand": len(knocked),
        "success_if_knocked_out": rate(knocked),
        "success_if_never_knocked_out": rate(clean),
        "reopened_after_knocked_out": int(sum(e["reopened_after_knocked_out"] for e in knocked)),
        "pushes_free": int(sum(e["pushes_free"] for e in episodes)),
        "pushes_held": int(sum(e["pushes_held"] for e in episodes)),
        # Were the failures pushed early, within the time the expert needs for the whole task?
        f"success_if_pushed_in_first_{early}_steps": rate([e for e in episodes if any(s < early for s, _ in e["pushes"])]),
        f"success_if_not_pushed_in_first_{early}_steps": rate([e for e in episodes if not any(s < early for s, _ in e["pushes"])]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="trained run directories (LWD or DP); the expert always runs")
    p.add_argument("--task", default="lift", choices=["lift", "can", "square"])
    p.add_argument("--action-horizon", type=int, default=8)
    p.add_argument("--perturb", default="object-push:3:0.05", help="a perturbation spec, or 'none' for the phase analysis alone")
    p.add_argument("--no-expert", action="store_true", help="skip the scripted-expert reference rollouts")
    p.add_argument("--seeds", default="100000:100050")
    p.add_argument("--early-steps", type=int, default=40, help="'early' = before this step (Lift's expert needs ~42)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    suite = make_suite(f"robomimic/{args.task}")
    task = suite.tasks[0]
    seeds = parse_seeds(args.seeds)
    results = {}
    for name in ([] if args.no_expert else ["expert"]) + args.runs:
        env = apply_perturbation(suite.make_env(task), args.perturb)
        reset, actor = make_actor(name, suite, task, args.action_horizon)
        episodes = []
        for seed in tqdm(seeds, desc=name, unit="ep"):
            reset(seed)
            episodes.append(rollout(env, actor, seed, suite.max_episode_steps, args.task))
        env.close()
        results[name] = {"summary": summarise(episodes, args.early_steps), "episodes": episodes}
        print(name, json.dumps(results[name]["summary"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "task": args.task, "action_horizon": args.action_horizon, "perturb": args.perturb, "seeds": args.seeds,
        "results": results, "provenance": provenance(["python", "benchmarks/robomimic_push_diagnosis.py", *sys.argv[1:]])}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
