"""`lwd export`: a trained run's controller (npz, c, the method's own formats such as LWD's onnx),
for a robot without torch. `lwd export robomimic|lerobot DATA`, the spelling before `lwd
export-data`, still works and says so: scripts written for it keep running."""

from __future__ import annotations

import argparse
import sys

from lwd.cli import export_data
from lwd.cli.common import Subcommands, overwrite_flag, positive
from lwd.outputs import check_writable


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    ex = subcommands.add_parser("export", help="a trained run's controller, for a robot without torch (NumPy, C, ONNX)")
    ex.add_argument("target", metavar="RUN", help="run directory of a method that generates policy weights "
                                                  "(robomimic|lerobot DATA: deprecated spelling of lwd export-data)")
    ex.add_argument("data", nargs="?", default=None, help=argparse.SUPPRESS)
    ex.add_argument("--format", default=None, help="npz (the controller for lwd_controller.py, NumPy only), c "
                                                   "(lwd_controller.c/.h and a Makefile: C99, no dependencies), or the "
                                                   "method's own (LWD: onnx, controller.onnx taking the weights as an "
                                                   "input, and generator.onnx; a run on camera frames also has encoder: "
                                                   "encoder.onnx, frames in, the features its controllers take)")
    ex.add_argument("--out", required=True, help="the controller folder (other formats' files may share it)")
    ex.add_argument("--inference-steps", type=positive, default=None, metavar="N",
                    help="--format onnx: the denoising steps generator.onnx runs (default: the run's); a generator "
                         "is exported for one sampler length, so export the one you deploy (lwd eval --exported checks it)")
    ex.add_argument("--fps", type=positive, default=10, help=argparse.SUPPRESS)  # for the deprecated dataset spelling
    ex.add_argument("--frames", choices=("video", "image"), default="video", help=argparse.SUPPRESS)  # likewise
    overwrite_flag(ex, "exported files of this --format in the folder")
    return ex


def run(args: argparse.Namespace) -> None:
    """A trained run's controller in --format; the deprecated dataset spelling is handed to export-data."""
    if args.target in export_data.DATA_FORMATS:
        print(f"lwd export: `lwd export {args.target} DATA` is deprecated; use `lwd export-data {args.target} DATA`",
              file=sys.stderr)
        if args.data is None:
            raise ValueError(f"lwd export-data {args.target} needs the episode store to export: "
                             f"lwd export-data {args.target} DATA --out ...")
        args.format = args.target
        export_data.run(args)
        return
    from lwd.deploy.export import export_run

    if args.data is not None:
        raise ValueError("export a run with: lwd export RUN --format FORMAT --out DIR "
                         "(datasets: lwd export-data robomimic|lerobot DATA --out ...)")
    options = {}
    if args.inference_steps is not None:
        if args.format != "onnx":
            raise ValueError(f"--inference-steps sets the steps of the ONNX generator; it applies to --format onnx, "
                             f"not {args.format or 'no format'} (the npz and c controllers take weights, not noise)")
        options["inference_steps"] = args.inference_steps
    check_writable(args.out, folder=True)
    print(export_run(args.target, args.format or "", args.out, overwrite=args.overwrite, **options)[1])  # lists the run's formats
