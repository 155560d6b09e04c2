"""`lwd study`: run a study spec (TOML: data x methods x seeds x H x perturbations), each cell cached,
so a study can be run in parts (--only, --seeds, --data, --horizons) and resumed by rerunning it."""

from __future__ import annotations

import argparse
from pathlib import Path

from lwd.cli.common import Subcommands, int_list, positive


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    from lwd.experiments.study import ENGINES

    s = subcommands.add_parser("study", help="run a study spec (TOML): data x methods x seeds x H x perturbations, cached per cell")
    s.add_argument("spec", help="study spec, e.g. benchmarks/studies/robomimic-lift.toml")
    s.add_argument("--jobs", type=positive, default=1, help="training runs in parallel, one thread each (default 1)")
    s.add_argument("--engine", choices=ENGINES, default="local",
                   help="where the training runs go: local (processes here, --jobs; default) or ray (one task each on the "
                        "Ray cluster at --address, whose nodes share this filesystem; pip install -e '.[cluster]'); "
                        "the same cell files either way, so each resumes the other")
    s.add_argument("--address", default=None, help="HOST:PORT of the Ray cluster's head, for --engine ray (default: RAY_ADDRESS)")
    s.add_argument("--dry-run", action="store_true", help="list the cells that would run, run nothing")
    s.add_argument("--only", default=None, help="comma-separated method labels to run now (the rest wait for a later run)")
    s.add_argument("--seeds", default=None, help="comma-separated training seeds to run now, e.g. 0")
    s.add_argument("--data", default=None, help="comma-separated data names of the spec to run now, e.g. clean")
    s.add_argument("--horizons", default=None, help="comma-separated horizons of the spec to run now, e.g. 32 "
                   "(cells without a horizon, like BC's, always pass)")
    s.add_argument("--root", default=None, help="folder for the study's data/, runs/ and benchmarks/results/ "
                   "(default: the repository holding the spec, else the spec's folder; never the working directory)")
    return s


def run(args: argparse.Namespace) -> None:
    from lwd.experiments.study import RESULTS_ROOT, run_study, spec_root

    root = Path(args.root) if args.root else spec_root(args.spec)
    summary = run_study(args.spec, jobs=args.jobs, root=root, dry_run=args.dry_run, only=args.only.split(",") if args.only else None,
                        only_seeds=int_list(args.seeds, "--seeds", 0) if args.seeds else None,
                        only_data=args.data.split(",") if args.data else None,
                        only_horizons=int_list(args.horizons, "--horizons", 1) if args.horizons else None,
                        engine=args.engine, address=args.address)
    if not args.dry_run and "rank" not in summary:
        print(f"study {summary['name']}: {summary['cells_done']} of {summary['cells_planned']} cells done -> "
              f"{root / RESULTS_ROOT / summary['name']}.json, .md, .png")


def interrupted_hint(saved: str) -> str:
    """Finished cells are cached; a rerun skips them and resumes the interrupted training."""
    return "run the same command again: finished cells are kept and interrupted training resumed"
