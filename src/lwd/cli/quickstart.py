"""`lwd quickstart`: MT10 demos, LWD training and evaluation in one command, for a first look on a CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from lwd.cli.common import Subcommands, positive
from lwd.outputs import check_writable


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    q = subcommands.add_parser("quickstart", help="MT10 demos -> train LWD -> evaluate -> table, JSON and plot (CPU, < 15 min)")
    q.add_argument("--out", default="quickstart-out", help="folder for data, run and results (default: quickstart-out)")
    q.add_argument("--demos", type=positive, default=50, help="expert demonstrations per task (default 50)")
    q.add_argument("--episodes", type=positive, default=50, help="evaluation episodes per task (default 50)")
    q.add_argument("--n-envs", type=positive, default=2, help="parallel env processes for evaluation (default 2)")
    return q


def run(args: argparse.Namespace) -> None:
    from lwd.quickstart import quickstart

    check_writable(args.out, folder=True)
    quickstart(Path(args.out), episodes_per_task=args.demos, eval_episodes=args.episodes, n_envs=args.n_envs)


def interrupted_hint(saved: str) -> str:
    """Every stage is kept as it finishes, so a rerun picks up where Ctrl-C stopped it."""
    return "run it again on the same --out: finished stages are reused and an interrupted training resumed"
