"""The latent sweep's table: success, coverage score and latent diagnostics per setting, from a study's cells.

    python benchmarks/latent_sweep.py benchmarks/studies/pusht-latent.toml

`lwd study`'s own summary ranks methods by success with intervals; choosing a setting that keeps the
latent informative needs more beside it: the coverage score (PushT's finer measure of precision), and
what the training stages measured about the latent (`lwd.methods.lwd.diagnostics`, kept in every cell's
`training.reports`): total KL, active units, how much the decoded policy depends on z for posterior
and for generated latents, behaviour cloning error with each, and how well generated latents match the
posterior (MMD against held-out posterior latents, the share of samples off their support).

Writes `<results>/<study>-sweep.{json,md,png}` beside the study's own summary. Reads only committed
cells, so it runs on any machine and with any part of the grid done; each row says how many seeds it has.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from statistics import mean
from typing import Any

from lwd.experiments.study import StudySpec, horizon_axes, plan_study, save_with_legend, spec_root
from lwd.experiments.study import _results_dir as results_dir

DIAGNOSTICS = {  # column name -> (stage, key) in a cell's training.reports[stage]["latent"]
    "KL (nats)": ("vae", "kl"),
    "active units": ("vae", "active_units"),
    "z-dep. posterior": ("vae", "z_dependence_posterior"),
    "z-dep. prior": ("prior", "z_dependence_prior"),
    "BC MSE posterior": ("vae", "bc_mse_posterior"),
    "BC MSE prior": ("prior", "bc_mse_prior"),
    "prior MMD": ("prior", "prior_mmd"),
    "off support": ("prior", "off_support"),
}


def load(spec: StudySpec, root: Path) -> list[dict[str, Any]]:
    """The spec's cells that are done (a cell JSON under the study's results folder)."""
    folder = results_dir(spec, root) / "cells"
    cells = plan_study(spec)
    return [json.loads((folder / c.file_name).read_text()) for c in cells if (folder / c.file_name).exists()]


def sweep_rows(spec: StudySpec, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method label: per (H, perturbation) success and score averaged over its seeds,
    and each diagnostic averaged over the seeds' training runs (one report per run, not per cell)."""
    rows: dict[str, dict[str, Any]] = {}
    for rec in records:
        cell = rec["cell"]
        row = rows.setdefault(cell["label"], {"label": cell["label"], "cells": {}, "runs": {}})
        key = f"H{cell['horizon']}|{cell['perturbation']}"
        slot = row["cells"].setdefault(key, {"success": [], "score": [], "seeds": []})
        slot["success"].append(rec["mean_success"])
        slot["score"].append(rec.get("mean_score", float("nan")))
        slot["seeds"].append(cell["seed"])
        row["runs"][cell["seed"]] = rec["training"].get("reports", {})
        row["flops_per_step"] = rec["cost"]["flops_per_step"]
        row["train_seconds"] = row.get("train_seconds", []) + [sum(rec["training"]["seconds"].values())]
    out = []
    for label in spec.methods:  # the spec's order
        if label.label not in rows:
            continue
        row = rows[label.label]
        for slot in row["cells"].values():
            slot["success_mean"] = mean(slot["success"])
            slot["score_mean"] = mean(slot["score"])
        diag = {}
        for name, (stage, key) in DIAGNOSTICS.items():
            values = [r[stage]["latent"][key] for r in row["runs"].values() if key in r.get(stage, {}).get("latent", {})]
            diag[name] = mean(values) if values else None
        row["diagnostics"] = diag
        row["seeds"] = sorted(row["runs"])
        row["runs"] = {str(k): v for k, v in row["runs"].items()}
        out.append(row)
    return out


def markdown(spec: StudySpec, rows: list[dict[str, Any]]) -> str:
    """Two tables: success / score per H and perturbation, then the latent diagnostics."""
    columns = [f"H{h}|{p}" for p in spec.perturbations for h in spec.horizons]
    short = {p: ("clean" if p == "none" else "pushed") for p in spec.perturbations}
    head = "| setting | seeds | " + " | ".join(f"H={c.split('|')[0][1:]} {short[c.split('|')[1]]}" for c in columns) + " |"
    lines = ["Success / mean coverage score (mean over the seeds listed):", "", head, "|" + "---|" * (len(columns) + 2)]
    for row in rows:
        cells = []
        for c in columns:
            slot = row["cells"].get(c) or row["cells"].get(f"HNone|{c.split('|')[1]}")  # every-step methods (BC)
            cells.append("-" if slot is None else f"{slot['success_mean']:.2f} / {slot['score_mean']:.2f}")
        lines.append(f"| {row['label']} | {','.join(map(str, row['seeds']))} | " + " | ".join(cells) + " |")
    lines += ["", "Latent diagnostics (the VAE stage's and the prior stage's reports, mean over seeds):", "",
              "| setting | " + " | ".join(DIAGNOSTICS) + " |", "|" + "---|" * (len(DIAGNOSTICS) + 1)]
    for row in rows:
        values = [("-" if v is None else f"{v:.3g}") for v in row["diagnostics"].values()]
        lines.append(f"| {row['label']} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def plot(spec: StudySpec, rows: list[dict[str, Any]], path: Path) -> None:
    """Score against H per setting, one panel per perturbation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(spec.perturbations), figsize=(5.2 * len(spec.perturbations) + 2, 3.8), squeeze=False)
    for ax, perturb in zip(axes[0], spec.perturbations):
        for i, row in enumerate(rows):
            every_step = row["cells"].get(f"HNone|{perturb}")  # BC: one value at every H
            hs = [h for h in spec.horizons if every_step or f"H{h}|{perturb}" in row["cells"]]
            ys = [(every_step or row["cells"][f"H{h}|{perturb}"])["score_mean"] for h in hs]
            if hs:
                ax.plot(hs, ys, marker="o", color=f"C{i % 10}", ls="-" if i < 10 else "--", label=row["label"])
        horizon_axes(ax, spec.horizons, "mean coverage score", f"{spec.suite}: {perturb}")
    save_with_legend(fig, axes, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", help="a study spec, e.g. benchmarks/studies/pusht-latent.toml")
    parser.add_argument("--root", default=None, help="the study's root (default: the repository holding the spec)")
    args = parser.parse_args()
    spec = StudySpec.load(args.spec)
    root = Path(args.root) if args.root else spec_root(args.spec)
    records = load(spec, root)
    if not records:
        raise SystemExit(f"no cells of {spec.name} are done under {root}")
    rows = sweep_rows(spec, records)
    out = results_dir(spec, root).parent / f"{spec.name}-sweep.json"
    out.write_text(json.dumps({"spec": args.spec, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "cells_done": len(records), "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(markdown(spec, rows))
    plot(spec, rows, out.with_suffix(".png"))
    print(markdown(spec, rows))
    print(f"wrote {out} and its .md, .png ({len(records)} cells)")


if __name__ == "__main__":
    main()
