"""Style on request: how often a run trained with style_condition acts in the style it is asked for,
and what asking costs in success, against the same run unconditioned.

    # mixed-style demos, a style-conditioned LWD on them (any preset; the prior learns the labels)
    lwd demos robomimic/lift --episodes 200 --styles all --out data/lift-styles.zarr
    lwd train lwd --data data/lift-styles.zarr --preset robomimic --set style_condition=true --out runs/lift-styles
    # each style asked for, at each guidance weight, N episodes per task on the same test seeds
    OMP_NUM_THREADS=1 python benchmarks/style_on_request.py --run runs/lift-styles --episodes 50 \\
        [--styles waypoint,slow] [--guidance 1,3] [--env SUITE] [--seed-start 100000] \\
        [--runtime action_horizon=16] [--save-rollouts DIR] --out benchmarks/results/style-on-request-lift.json

Every condition (no style, then each style at each --guidance weight; default: every style the run
knows, guidance 1) is evaluated exactly as `lwd eval RUN --style S --guidance W` evaluates it (the
same seeds, envs and per-episode policies, `lwd.evaluation.rollouts` keeping the trajectories), and every
episode is labelled by the suite's rule (`lwd.analysis.styles`: PushT, robomimic/lift, the Metaworld MT10
tasks). Per condition the JSON has:
- accuracy: the share of all episodes labelled as the requested style (undecided ones count as
  misses), with its Wilson interval, and among the decided episodes alone;
- success rate (Wilson interval) and its difference from the unconditioned run's on the same seeds,
  and success of the episodes labelled as requested;
- the style mix (shares of decided labels), the undecided share, and FLOPs per control step
  (guidance above 1 runs the denoiser twice a step).
The unconditioned run is the baseline a request must beat: its share of episodes labelled as a
style ("unconditioned_share_of_style", the same denominator as accuracy) is what asking gets with
no conditioning at all. A PNG of accuracy per style sits next to the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lwd.analysis.styles import UNDECIDED, label_episodes, style_rule, style_summary
from lwd.experiments.stats import wilson
from lwd.provenance import provenance
from lwd.suites import make_suite


def _runtime_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(item) for item in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated numbers, e.g. {flag} 1,3; got {text!r}") from None
    return values


def evaluate_condition(model: Any, suite: Any, rule_styles: tuple[str, ...], style: str | None, guidance: float | None,
                       args: argparse.Namespace, runtime: dict[str, Any]) -> dict[str, Any]:
    """One condition's evaluation, labels and figures (see the module docstring)."""
    from lwd.evaluation.rollouts import record_rollouts

    options = model.runtime_options(**runtime, style=style, guidance=guidance if style is not None else None)
    result, episodes = record_rollouts(model, suite, args.episodes, args.seed_start, runtime=options, progress=True)
    if args.save_rollouts:
        name = "unconditioned" if style is None else f"{style}-w{guidance:g}"
        episodes.save(Path(args.save_rollouts) / f"{name}.zarr")
    episode_styles = label_episodes(episodes, suite.name)
    labels = [s.label for s in episode_styles]
    successes = [bool(ok) for ok in episodes.attrs["successes"]]
    summary = style_summary(episode_styles, rule_styles, successes)
    n = len(labels)
    out: dict[str, Any] = {
        "style": style, "guidance": guidance if style is not None else None, "episodes": n,
        "seeds": [int(s) for s in episodes.attrs["seeds"]],
        "success_rate": asdict(wilson(sum(successes), n)),
        "shares": summary["shares"], "undecided_share": summary["undecided_share"], "counts": summary["counts"],
        "success_by_style": summary["success_by_style"], "consistency": summary["consistency"],
        "policy_kwargs": result["policy_kwargs"], "flops_per_step": result["cost"].get("flops_per_step"),
        "labels": labels, "successes": successes,
    }
    if style is not None:
        hits = sum(label == style for label in labels)
        decided = [label for label in labels if label != UNDECIDED]
        out["accuracy"] = asdict(wilson(hits, n))
        out["accuracy_decided"] = hits / len(decided) if decided else None
        asked = [ok for ok, label in zip(successes, labels) if label == style]
        out["success_when_labelled_as_asked"] = float(np.mean(asked)) if asked else None
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from lwd.checkpoint import load_model, read_run_config

    model = load_model(args.run)
    run = read_run_config(args.run)
    known = tuple(model.info.styles)
    if not getattr(model.cfg, "style_condition", False) or not known:
        raise ValueError(f"{args.run} was trained without style_condition: it has no style to ask for; train on demos "
                         "with styles (lwd demos SUITE --styles all) with --set style_condition=true")
    suite_name = args.env or run.data.suite
    if not suite_name:
        raise ValueError(f"{args.run} does not record its environment; pass --env")
    suite = make_suite(suite_name)
    rule = style_rule(suite.name)
    styles = [s.strip() for s in args.styles.split(",")] if args.styles else list(known)
    for style in styles:
        if style not in known:
            raise ValueError(f"--styles: unknown style {style!r}; this run knows {', '.join(known)}")
        if style not in rule.styles:
            raise ValueError(f"--styles: the {suite.name} rule labels {', '.join(rule.styles)}, not {style!r}: "
                             "its accuracy cannot be measured")
    guidance = _floats(args.guidance, "--guidance")
    runtime = {k: _runtime_value(v) for k, v in (item.split("=", 1) for item in args.runtime)}
    if "style" in runtime or "guidance" in runtime:
        raise ValueError("--runtime: give the styles with --styles and the weights with --guidance")
    base = evaluate_condition(model, suite, rule.styles, None, None, args, runtime)
    requested = []
    for style in styles:
        for weight in guidance:
            row = evaluate_condition(model, suite, rule.styles, style, weight, args, runtime)
            row["success_minus_unconditioned"] = row["success_rate"]["estimate"] - base["success_rate"]["estimate"]
            row["unconditioned_share_of_style"] = base["counts"][style] / base["episodes"]  # accuracy's denominator
            requested.append(row)
    return {"run": str(args.run), "method": run.method, "suite": suite.name, "styles": list(known),
            "rule_styles": list(rule.styles), "episodes_per_task": args.episodes, "seed_start": args.seed_start,
            "runtime": runtime, "unconditioned": base, "requested": requested}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["requested"]
    weights = sorted({row["guidance"] for row in rows})
    styles = list(dict.fromkeys(row["style"] for row in rows))
    x = np.arange(len(styles))
    width = 0.8 / (len(weights) + 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 * len(styles) + 1.5), 3.4))
    base = result["unconditioned"]
    ax.bar(x - 0.4 + width / 2, [base["counts"][s] / base["episodes"] for s in styles], width, color="0.7", label="unconditioned")
    for k, weight in enumerate(weights):
        acc = [next(r["accuracy"] for r in rows if r["style"] == s and r["guidance"] == weight) for s in styles]
        ax.bar(x - 0.4 + (k + 1.5) * width, [a["estimate"] for a in acc], width, label=f"asked, w={weight:g}",
               yerr=[[a["estimate"] - a["low"] for a in acc], [a["high"] - a["estimate"] for a in acc]], capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels(styles)
    ax.set_ylim(0, 1)
    ax.set_ylabel("episodes labelled as the style")
    ax.set_title(f"style on request, {result['suite']} ({result['unconditioned']['episodes']} episodes each)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a run trained with --set style_condition=true on mixed-style demos")
    p.add_argument("--styles", default=None, help="comma-separated styles to ask for (default: every style the run knows)")
    p.add_argument("--guidance", default="1", help="comma-separated guidance weights (default 1)")
    p.add_argument("--episodes", type=int, default=50, help="episodes per task and condition")
    p.add_argument("--env", default=None, help="suite (default: the run's)")
    p.add_argument("--seed-start", type=int, default=None, help="first test seed (default: the suite's, 100000)")
    p.add_argument("--runtime", action="append", default=[], metavar="KEY=VALUE", help="other run-time option, e.g. action_horizon=16")
    p.add_argument("--save-rollouts", default=None, metavar="DIR", help="also save each condition's rollouts (zarr) here")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists; choose another --out")
    if args.episodes < 1:
        sys.exit("--episodes must be positive")
    try:
        result = measure(args)
    except ValueError as err:
        sys.exit(f"style_on_request: error: {err}")
    result = {"provenance": provenance(["python", "benchmarks/style_on_request.py", *sys.argv[1:]]), **result}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    plot(result, out.with_suffix(".png"))
    base = result["unconditioned"]
    print(f"unconditioned: success {base['success_rate']['estimate']:.2f}, shares "
          + ", ".join(f"{k} {v:.2f}" for k, v in base["shares"].items()) + f", undecided {base['undecided_share']:.2f}")
    for row in result["requested"]:
        acc = row["accuracy"]
        decided = "n/a" if row["accuracy_decided"] is None else f"{row['accuracy_decided']:.2f}"
        print(f"asked {row['style']} (w={row['guidance']:g}): accuracy {acc['estimate']:.2f} [{acc['low']:.2f}, {acc['high']:.2f}] "
              f"(decided {decided}), success {row['success_rate']['estimate']:.2f} "
              f"({row['success_minus_unconditioned']:+.2f} vs unconditioned)")
    print(f"-> {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
