"""`lwd bench`: methods x action horizons x perturbations on one dataset, side by side -> grid.json,
grid.md and plots. Finished runs are reused, so an interrupted bench is continued by rerunning it."""

from __future__ import annotations

import argparse
from pathlib import Path

from lwd.cli.common import Subcommands, int_list, non_negative, positive
from lwd.outputs import check_writable


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    from lwd.experiments.bench import bench_labels

    b = subcommands.add_parser("bench", help="methods x action horizons x perturbations, side by side -> JSON, table, plots")
    b.add_argument("env", help="suite name, e.g. pusht, robomimic/lift or metaworld/mt10")
    b.add_argument("--data", required=True, help="episode store all methods train on")
    b.add_argument("--out", required=True, help="folder for runs/, grid.json, grid.md and plots")
    b.add_argument("--methods", default="lwd,dp", help=f"comma-separated: {', '.join(bench_labels())}")
    b.add_argument("--horizons", default="8,16,32", help="action horizons H")
    b.add_argument("--perturb", default="none", help="comma-separated perturbations, e.g. none,action-noise:0.1")
    b.add_argument("--episodes", type=positive, default=50, help="episodes per task per cell")
    b.add_argument("--presets", default="", help="per-method presets, e.g. lwd=mt10-quick,dp=cpu,bc=mt10-quick")
    b.add_argument("--set", action="append", metavar="METHOD:KEY=VALUE", help="override a method setting (repeatable)")
    b.add_argument("--seed", type=non_negative, default=0, help="training seed shared by all methods")
    b.add_argument("--n-envs", type=positive, default=1, help="parallel envs per evaluation")
    b.add_argument("--ddim-steps", type=positive, default=10, help="DDIM steps for dp-ddim")
    b.add_argument("--latency-steps", type=non_negative, default=400, help="control steps timed per cell on one CPU thread (0: skip)")
    b.add_argument("--batch-plans", action="store_true", help="DP: batch replans across envs (see lwd eval --help)")
    b.add_argument("--vector", choices=["sync", "async"], default=None,
                   help="vector env kind (default: async with --n-envs > 1; sync suits fast simulators such as PushT)")
    return b


def run(args: argparse.Namespace) -> None:
    from lwd.experiments.bench import run_bench

    check_writable(args.out, folder=True)
    overrides: dict[str, list[str]] = {}
    for item in args.set or []:
        method, sep, setting = item.partition(":")
        if not sep:
            raise ValueError(f"--set takes METHOD:KEY=VALUE, got {item!r}")
        overrides.setdefault(method, []).append(setting)
    grid = run_bench(args.env, args.data, args.out, args.methods.split(","), int_list(args.horizons, "--horizons", 1),
                     args.perturb.split(","), args.episodes, _pairs(args.presets), overrides, args.seed, args.n_envs, args.ddim_steps,
                     latency_steps=args.latency_steps, batch_plans=args.batch_plans, vector=args.vector)
    print((Path(args.out) / "grid.md").read_text())
    print(f"bench done in {grid['seconds']:.0f} s -> {args.out}/grid.json, success_vs_horizon.png, flops_per_step.png")


def interrupted_hint(saved: str) -> str:
    """Each cell's run is kept as it finishes; a rerun skips those and resumes the interrupted one."""
    return "run the same command again: finished runs are reused and interrupted ones resumed"


def _pairs(text: str | None) -> dict[str, str]:
    """--presets' `method=preset,...` as a dict, refusing an item without `=`."""
    out = {}
    for item in (text or "").split(","):
        if item:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"expected method=value pairs, got {item!r}")
            out[key] = value
    return out
