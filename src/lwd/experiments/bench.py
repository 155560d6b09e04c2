"""`lwd bench`: methods x action horizons x perturbations on one benchmark, side by side.

Every cell uses the same demonstrations, the same training seed and the same test episodes
(task, seed), so differences come from the methods. What the action horizon H means is each
method's own business (`Method.bench_cell`): LWD regenerates its policy every H steps (one trained
model); Diffusion Policy executes H actions between replans (one model per prediction horizon it
needs; `dp-ddim` evaluates it with DDIM); BC acts every step, so H does not apply (evaluated once,
drawn as a flat line). A method is named as `NAME` or `NAME-VARIANT` (see `bench_variants`).
Writes grid.json (every figure + provenance), grid.md (a table) and two plots.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lwd.data import Episodes
from lwd.methods.base import RuntimeOptions, get_method, method_names
from lwd.provenance import provenance


@dataclass(frozen=True)
class CellPlan:
    """One bench cell: which run to train (or reuse) and how to evaluate it."""

    label: str
    """The method as the bench names it, e.g. "dp-ddim"."""
    method: str
    horizon: int | None
    """None when the method's behaviour does not depend on H."""
    perturbation: str
    preset: str
    overrides: tuple[str, ...]
    run_name: str
    runtime: RuntimeOptions


def split_label(label: str) -> tuple[str, str]:
    """"dp-ddim" -> ("dp", "ddim"); "lwd" -> ("lwd", "")."""
    name, _, variant = label.partition("-")
    return name, variant


def bench_labels() -> list[str]:
    """Every method name `lwd bench` accepts, variants included."""
    labels = []
    for name in method_names():
        labels += [f"{name}-{v}" if v else name for v in get_method(name).bench_variants]
    return labels


def plan_cells(methods: list[str], horizons: list[int], perturbations: list[str], presets: dict[str, str],
               overrides: dict[str, list[str]], seed: int, ddim_steps: int) -> list[CellPlan]:
    """The cells of a bench in run order (method, then perturbation, then H), each mapped by its
    method onto a training run and run-time options. Presets and overrides are keyed by method name."""
    from lwd.pipeline import build_configs

    if not horizons or any(h <= 0 for h in horizons):
        raise ValueError("--horizons needs positive integers, e.g. 8,16,32")
    known = bench_labels()
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown bench method(s) {unknown}; known: {', '.join(known)}")
    cells = []
    for label in methods:
        name, variant = split_label(label)
        cls = get_method(name)
        preset = presets.get(name, "default")
        base_overrides = tuple(overrides.get(name, []))
        cfg, _ = build_configs(name, preset, base_overrides)
        for perturb in perturbations:
            for horizon in horizons:
                cell = cls.bench_cell(variant, horizon, cfg, ddim_steps)
                if cell is None:  # H does not apply: one cell, evaluated as trained
                    cells.append(CellPlan(label, name, None, perturb, preset, base_overrides, f"{name}--s{seed}",
                                          cls.runtime_options()))
                    break
                cells.append(CellPlan(label, name, horizon, perturb, preset, base_overrides + cell.overrides,
                                      f"{name}-{cell.run_tag}-s{seed}", cell.runtime))
    return cells


def run_bench(
    env: str,
    data: str | Path,
    out: str | Path,
    methods: list[str],
    horizons: list[int],
    perturbations: list[str],
    episodes: int,
    presets: dict[str, str],
    overrides: dict[str, list[str]],
    seed: int = 0,
    n_envs: int = 1,
    ddim_steps: int = 10,
    progress: bool = True,
    latency_steps: int = 400,
    batch_plans: bool = False,
    vector: str | None = None,
) -> dict[str, Any]:
    cells = plan_cells(methods, horizons, perturbations, presets, overrides, seed, ddim_steps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    Episodes.load(data)  # fail early on a bad dataset
    done: list[dict[str, Any]] = []
    started = time.perf_counter()
    grid: dict[str, Any] = {}
    for plan in cells:
        run_dir = trained_run(plan, data, out / "runs", seed, progress)
        done.append(run_cell(plan, run_dir, env, episodes, n_envs, vector, progress, latency_steps, batch_plans))
        grid = {"env": env, "data": str(data), "seed": seed, "episodes_per_task": episodes, "n_envs": n_envs, "batch_plans": batch_plans,
                "cells": done, "seconds": round(time.perf_counter() - started, 1), "provenance": provenance()}
        (out / "grid.json").write_text(json.dumps(grid, indent=2))
        if progress:
            print(f"{plan.label} H={plan.horizon} perturb={plan.perturbation}: success {done[-1]['mean_success']:.3f}", flush=True)
    (out / "grid.md").write_text(markdown_table(grid))
    plot_grid(grid, out)
    return grid


def trained_run(plan: CellPlan, data: str | Path, runs: Path, seed: int, progress: bool) -> Path:
    """The run directory of a cell: reused when it holds a run trained with exactly these settings,
    resumed when interrupted, trained otherwise."""
    from lwd.checkpoint import has_train_state
    from lwd.pipeline import train_run

    run_dir = runs / plan.run_name
    if (run_dir / "model.safetensors").exists():
        check_reuse(run_dir, plan.method, plan.preset, list(plan.overrides), seed)
    else:
        train_run(plan.method, data, run_dir, preset=plan.preset, overrides=list(plan.overrides), seed=seed,
                  resume=has_train_state(run_dir), progress=progress)
    return run_dir


def run_cell(plan: CellPlan, run_dir: Path, env: str, episodes: int, n_envs: int, vector: str | None, progress: bool,
             latency_steps: int, batch_plans: bool) -> dict[str, Any]:
    """Evaluate one cell; its figures as grid.json stores them."""
    from lwd.pipeline import evaluate_run

    t0 = time.perf_counter()
    result = evaluate_run(run_dir, env=env, episodes=episodes, n_envs=n_envs, perturb=plan.perturbation if plan.perturbation != "none" else None,
                          vector=vector or ("async" if n_envs > 1 else "sync"), progress=progress,
                          batch_plans=batch_plans, **plan.runtime.given())
    cell = {
        "method": plan.label, "horizon": plan.horizon, "perturbation": plan.perturbation, "run_dir": str(run_dir),
        "mean_success": result["mean_success"], "per_task": result["per_task"], "cost": result["cost"],
        "episodes": result["episodes"], "seconds": round(time.perf_counter() - t0, 1),
    }
    if latency_steps > 0:  # wall clock per control step, one CPU thread, same runtime settings
        from lwd.checkpoint import load_model
        from lwd.evaluation.latency import measure_latency

        cell["cost"].update(measure_latency(load_model(run_dir), plan.runtime, steps=latency_steps))
    for key in ("mean_score", "mean_final_score"):  # benchmark-specific extra metrics, when the evaluator reports them
        if key in result:
            cell[key] = result[key]
    return cell


def check_reuse(run_dir: Path, method: str, preset: str, overrides: list[str], seed: int, train_overrides: list[str] = ()) -> None:
    """A cached run is reused only if it was trained with exactly the settings this bench asks for.

    Compared as typed configs, so settings added to lwd after the run was trained compare at their
    defaults (which is how the run's model loads and behaves) instead of as a mismatch."""
    from lwd.checkpoint import read_run_config
    from lwd.pipeline import build_configs

    cfg, train_cfg = build_configs(method, preset, overrides, train_overrides, seed=seed)
    run = read_run_config(run_dir)
    if run.method != method or run.method_config != cfg or run.train != train_cfg:
        raise ValueError(f"{run_dir} was trained with other settings than this bench asks for; remove it or use another --out")


def has_informative_score(cells: list[dict[str, Any]]) -> bool:
    """Whether the cells carry a score that says more than success does.

    PushT's score (coverage) does; robomimic's env score is float(success), and printing it would
    only repeat the success columns.
    """
    return all("mean_score" in c for c in cells) and any(abs(c["mean_score"] - c["mean_success"]) > 1e-9 for c in cells)


def markdown_table(grid: dict[str, Any]) -> str:
    """One row per (method, H): success per perturbation (and the score, where the suite has one), costs."""
    perturbs = list(dict.fromkeys(c["perturbation"] for c in grid["cells"]))
    scored = has_informative_score(grid["cells"])
    header = "| method | H | " + " | ".join(f"success ({p})" for p in perturbs)
    if scored:
        header += " | " + " | ".join(f"score ({p})" for p in perturbs)
    lines = [header + " | FLOPs / step | params per step | latency median / p95 (µs) |",
             "|---|---|" + "---|" * (len(perturbs) * (2 if scored else 1)) + "---|---|---|"]
    keys = list(dict.fromkeys((c["method"], c["horizon"]) for c in grid["cells"]))
    for method, horizon in keys:
        row = [c for c in grid["cells"] if c["method"] == method and c["horizon"] == horizon]
        by_p = {c["perturbation"]: c for c in row}
        cells = [f"{by_p[p]['mean_success']:.3f}" if p in by_p else "-" for p in perturbs]
        if scored:
            cells += [f"{by_p[p]['mean_score']:.3f}" if p in by_p else "-" for p in perturbs]
        cost = row[0]["cost"]
        lines.append(f"| {method} | {horizon if horizon is not None else 'every step'} | " + " | ".join(cells)
                     + f" | {cost['flops_per_step']:,.0f} | {cost['params_per_step']:,} | "
                     + (f"{cost['latency_us_median']:,.0f} / {cost['latency_us_p95']:,.0f} |" if "latency_us_median" in cost else "- |"))
    return "\n".join(lines) + "\n"


def plot_grid(grid: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = grid["cells"]
    horizons = sorted({c["horizon"] for c in cells if c["horizon"] is not None})
    metrics = [("mean_success", "success rate")]
    if has_informative_score(cells):
        metrics.append(("mean_score", "score (max coverage / 0.95, clipped)"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics) + 3.5, 4.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        for i, method in enumerate(dict.fromkeys(c["method"] for c in cells)):
            for j, perturb in enumerate(dict.fromkeys(c["perturbation"] for c in cells)):
                rows = [c for c in cells if c["method"] == method and c["perturbation"] == perturb]
                if not rows:
                    continue
                if rows[0]["horizon"] is None:
                    xs, ys = horizons, [rows[0][key]] * len(horizons)
                else:
                    rows.sort(key=lambda c: c["horizon"])
                    xs, ys = [c["horizon"] for c in rows], [c[key] for c in rows]
                lone = len(xs) == 1  # a method run at one H only: a large marker drawn on top, so no curve hides it
                ax.plot(xs, ys, marker="D" if lone else "o", markersize=9 if lone else 6, zorder=3 if lone else 2,
                        mfc="none" if lone and j else f"C{i}", color=f"C{i}", ls="-" if j == 0 else "--", label=f"{method} ({perturb})")
        ax.set_xscale("log", base=2)
        ax.set_xticks(horizons)
        ax.set_xticklabels([str(h) for h in horizons])
        ax.set_xlabel("action horizon H (steps between generations / replans)")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{grid['env']}: {label.split(' (')[0]} against action horizon", fontsize=10)
        ax.grid(alpha=0.3)
    # One legend beside the last panel, so it never hides a curve.
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(out / "success_vs_horizon.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    labels, values = [], []
    for c in cells:
        if c["perturbation"] != cells[0]["perturbation"]:
            continue
        labels.append(f"{c['method']}\nH={c['horizon'] if c['horizon'] is not None else '-'}")
        values.append(c["cost"]["flops_per_step"])
    ax.bar(range(len(values)), values, color=[f"C{list(dict.fromkeys(c['method'] for c in cells)).index(lbl.split(chr(10))[0])}" for lbl in labels])
    ax.set_yscale("log")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("FLOPs per control step (FlopCounterMode)")
    ax.set_title("inference cost per control step")
    fig.tight_layout()
    fig.savefig(out / "flops_per_step.png", dpi=110)
    plt.close(fig)
