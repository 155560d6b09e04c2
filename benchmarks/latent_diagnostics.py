"""Latent diagnostics of a trained LWD-family run on a set of demonstrations, as JSON and a plot.

    OMP_NUM_THREADS=1 python benchmarks/latent_diagnostics.py runs/studies/lwd-KEY \
        --data data/heldout.zarr --episodes 10 --out benchmarks/results/latent/NAME.json

Figures (see `lwd.methods.lwd.diagnostics` for their definitions): KL per latent dimension and active
units; z-dependence of the decoded policies for posterior latents of other segments and for latents
the prior generates; behaviour cloning error with posterior vs generated latents; how well generated
latents match the posterior (MMD, nearest-neighbour ratio, off-support share); and how far each
segment's decoded policy drifts from the demonstrated states when run closed-loop for H steps from the
segment's start, with posterior and with generated latents (`lwd.analysis.reconstruct.segment_drift`). Use
demonstrations the run was not trained on (e.g. `lwd demos SUITE --seed-start 5000`).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from lwd.analysis.reconstruct import segment_drift
from lwd.checkpoint import load_model
from lwd.data import Episodes
from lwd.methods.lwd.diagnostics import posterior_report, prior_report
from lwd.provenance import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--data", required=True, help="demonstrations (an lwd demos store with seeds)")
    parser.add_argument("--episodes", type=int, default=10, help="demonstrations to replay for the drift figures")
    parser.add_argument("--out", required=True, help="JSON file (a PNG is written beside it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.run)
    if getattr(model, "vae", None) is None:
        raise SystemExit(f"{args.run} is a {model.name} run: latent diagnostics need a method with a VAE latent (lwd, warpd, lcmlp)")
    model.eval()
    episodes = Episodes.load(args.data)
    dataset = model.segment_dataset(episodes, "pad")
    starts = model.segment_starts(episodes, dataset)
    with torch.no_grad():
        record = {"run": args.run, "data": args.data, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "provenance": provenance(),
                  "posterior": posterior_report(model, dataset, starts), "prior": prior_report(model, dataset, starts)}
    record["drift"] = {kind: segment_drift(args.run, args.data, args.episodes, kind, progress=True) for kind in ("posterior", "prior")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    _plot(record, out.with_suffix(".png"))
    post, prior = record["posterior"], record["prior"]
    print(f"KL {post['kl']:.4g} nats, active units {post['active_units']} of {len(post['kl_per_dim'])}, "
          f"z-dependence posterior {post['z_dependence_posterior']:.3f} / prior {prior['z_dependence_prior']:.3f}, "
          f"BC MSE posterior {post['bc_mse_posterior']:.4g} / prior {prior['bc_mse_prior']:.4g}, "
          f"drift at H posterior {record['drift']['posterior']['drift_at_h']:.4f} / prior {record['drift']['prior']['drift_at_h']:.4f}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


def _plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (kl_ax, drift_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    kl = np.sort(np.asarray(record["posterior"]["kl_per_dim"]))[::-1]
    kl_ax.bar(np.arange(len(kl)), np.maximum(kl, 1e-9))
    kl_ax.set_yscale("log")
    kl_ax.set_xlabel("latent dimension (sorted)")
    kl_ax.set_ylabel("KL (nats)")
    kl_ax.set_title(f"active units {record['posterior']['active_units']} of {len(kl)}", fontsize=9)
    for kind, drift in record["drift"].items():
        steps = np.arange(1, len(drift["drift_per_step"]) + 1)
        drift_ax.plot(steps, drift["drift_per_step"], marker=".", label=f"{kind} latents ({drift['segments']} segments)")
    drift_ax.set_xlabel("steps after the segment's start")
    drift_ax.set_ylabel("state RMS from the demo ([-1, 1] units)")
    drift_ax.set_title("decoded policy run closed-loop from its segment's start", fontsize=9)
    drift_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
