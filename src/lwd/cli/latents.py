"""`lwd latents`: a 2-D map (PCA, t-SNE) of the posterior latents of demos, as a PNG, to see whether
tasks and styles separate in a weight-generating method's latent space."""

from __future__ import annotations

import argparse
import json

from lwd.cli.common import Subcommands, positive
from lwd.outputs import check_writable, write_text_safely


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    lt = subcommands.add_parser("latents", help="2-D map (PCA, t-SNE) of the posterior latents of demos, as a PNG")
    lt.add_argument("run", help="run directory of lwd, warpd or lcmlp")
    lt.add_argument("--data", required=True, help="episode store to encode")
    lt.add_argument("--out", required=True, help="PNG to write")
    lt.add_argument("--stride", type=positive, default=None, help="steps between encoded segments (default: H)")
    lt.add_argument("--json", default=None, help="also write what was plotted and the separability figures here")
    return lt


def run(args: argparse.Namespace) -> None:
    from lwd.analysis.latents import latent_map

    check_writable(args.out)
    if args.json:
        check_writable(args.json)
    info = latent_map(args.run, args.data, args.out, args.stride)
    print(f"wrote {info['png']}: {info['points']} segments, coloured by {info['coloured_by']}, {', '.join(info['projections'])}")
    sep = info["separability"]
    if sep is not None:
        print(f"{info['coloured_by']} told apart by the latent ({sep['k']}-NN vote among other episodes' segments): "
              f"{sep['knn_accuracy']:.3f}, balanced {sep['balanced_accuracy']:.3f} (chance {sep['chance']:.3f} / "
              f"{sep['balanced_chance']:.3f}); recall {', '.join(f'{n} {v:.2f}' for n, v in sep['recall'].items())}")
    if args.json:
        from lwd.provenance import provenance

        write_text_safely(args.json, json.dumps({**info, "run": args.run, "data": args.data, "provenance": provenance()}, indent=2))
