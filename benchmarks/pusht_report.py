"""Merge the PushT bench grids (benchmarks/results/pusht-bench-*.json) into one table and one plot.

The study ran as several `lwd bench pusht` invocations (the main LWD/DP grid, DP with DDIM in
parallel on the second core, and LWD ablations, each with its own --out); each grid keeps its own
command line and commit. This script only relabels and merges what they measured:

    python benchmarks/pusht_report.py            # prints the Markdown table, writes docs/pusht-*.png
"""

from __future__ import annotations

import json
from pathlib import Path

from lwd.bench import markdown_table, plot_grid

RESULTS = Path(__file__).parent / "results"
DOCS = Path(__file__).parent.parent / "docs"
# file -> {method in that grid: label in the merged table}
SOURCES = {
    "pusht-bench-main.json": {"lwd": "lwd (1 obs, H_train 32)", "dp": "dp DDPM-100"},
    "pusht-bench-dp-ddim.json": {"dp-ddim": "dp DDIM-10"},
    "pusht-bench-lwd-hist-h32.json": {"lwd": "lwd (2 obs, H_train 32)"},
    "pusht-bench-lwd-hist-h16.json": {"lwd": "lwd (2 obs, H_train 16) = preset"},
    "pusht-bench-lwd-hist-h8.json": {"lwd": "lwd (2 obs, H_train 8)"},
}


def merged() -> dict:
    cells = []
    for name, labels in SOURCES.items():
        path = RESULTS / name
        if not path.exists():
            print(f"(missing {name})")
            continue
        for cell in json.loads(path.read_text())["cells"]:
            if cell["method"] in labels:
                cells.append({**cell, "method": labels[cell["method"]]})
    return {"env": "pusht", "cells": cells}


def main() -> None:
    grid = merged()
    print(markdown_table(grid))
    out = DOCS / "pusht-bench"
    out.mkdir(parents=True, exist_ok=True)
    plot_grid(grid, out)
    print(f"plots: {out}/success_vs_horizon.png, {out}/flops_per_step.png")


if __name__ == "__main__":
    main()
