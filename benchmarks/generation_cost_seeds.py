"""Success against FLOPs per control step over training seeds: generation_cost.py results side by side.

    python benchmarks/generation_cost_seeds.py \\
        --group mt10=benchmarks/results/generation-cost-mt10-s0.json,benchmarks/results/generation-cost-mt10-s1.json \\
        --group mt10-basis=benchmarks/results/generation-cost-mt10-basis-s0.json,benchmarks/results/generation-cost-mt10-basis-s1.json \\
        --out benchmarks/results/generation-cost-mt10-seeds.png

generation_cost.py evaluates one trained run; a setting is only worth reporting over seeds. This reads
one result file per seed for each group (a preset, say), and for every (H, DDIM steps) cell that all
of a group's seeds have, prints a markdown row: FLOPs per step (nominal, and measured: what the
policies ran over the steps they took, mean over seeds), each seed's mean success, and their mean.
The plot marks the goal of DESIGN.md (mean success >= 0.95 at <= 480 kFLOPs per measured step).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

GOAL_SUCCESS, GOAL_FLOPS = 0.95, 480_000


def group_rows(files: list[Path]) -> list[dict]:
    """One row per (H, DDIM steps) present in every file, with per-seed success and means."""
    per_file = [{(c["action_horizon"], c["inference_steps"]): c for c in json.loads(f.read_text())["cells"]} for f in files]
    keys = sorted(set.intersection(*(set(cells) for cells in per_file)), key=lambda k: (k[0] or 10**9, k[1]))
    rows = []
    for key in keys:
        cells = [cells[key] for cells in per_file]
        successes = [c["mean_success"] for c in cells]
        rows.append({"action_horizon": key[0], "inference_steps": key[1], "flops_per_step": cells[0]["flops_per_step"],
                     "flops_per_step_measured": sum(c["flops_per_step_measured"] for c in cells) / len(cells),
                     "successes": successes, "mean_success": sum(successes) / len(successes)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group", action="append", required=True, metavar="LABEL=JSON[,JSON...]",
                   help="a label and its per-seed generation_cost.py result files (repeatable)")
    p.add_argument("--out", required=True, help="plot (.png); the table goes to stdout")
    args = p.parse_args()
    groups: dict[str, list[dict]] = {}
    for spec in args.group:
        label, sep, files = spec.partition("=")
        if not sep or not files:
            p.error(f"--group needs LABEL=JSON[,JSON...], got {spec!r}")
        paths = [Path(f) for f in files.split(",")]
        missing = [str(f) for f in paths if not f.exists()]
        if missing:
            p.error(f"--group {label}: no such file {', '.join(missing)}")
        groups[label] = group_rows(paths)
    print("| group | H | DDIM steps | FLOPs/step nominal | FLOPs/step measured | success per seed | mean success |")
    print("|---|---|---|---|---|---|---|")
    for label, rows in groups.items():
        for r in rows:
            within = r["mean_success"] >= GOAL_SUCCESS and r["flops_per_step_measured"] <= GOAL_FLOPS
            mean = f"**{r['mean_success']:.3f}**" if within else f"{r['mean_success']:.3f}"
            print(f"| {label} | {r['action_horizon'] or 'episode'} | {r['inference_steps']} | {r['flops_per_step']:,.0f} | "
                  f"{r['flops_per_step_measured']:,.0f} | {' / '.join(f'{s:.3f}' for s in r['successes'])} | {mean} |")
    _plot(groups, Path(args.out))


def _plot(groups: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, rows in groups.items():
        points = ax.plot([r["flops_per_step_measured"] for r in rows], [r["mean_success"] for r in rows], "o", label=label)
        for r in rows:
            ax.vlines(r["flops_per_step_measured"], min(r["successes"]), max(r["successes"]), color=points[0].get_color(), alpha=0.5)
            ax.annotate(f"H{r['action_horizon'] or 'ep'}/{r['inference_steps']}", (r["flops_per_step_measured"], r["mean_success"]),
                        fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.axvline(GOAL_FLOPS, color="grey", ls="--", lw=0.8)
    ax.axhline(GOAL_SUCCESS, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per control step, measured (labels: H / DDIM steps)")
    ax.set_ylabel("mean success over seeds (bars: seed range)")
    ax.set_title("MT10: success against generation cost (dashed: the goal)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
