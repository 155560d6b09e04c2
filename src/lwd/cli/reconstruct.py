"""`lwd reconstruct`: encode demos, decode their policies and replay them from the demos' own starts,
which tells whether a weight-generating method's latent space can express the demonstrated behaviour."""

from __future__ import annotations

import argparse
import json

from lwd.cli.common import Subcommands, positive
from lwd.outputs import check_writable, write_text_safely


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    r = subcommands.add_parser("reconstruct", help="encode demos, decode their policies, replay them from the demos' starts")
    r.add_argument("run", help="run directory of lwd, warpd or lcmlp")
    r.add_argument("--data", required=True, help="demos written by `lwd demos` (use seeds the run was not trained on, e.g. --seed-start 5000)")
    r.add_argument("--episodes", type=positive, default=10, help="demos per task (default 10)")
    r.add_argument("--env", default=None, help="suite (default: the data's)")
    r.add_argument("--out", default=None, help="results JSON")
    return r


def run(args: argparse.Namespace) -> None:
    """Encode demonstrations, decode their policies, run them from the demonstrations' own starts."""
    from tabulate import tabulate

    from lwd.analysis.reconstruct import reconstruct

    if args.out:
        check_writable(args.out)
    result = reconstruct(args.run, args.data, args.episodes, args.env)
    rows = [[task, f"{v['success_rate']:.2f}", v["episodes"], f"{v['state_rmse']:.3f}"] for task, v in result["per_task"].items()]
    rows.append(["mean", f"{result['mean_success']:.3f}", len(result["episodes"]), f"{result['mean_state_rmse']:.3f}"])
    print(tabulate(rows, headers=["task", "success", "demos", "state RMS error (normalised)"]))
    if not result["starts_matched"]:
        print("warning: some env resets did not reproduce the demonstration's first observation")
    if args.out:
        from lwd.provenance import provenance

        write_text_safely(args.out, json.dumps({**result, "provenance": provenance()}, indent=2))
        print(f"wrote {args.out}")
