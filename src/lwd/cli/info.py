"""`lwd info`: parameters, FLOPs per control step, latency and config of a trained run, or of an
untrained model from a preset (`METHOD:PRESET --preset-only`: costs need no training)."""

from __future__ import annotations

import argparse
import json

from lwd.cli.common import Subcommands, non_negative, print_rows, runtime_flags, runtime_options, warn


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    i = subcommands.add_parser("info", help="parameters, FLOPs per control step and config of a run")
    i.add_argument("run", help="run directory, or METHOD:PRESET with --preset-only (e.g. dp:paper)")
    i.add_argument("--preset-only", action="store_true", help="cost of an untrained model from a preset (FLOPs need no training)")
    i.add_argument("--dims", default="20,2", help="with --preset-only: OBS_DIM,ACTION_DIM[,NUM_TASKS] (default 20,2: DP's low-dim PushT)")
    i.add_argument("--env", default=None, help="suite whose episode length costs --action-horizon episode (default: the run's)")
    i.add_argument("--config", action="store_true", help="also print the full config")
    i.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --preset-only: change a setting of the preset, as lwd train --set (repeatable), e.g. horizon=36")
    i.add_argument("--latency-steps", type=non_negative, default=2000, help="control steps timed on one CPU thread (0: skip)")
    runtime_flags(i.add_argument_group("run-time options of the methods (the cost at these settings)",
                                       "read from each method's runtime class"))
    return i


def run(args: argparse.Namespace) -> None:
    from lwd.checkpoint import read_run_config
    from lwd.pipeline import preset_info, run_info

    if args.preset_only:
        if args.config:
            raise ValueError("--config prints a trained run's config.json; with --preset-only there is none (drop one of them)")
        method, _, preset = args.run.partition(":")
        try:
            parts = [int(x) for x in args.dims.split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (2, 3) or min(parts[:2]) < 1 or (len(parts) == 3 and parts[2] < 0):
            raise ValueError(f"--dims takes OBS_DIM,ACTION_DIM[,NUM_TASKS] as positive integers, e.g. 20,2; got {args.dims!r}")
        print_rows(preset_info(method, preset or "default", *parts, latency_steps=args.latency_steps, env=args.env,
                               overrides=args.set, **runtime_options(args)))
        return
    if args.set:
        raise ValueError("--set changes a preset's settings for --preset-only; a trained run's settings are fixed")
    from lwd.pipeline import check_training_data

    warn(check_training_data(args.run))
    print_rows(run_info(args.run, latency_steps=args.latency_steps, env=args.env, **runtime_options(args)))
    if args.config:
        print(json.dumps(read_run_config(args.run).to_json(), indent=2))
