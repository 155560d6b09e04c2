"""`lwd eval`: evaluate a trained run in its environment -> table, results JSON and plot (optionally
videos, or the run's exported files instead of torch). Its run-time flags come from the methods'
runtime classes (`common.runtime_flags`), so a method's new option needs no edit here."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from lwd.cli.common import Subcommands, non_negative, overwrite_flag, positive, runtime_flags, runtime_options, warn
from lwd.outputs import check_writable, refuse_existing, write_text_safely


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    e = subcommands.add_parser("eval", help="evaluate a trained run in its environment")
    e.add_argument("run", help="run directory")
    e.add_argument("--env", default=None, help="suite name (default: the one the run was trained on)")
    e.add_argument("--episodes", type=positive, default=50, help="episodes per task (default 50)")
    e.add_argument("--n-envs", type=positive, default=1, help="parallel envs (results do not depend on it)")
    e.add_argument("--vector", choices=["sync", "async"], default="sync", help="gymnasium vector env kind")
    e.add_argument("--perturb", default=None, help="e.g. action-noise:0.1, obs-noise:0.01, block-push:20:0.05 (PushT), object-push:3:0.05 (robomimic); default none")
    e.add_argument("--seed-start", type=non_negative, default=None, help="first test seed (default 100000)")
    e.add_argument("--tasks", default=None, help="comma-separated subset of tasks")
    e.add_argument("--batch-plans", action="store_true",
                   help="DP: replan all envs that need it in one network call instead of one per env (equal to per-env results up to float rounding)")
    e.add_argument("--video", type=non_negative, default=0, metavar="N",
                   help="also write videos of the first N episodes (replayed with rendering after the evaluation)")
    e.add_argument("--video-dir", default=None, help="folder for --video (default: OUT-videos/ next to --out, else RUN/videos/)")
    e.add_argument("--exported", default=None, metavar="DIR",
                   help="LWD: run the policies from exported files (generator.onnx + lwd_controller.py, "
                        "from lwd export RUN --format npz and --format onnx into DIR) to check them against the run")
    e.add_argument("--rollouts", default=None, metavar="PATH",
                   help="also save every episode's observations, actions and generation steps as an episode "
                        "store (zarr) at PATH, e.g. for style labels (benchmarks/style_measures.py)")
    e.add_argument("--out", default=None, help="results JSON (a PNG plot is written next to it); "
                                               "default: RUN/evals/<settings>.json, never over an earlier one")
    overwrite_flag(e, "results JSON and plot (and the --rollouts store)")
    runtime_flags(e.add_argument_group("run-time options of the methods", "read from each method's runtime class"))
    return e


def run(args: argparse.Namespace) -> None:
    from lwd.evaluation.evaluate import format_table, plot_success
    from lwd.pipeline import check_training_data, evaluate_run
    from lwd.provenance import provenance

    if args.out:
        refuse_existing(args.out, args.overwrite)
        refuse_existing(Path(args.out).with_suffix(".png"), args.overwrite, what="--out's plot")
        check_writable(args.out)
    else:
        check_writable(Path(args.run) / "evals", what="--out", folder=True)  # the default: RUN/evals/
    if args.rollouts:
        refuse_existing(args.rollouts, args.overwrite, what="--rollouts")
        check_writable(args.rollouts, what="--rollouts")
    video_dir = None
    if args.video:
        video_dir = Path(args.video_dir or (Path(args.out).with_suffix("").as_posix() + "-videos" if args.out else Path(args.run) / "videos"))
        check_writable(video_dir, what="--video-dir", folder=True)
        os.environ.setdefault("MUJOCO_GL", "egl")  # off-screen MuJoCo rendering; set before any simulator loads
    shard = _eval_shard()
    if shard[0] == 0:
        warn(check_training_data(args.run))
    result = evaluate_run(args.run, args.env, args.episodes, args.n_envs, args.vector, args.perturb, args.seed_start,
                          args.tasks.split(",") if args.tasks else None, progress=shard[0] == 0, batch_plans=args.batch_plans,
                          video=args.video, video_dir=video_dir, shard=shard, exported=args.exported,
                          rollouts=args.rollouts, **runtime_options(args))
    if shard[0] > 0:
        return  # rank 0 reports and writes
    result["provenance"] = provenance()
    print(format_table(result))
    print(f"evaluated in {result['seconds']:.1f} s")
    for v in result.get("videos", []):
        print(f"video {v['video']}: {v['task']} seed {v['seed']}, {'success' if v['success'] else 'failure'} in {v['steps']} steps"
              + ("" if v["matches_evaluation"] else " (differs from the evaluated episode!)"))
    text = json.dumps(result, indent=2)
    if args.out:
        out = write_text_safely(args.out, text)
    else:  # a result is never thrown away: kept beside the run, under a name that says its settings
        from lwd.outputs import write_new_text

        out = write_new_text(Path(args.run) / "evals", eval_name(result), text)
    plot_success(result, str(out.with_suffix(".png")))
    print(f"wrote {out} and {out.with_suffix('.png')}" + (f"; rollouts in {result['rollouts']}" if result.get("rollouts") else ""))
    if result.get("videos_interrupted"):
        raise KeyboardInterrupt(f"the results are kept in {out}; the video replay was cut short")


def interrupted_hint(saved: str) -> str:
    """A Ctrl-C during the video replay comes after the results are written; the message says where."""
    return saved or "nothing more was written"


def eval_name(result: dict[str, Any]) -> str:
    """A file name for an evaluation kept in RUN/evals/: suite, perturbation, run-time options, episodes
    (e.g. `pusht-none-action_horizon16-50ep`); only letters, digits, `.`, `_`, `-`."""
    import re

    options = "-".join(f"{k}{v}" for k, v in sorted(result.get("policy_kwargs", {}).items()))
    parts = [result["suite"], result["perturbation"], options, f"{result['episodes_per_task']}ep"]
    if result.get("exported"):
        parts.append("exported")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in parts if p)).strip("._-") or "eval"


def _eval_shard() -> tuple[int, int]:
    """(rank, world size): under torchrun or accelerate launch, join the process group (gloo: the
    policies run on the CPU) so the episodes are shared and gathered; (0, 1) otherwise."""
    from lwd.training.hardware import launched_world

    if launched_world()[1] == 1:
        return 0, 1
    from accelerate import PartialState

    state = PartialState(cpu=True)
    return state.process_index, state.num_processes
