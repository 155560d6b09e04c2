"""`lwd demos`: collect a suite's scripted-expert demonstrations into a zarr episode store."""

from __future__ import annotations

import argparse
import time

from lwd.cli.common import Subcommands, non_negative, overwrite_flag, positive
from lwd.outputs import check_writable, refuse_existing


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    d = subcommands.add_parser("demos", help="collect expert demonstrations into a zarr episode store")
    d.add_argument("env", help="suite name: pusht, pusht/state, robomimic/lift|can|square, metaworld/mt10, metaworld/<task>-v3")
    d.add_argument("--episodes", type=positive, default=50, help="successful episodes per task")
    d.add_argument("--out", required=True, help="output path (.zarr directory or .zarr.zip)")
    d.add_argument("--seed-start", type=non_negative, default=0, help="first episode seed (evaluation uses 100000+)")
    d.add_argument("--keep-failures", action="store_true", help="also keep episodes where the expert failed")
    d.add_argument("--dart-noise", type=float, default=0.0, metavar="STD",
                   help="recovery data: execute the expert's action plus noise of STD x half the action range, "
                        "record the clean action (DART); default 0")
    d.add_argument("--perturb", default=None, help="recovery data: demonstrate under a perturbation, e.g. object-push:1:0.05; "
                                                    "the expert's recoveries are kept")
    d.add_argument("--styles", default=None, metavar="MIX",
                   help="mix the expert's styles per episode: all, A,B (equal) or A:0.7,B:0.3 (normalised); "
                        "records a per-step 'style' id; default: the single default expert (pusht: planner, "
                        "rotate-first, translate-first; robomimic/lift: waypoint, other-grasp, slow; "
                        "metaworld MT10 tasks: scripted, lift-first, slow)")
    overwrite_flag(d, "dataset")
    return d


def run(args: argparse.Namespace) -> None:
    from lwd.demos import parse_styles, write_demos
    from lwd.suites import make_suite

    refuse_existing(args.out, args.overwrite)
    check_writable(args.out)
    suite = make_suite(args.env)
    styles = parse_styles(args.styles, suite) if args.styles is not None else None
    t0 = time.perf_counter()
    episodes = write_demos(suite, args.out, args.episodes, seed_start=args.seed_start, keep_failures=args.keep_failures,
                           dart_noise=args.dart_noise, perturb=args.perturb, styles=styles)  # image frames: to disk per episode
    path = args.out
    lengths = episodes.lengths
    print(f"wrote {episodes.num_episodes} episodes ({episodes.num_steps} steps, length {lengths.min()}-{lengths.max()}, "
          f"mean {lengths.mean():.0f}) to {path} in {time.perf_counter() - t0:.1f} s")
