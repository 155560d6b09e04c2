"""`lwd latents`: a 2-D map (PCA, t-SNE) of the posterior latents of demos, as a PNG, to see whether
tasks and styles separate in a weight-generating method's latent space."""

from __future__ import annotations

import argparse

from lwd.cli.common import Subcommands, positive
from lwd.outputs import check_writable


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    lt = subcommands.add_parser("latents", help="2-D map (PCA, t-SNE) of the posterior latents of demos, as a PNG")
    lt.add_argument("run", help="run directory of lwd, warpd or lcmlp")
    lt.add_argument("--data", required=True, help="episode store to encode")
    lt.add_argument("--out", required=True, help="PNG to write")
    lt.add_argument("--stride", type=positive, default=None, help="steps between encoded segments (default: H)")
    return lt


def run(args: argparse.Namespace) -> None:
    from lwd.analysis.latents import latent_map

    check_writable(args.out)
    info = latent_map(args.run, args.data, args.out, args.stride)
    print(f"wrote {info['png']}: {info['points']} segments, coloured by {info['coloured_by']}, {', '.join(info['projections'])}")
