"""`lwd calibrate`: the largest push a suite's scripted expert still survives, so perturbation
studies use pushes that a competent policy can recover from."""

from __future__ import annotations

import argparse
import json

from lwd.cli.common import Subcommands, positive
from lwd.outputs import check_writable, write_text_safely


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    c = subcommands.add_parser("calibrate", help="the largest push the suite's scripted expert survives (for fair perturbations)")
    c.add_argument("env", help="suite name, e.g. robomimic/can or pusht")
    c.add_argument("--magnitudes", required=True, help="push sizes to try, in the suite's unit (PushT px, robomimic cm), e.g. 1,2,3")
    c.add_argument("--probability", type=float, default=0.05, help="push probability per step (default 0.05)")
    c.add_argument("--episodes", type=positive, default=50, help="test episodes per task and magnitude (default 50)")
    c.add_argument("--min-success", type=float, default=0.9, help="expert success the push must leave (default 0.9)")
    c.add_argument("--out", default=None, help="results JSON")
    return c


def run(args: argparse.Namespace) -> None:
    from lwd.experiments.calibrate import calibrate_push
    from lwd.suites import make_suite

    if args.out:
        check_writable(args.out)
    magnitudes = [float(m) for m in args.magnitudes.split(",")]
    result = calibrate_push(make_suite(args.env), magnitudes, args.probability, args.episodes, args.min_success)
    for row in result["rows"]:
        print(f"{row['perturbation']:28s} expert success {row['success']:.2f} [{row['low']:.2f}, {row['high']:.2f}] "
              f"({row['successes']}/{row['episodes']})")
    print(f"largest push with expert success >= {args.min_success}: {result['chosen'] or 'none of these'}")
    if args.out:
        from lwd.provenance import provenance

        write_text_safely(args.out, json.dumps({**result, "provenance": provenance()}, indent=2))
