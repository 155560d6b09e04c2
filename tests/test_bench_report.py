"""The bench's table and plots: every cell appears, the score columns appear only where there is a score."""

from __future__ import annotations

from lwd.experiments.bench import markdown_table, plot_grid


def _cell(method, horizon, perturb, success, score=None):
    cell = {"method": method, "horizon": horizon, "perturbation": perturb, "mean_success": success,
            "cost": {"flops_per_step": 1000.0 * (horizon or 1), "params_per_step": 10}}
    if score is not None:
        cell["mean_score"] = score
    return cell


def test_table_has_a_success_and_a_score_column_per_perturbation(tmp_path):
    cells = [_cell(m, h, p, 0.1 * h / 8, 0.5 + 0.01 * h) for m in ("lwd", "dp") for p in ("none", "block-push:20") for h in (8, 16)]
    grid = {"env": "pusht", "cells": cells}
    table = markdown_table(grid)
    lines = table.strip().splitlines()
    assert "score (block-push:20)" in lines[0] and "success (none)" in lines[0]
    assert len(lines) == 2 + 4  # header, rule, one row per (method, H)
    assert "| dp | 16 | 0.200 | 0.200 | 0.660 | 0.660 |" in table
    plot_grid(grid, tmp_path)
    assert (tmp_path / "success_vs_horizon.png").stat().st_size > 0 and (tmp_path / "flops_per_step.png").exists()


def test_table_without_scores_has_no_score_columns(tmp_path):
    grid = {"env": "metaworld/mt10", "cells": [_cell("lwd", 8, "none", 0.9), _cell("bc", None, "none", 0.95)]}
    table = markdown_table(grid)
    assert "score" not in table and "| bc | every step | 0.950 |" in table
    plot_grid(grid, tmp_path)


def test_a_score_that_only_repeats_success_gets_no_columns(tmp_path):
    """Robomimic's env score is float(success): the table must not print it twice."""
    cells = [_cell(m, 8, p, 0.5, 0.5) for m in ("lwd", "dp") for p in ("none", "object-push:3:0.05")]
    grid = {"env": "robomimic/lift", "cells": cells}
    table = markdown_table(grid)
    assert "score" not in table and table.splitlines()[2].count("0.500") == 2
    plot_grid(grid, tmp_path)


def test_generation_cost_over_seeds_keeps_only_cells_every_seed_has(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "generation_cost_seeds.py"
    spec = importlib.util.spec_from_file_location("generation_cost_seeds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def cell(h, k, success, measured):
        return {"action_horizon": h, "inference_steps": k, "mean_success": success, "flops_per_step": 1000.0 * k / max(h, 1),
                "flops_per_step_measured": measured}

    (tmp_path / "s0.json").write_text(json.dumps({"cells": [cell(32, 2, 0.9, 100.0), cell(8, 2, 0.8, 300.0), cell(0, 1, 0.5, 50.0)]}))
    (tmp_path / "s1.json").write_text(json.dumps({"cells": [cell(8, 2, 1.0, 500.0), cell(32, 2, 0.96, 200.0)]}))
    rows = module.group_rows([tmp_path / "s0.json", tmp_path / "s1.json"])
    assert [(r["action_horizon"], r["inference_steps"]) for r in rows] == [(8, 2), (32, 2)]  # episode: one seed only
    assert rows[0]["successes"] == [0.8, 1.0] and abs(rows[0]["mean_success"] - 0.9) < 1e-12
    assert rows[1]["flops_per_step_measured"] == 150.0
