"""Style labels (lwd.analysis.styles): the rule's accuracy on expert episodes of known style, and the
generation measures of trained runs (style mix and its TV distance to the data's, per-style
success, consistency within an episode).

    # the rule on each style's expert, the same held-out seeds for every style
    OMP_NUM_THREADS=1 python benchmarks/style_measures.py accuracy pusht --seeds 100000:100050 \\
        --out benchmarks/results/style-labels-pusht.json
    # trained runs (any method) against the data they learnt from; --runtime sets run-time options
    OMP_NUM_THREADS=1 python benchmarks/style_measures.py compare --data DATA.zarr --run RUN [--run RUN2 ...] \\
        --episodes 30 [--runtime action_horizon=16] [--save-rollouts DIR] --out styles.json

`accuracy` runs every style's expert (`lwd demos`' own collection, `collect_demos` with one style,
keeping failures too) on the given seeds of every task of the suite, labels each episode and
writes the confusion matrix (rows: the style that played; columns: the label, "undecided"
included), the accuracy over all episodes and over the decided ones, and the experts' own
consistency. `compare` evaluates each run exactly as `lwd eval` does (the same seeds, envs and
per-episode policies), records the rollouts (`lwd.evaluation.rollouts`) and writes `lwd.analysis.styles.style_report`.
Both write a PNG next to the JSON and keep the command, commit, date and machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lwd.analysis.styles import UNDECIDED, label_episodes, plot_report, style_report, style_rule, style_summary
from lwd.data import Episodes
from lwd.data.episodes import concatenate
from lwd.demos import collect_demos, parse_seeds
from lwd.provenance import provenance
from lwd.suites import make_suite


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    suite = make_suite(args.suite)
    rule = style_rule(suite.name)
    seeds = parse_seeds(args.seeds)
    rows, parts = [], []
    for style in suite.styles:
        # one style, consecutive seeds from the first: keep_failures keeps every seed (max_attempts 1)
        demos = collect_demos(suite, len(seeds), seed_start=seeds[0], keep_failures=True, max_attempts_factor=1,
                              styles={style: 1.0}, progress=True)
        parts.append(demos)
        labels = label_episodes(demos, suite.name)
        tasks = demos.attrs["tasks"]
        for i, (seed, label) in enumerate(zip(demos.attrs["seeds"], labels)):
            task = tasks[int(demos.episode(i)["task"][0])]
            rows.append({"task": task, "seed": seed, "style": style, "label": label.label, "halves": list(label.halves),
                         "features": {k: round(float(v), 4) for k, v in label.features.items()}})
    report = style_report(concatenate(parts), {}, suite.name)["data"]
    decided = [r for r in rows if r["label"] != UNDECIDED]
    per_task = {}
    for task in suite.tasks:
        mine = [r for r in rows if r["task"] == task]
        per_task[task] = float(np.mean([r["label"] == r["style"] for r in mine]))
    per_style = {s: style_summary([_as_style(r) for r in rows if r["style"] == s], rule.styles) for s in suite.styles}
    return {
        "suite": suite.name, "seeds": [seeds[0], seeds[-1]], "episodes_per_style_and_task": len(seeds),
        "styles": list(suite.styles),
        "accuracy": float(np.mean([r["label"] == r["style"] for r in rows])),
        "accuracy_decided": float(np.mean([r["label"] == r["style"] for r in decided])) if decided else None,
        "undecided_share": 1.0 - len(decided) / len(rows),
        "confusion": report["confusion"],
        "accuracy_per_task": per_task,
        "expert_consistency": {s: {"consistency": v["consistency"], "episodes": v["consistency_episodes"]} for s, v in per_style.items()},
        "episodes": rows,
    }


def _as_style(row: dict[str, Any]) -> Any:
    from lwd.analysis.styles import EpisodeStyle

    return EpisodeStyle(row["label"], tuple(row["halves"]))


def _runtime_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def compare(args: argparse.Namespace) -> dict[str, Any]:
    from lwd.checkpoint import load_model, read_run_config
    from lwd.evaluation.rollouts import record_rollouts

    data = Episodes.load(args.data)
    suite = make_suite(args.env or data.attrs.get("suite", ""))
    runtime = dict(item.split("=", 1) for item in args.runtime)
    rollouts: dict[str, Episodes] = {}
    evaluations = {}
    for spec in args.run:
        run_dir, _, name = spec.partition("=")
        model = load_model(run_dir)
        name = name or f"{read_run_config(run_dir).method} ({Path(run_dir).name})"
        options = model.runtime_options(**{k: _runtime_value(v) for k, v in runtime.items()})
        result, episodes = record_rollouts(model, suite, args.episodes, args.seed_start, runtime=options, progress=True)
        rollouts[name] = episodes
        evaluations[name] = {"run": run_dir, "mean_success": result["mean_success"], "policy_kwargs": result["policy_kwargs"],
                             "cost": {k: result["cost"].get(k) for k in ("flops_per_step", "generations", "policy_steps")}}
        if args.save_rollouts:
            episodes.save(Path(args.save_rollouts) / f"{Path(run_dir).name}.zarr")
    for path in args.rollouts:
        rollouts[Path(path).stem] = Episodes.load(path)
    report = style_report(data, rollouts, suite.name)
    report["data_path"] = args.data
    report["evaluations"] = evaluations
    report["episodes_per_task"] = args.episodes
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("accuracy", help="the rule on expert episodes of each style")
    a.add_argument("suite", help="pusht, robomimic/lift, robomimic/can, metaworld/mt10 or a metaworld MT10 task")
    a.add_argument("--seeds", default="100000:100050", help="a:b (b exclusive), consecutive")
    a.add_argument("--out", required=True)
    c = sub.add_parser("compare", help="trained runs' rollouts against their data")
    c.add_argument("--data", required=True, help="the episode store the runs learnt from (with or without recorded styles)")
    c.add_argument("--run", action="append", default=[], help="RUN or RUN=NAME (repeatable)")
    c.add_argument("--rollouts", action="append", default=[], help="a store of rollouts saved earlier (repeatable)")
    c.add_argument("--env", default=None, help="suite (default: the data's)")
    c.add_argument("--episodes", type=int, default=50, help="episodes per task")
    c.add_argument("--seed-start", type=int, default=None, help="first test seed (default: the suite's, 100000)")
    c.add_argument("--runtime", action="append", default=[], metavar="KEY=VALUE", help="run-time option, e.g. action_horizon=16")
    c.add_argument("--save-rollouts", default=None, metavar="DIR", help="also save each run's rollouts (zarr) here")
    c.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists; choose another --out")
    result = accuracy(args) if args.mode == "accuracy" else compare(args)
    result = {"provenance": provenance(["python", "benchmarks/style_measures.py", *sys.argv[1:]]), **result}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps(result))
    if args.mode == "accuracy":
        _plot_confusion(result, out.with_suffix(".png"))
        print(f"{result['suite']}: accuracy {result['accuracy']:.3f} (decided {result['accuracy_decided']:.3f}, "
              f"undecided {result['undecided_share']:.3f}); expert consistency "
              + ", ".join(f"{s} {v['consistency']:.2f}" for s, v in result["expert_consistency"].items() if v["consistency"] is not None))
        for style, row in result["confusion"].items():
            print(f"  {style:16s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    else:
        plot_report(result, str(out.with_suffix(".png")))
        data = result["data"]
        print(f"data: shares {_fmt(data['shares'])}, undecided {data['undecided_share']:.2f}, consistency {_num(data['consistency'])}"
              + (f", rule accuracy {data['rule_accuracy']:.3f}" if "rule_accuracy" in data else ""))
        for name, s in result["rollouts"].items():
            print(f"{name}: success {_num(s.get('success_rate'))}, shares {_fmt(s['shares'])}, TV {s['tv_to_data']:.3f}, "
                  f"undecided {s['undecided_share']:.2f}, consistency {_num(s['consistency'])} ({s['consistency_episodes']} ep), "
                  f"success by style {_fmt(s.get('success_by_style') or {})}")
    print(f"-> {out} and {out.with_suffix('.png')}")


def dumps(result: dict[str, Any]) -> str:
    """Indented JSON, with one line per episode row (`accuracy`'s "episodes")."""
    rows = result.get("episodes")
    if not isinstance(rows, list):
        return json.dumps(result, indent=1)
    head = json.dumps({k: v for k, v in result.items() if k != "episodes"}, indent=1)
    return head[:-2] + ',\n "episodes": [\n' + ",\n".join("  " + json.dumps(row) for row in rows) + "\n ]\n}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _fmt(shares: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {_num(v)}" for k, v in shares.items())


def _plot_confusion(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = result["styles"]
    columns = [*styles, UNDECIDED]
    matrix = np.array([[result["confusion"][s][c] for c in columns] for s in styles], dtype=float)
    fig, ax = plt.subplots(figsize=(1.4 * len(columns) + 1.5, 1.0 * len(styles) + 1.4))
    ax.imshow(matrix / matrix.sum(1, keepdims=True), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(styles)):
        for j in range(len(columns)):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, rotation=20, fontsize=8)
    ax.set_yticks(range(len(styles)))
    ax.set_yticklabels(styles, fontsize=8)
    ax.set_xlabel("label")
    ax.set_ylabel("expert style")
    ax.set_title(f"{result['suite']}: accuracy {result['accuracy']:.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
