"""`lwd train`: train a registered method on an episode store into a run directory (also under
torchrun or accelerate launch: every process trains, rank 0 reports)."""

from __future__ import annotations

import argparse
import time

from lwd.cli.common import Subcommands, non_negative, overwrite_flag, positive, print_rows
from lwd.outputs import check_writable


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    from lwd.methods import method_names

    t = subcommands.add_parser("train", help="train a method on a dataset", epilog=_presets_epilog(),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("method", choices=method_names())
    t.add_argument("--data", required=True, help="episode store written by `lwd demos` (or an imported dataset)")
    t.add_argument("--out", required=True, help="run directory to create")
    t.add_argument("--preset", default="default", help="named settings: presets.py in the method folder (e.g. mt10-quick, mt10)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a method setting (repeatable)")
    t.add_argument("--train-set", action="append", metavar="KEY=VALUE", help="override an optimiser setting (repeatable)")
    t.add_argument("--seed", type=non_negative, default=None, help="training seed (overrides the preset)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    t.add_argument("--eval-every", type=non_negative, default=0, help="evaluate every N steps during training (0: never)")
    t.add_argument("--eval-episodes", type=positive, default=5, help="episodes per task for --eval-every")
    t.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="where to train: auto (a GPU when present, else CPU); evaluation always runs the policy on the CPU")
    t.add_argument("--precision", choices=["no", "bf16", "fp16"], default="no", help="mixed precision (fp16 needs a GPU; default no)")
    t.add_argument("--threads", type=non_negative, default=1,
                   help="torch CPU threads per process (default 1: more collapse when other processes share the cores; 0: torch's default)")
    t.add_argument("--grad-accum", type=positive, default=1,
                   help="micro-batches per step: the same global batch in smaller pieces (less memory, same samples)")
    overwrite_flag(t, "run (trained, or interrupted and not resumed)")
    return t


def _presets_epilog() -> str:
    """`lwd train --help`'s list of every method's presets (what `--preset` takes), one line per method."""
    import textwrap

    from lwd.methods import get_method, method_names

    lines = ["presets (--preset; lwd info METHOD:PRESET --preset-only prints what one sets):"]
    for name in method_names():
        lines += textwrap.wrap(", ".join(get_method(name).presets), width=100, initial_indent=f"  {name}: ",
                               subsequent_indent=" " * (len(name) + 4))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    from lwd.pipeline import run_info, train_run
    from lwd.training.hardware import Hardware, launched_world

    hardware = Hardware(args.device, args.precision, args.threads, args.grad_accum)
    rank, world = launched_world()
    check_writable(args.out, folder=True)
    t0 = time.perf_counter()
    train_run(args.method, args.data, args.out, args.preset, args.set or [], args.train_set or [], args.seed,
              args.resume, progress=rank == 0, eval_every=args.eval_every, eval_episodes=args.eval_episodes, hardware=hardware,
              overwrite=args.overwrite)
    if rank > 0:
        return  # rank 0 reports
    print(f"trained {args.method} in {time.perf_counter() - t0:.1f} s" + (f" on {world} processes" if world > 1 else "")
          + f" -> {args.out}")
    print_rows(run_info(args.out))


def interrupted_hint(saved: str) -> str:
    """Training raises KeyboardInterrupt with where it saved its state; --resume continues from there."""
    if saved:
        return f"{saved}; run the same command with --resume to continue"
    return "no training state was saved yet; start the command again"
