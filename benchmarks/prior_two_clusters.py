"""Does LWD's latent prior reproduce a multimodal posterior? The two-cluster check, over priors and samplers.

Trains the prior alone (`lwd.methods.lwd.prior_check`) on 4,000 latents in two clusters (70 / 30,
64-d, centres 6 apart, spread 0.25) under one state condition, for each prior setting given, and
samples 2,000 latents with each sampler. Writes a JSON of where the samples land (inside a cluster's
own spread, between the clusters, each cluster's share) and a plot of the samples' coordinate along
the line through the two centres against the data's.

    OMP_NUM_THREADS=1 python benchmarks/prior_two_clusters.py --out benchmarks/results/prior-two-clusters.json \
        --prior default --prior prior_steps=10000 --prior prior_lr=1e-3
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from lwd.config import apply_overrides
from lwd.methods.lwd.config import LWDConfig
from lwd.methods.lwd.prior_check import TwoClusters, train_prior_on_clusters

SAMPLERS = [("ddim", 10, 0.0), ("ddim", 10, 1.0), ("ddim", 20, 0.0), ("ddim", 20, 1.0), ("ddim", 100, 0.0), ("ddpm", 100, None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write (a PNG beside it)")
    parser.add_argument("--prior", action="append", default=[],
                        help="prior settings as comma-separated key=value overrides of LWDConfig(condition='state'), or 'default'")
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    clusters = TwoClusters()
    results = []
    for spec in args.prior or ["default"]:
        overrides = [] if spec == "default" else spec.split(",")
        cfg = apply_overrides(LWDConfig(condition="state"), overrides)
        start = time.perf_counter()
        prior = train_prior_on_clusters(cfg, clusters)
        seconds = time.perf_counter() - start
        for sampler, steps, eta in SAMPLERS:
            run_cfg = cfg if eta is None else apply_overrides(cfg, [f"ddim_eta={eta}"])
            prior.model.cfg = run_cfg
            fit = prior.measure(samples=args.samples, sampler=sampler, steps=steps)
            row = {"prior": spec, "train_seconds": round(seconds, 1), "sampler": sampler, "steps": steps, "eta": eta,
                   **fit.to_json(), "passes": fit.inside >= 0.95 and all(abs(s - d) <= 0.1 for s, d in zip(fit.shares, fit.data_shares)),
                   "along": _along(fit.samples, prior.centres).tolist()}
            results.append(row)
            print(f"{spec:>24} {sampler}-{steps} eta={eta}: inside {fit.inside:.3f} between {fit.between:.3f} "
                  f"shares {fit.shares[0]:.3f}/{fit.shares[1]:.3f} (data {fit.data_shares[0]:.3f}/{fit.data_shares[1]:.3f})",
                  flush=True)
        data_along = _along(prior.latents, prior.centres)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": "python benchmarks/prior_two_clusters.py " + " ".join(f"--prior {p}" for p in args.prior),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
              "clusters": clusters.__dict__, "samples": args.samples,
              "rows": [{k: v for k, v in r.items() if k != "along"} for r in results]}
    out.write_text(json.dumps(record, indent=2))
    _plot(results, data_along, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


def _along(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Coordinate along the line from centre 0 (at 0) to centre 1 (at 1)."""
    axis = centres[1] - centres[0]
    return (x - centres[0]) @ axis / float(axis @ axis)


def _plot(rows: list[dict], data_along: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    priors = list(dict.fromkeys(r["prior"] for r in rows))
    fig, axes = plt.subplots(len(priors), 1, figsize=(8, 2.6 * len(priors)), squeeze=False)
    bins = np.linspace(-0.5, 1.5, 81)
    for ax, prior in zip(axes[:, 0], priors):
        ax.hist(data_along, bins=bins, density=True, color="0.8", label="posterior latents (data)")
        for r in rows:
            if r["prior"] == prior and (r["sampler"], r["steps"], r["eta"]) in {("ddim", 10, 0.0), ("ddim", 10, 1.0), ("ddpm", 100, None)}:
                label = f"{r['sampler']}-{r['steps']}" + ("" if r["eta"] is None else f" eta={r['eta']:g}") + f": {r['inside']:.2f} inside"
                ax.hist(r["along"], bins=bins, density=True, histtype="step", linewidth=1.4, label=label)
        ax.set_title(f"prior: {prior}", fontsize=9)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("coordinate along the line through the two cluster centres (0 and 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
