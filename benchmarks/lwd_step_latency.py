"""Latency of one LWD control step between generations, with and without folded normalisers.

    OMP_NUM_THREADS=1 python benchmarks/lwd_step_latency.py RUN [RUN ...] --out benchmarks/results/lwd-step-latency.json

For each trained LWD run, one policy is generated (once, for the whole measurement) and three ways
of computing an action from a raw observation are timed on one CPU thread, interleaved round by
round so that machine noise hits all three alike:

- `policy.act`: the runtime (`LWDPolicy.act`), whose generated MLP has the obs / action
  normalisers folded into its first and last layers;
- `normalise around the MLP`: the runtime before folding, re-created here as the reference: normalise
  the observation, stack the history, run the MLP in normalised space, unnormalise the action;
- `MLP only`: the bare NumPy MLP on a prepared input, the floor for either.

Only ratios within one run mean much on a shared machine; the JSON keeps every median and p95.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lwd.checkpoint import load_model
from lwd.methods.lwd import LWD
from lwd.methods.target_mlp import numpy_mlp_forward
from lwd.provenance import provenance


def reference_step(model: LWD, layers: list, history: list[np.ndarray], obs: np.ndarray) -> np.ndarray:
    """The pre-folding runtime step: normalise, keep a normalised history, MLP, unnormalise."""
    obs_n = model.normalizer.normalize("obs", np.asarray(obs, np.float32))
    history[:] = [*history[1:], obs_n]
    k = model.cfg.policy_obs_steps
    policy_in = obs_n if k == 1 else np.concatenate(history[-k:])
    return model.normalizer.unnormalize("action", numpy_mlp_forward(model.target, layers, policy_in)).astype(np.float32)


def measure(run: str, rounds: int, steps_per_round: int) -> dict:
    model = load_model(run)
    if not isinstance(model, LWD):
        raise SystemExit(f"{run} is not an LWD run")
    rng = np.random.default_rng(0)
    obs = model.normalizer.unnormalize("obs", rng.uniform(-1, 1, model.info.obs_dim).astype(np.float32)).astype(np.float32)
    policy = model.make_policy(model.runtime_options(action_horizon=0))  # one generation, then plain steps only
    policy.reset(seed=0, task=0 if model.cfg.uses_task else None)
    policy.act(obs)
    layers = policy.policy_weights()
    history = [model.normalizer.normalize("obs", obs)] * model.cfg.obs_steps
    k = model.cfg.policy_obs_steps
    mlp_in = np.concatenate([model.normalizer.normalize("obs", obs)] * k)
    np.testing.assert_allclose(policy.act(obs), reference_step(model, layers, history, obs), rtol=1e-3, atol=1e-4)

    candidates = {
        "policy.act (folded)": lambda: policy.act(obs),
        "normalise around the MLP": lambda: reference_step(model, layers, history, obs),
        "MLP only": lambda: numpy_mlp_forward(model.target, layers, mlp_in),
    }
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            for _ in range(50):  # warm-up within the round
                fn()
            for _ in range(steps_per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    out = {"run": run, "obs_dim": model.info.obs_dim, "policy_obs_steps": k,
           "mlp": model.target.layer_sizes, "steps_timed_each": rounds * steps_per_round}
    for name, ts in times.items():
        us = np.asarray(ts) * 1e6
        out[name] = {"median_us": float(np.median(us)), "p95_us": float(np.percentile(us, 95))}
    out["speed-up of the median (reference / folded)"] = (
        out["normalise around the MLP"]["median_us"] / out["policy.act (folded)"]["median_us"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="trained LWD run directories")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--steps-per-round", type=int, default=500)
    p.add_argument("--out", default="benchmarks/results/lwd-step-latency.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    results = [measure(run, args.rounds, args.steps_per_round) for run in args.runs]
    print("| run | MLP | policy.act (folded) median / p95 | normalise around the MLP | MLP only | speed-up |")
    print("|---|---|---|---|---|---|")
    for r in results:
        cells = [f"{r[n]['median_us']:.1f} / {r[n]['p95_us']:.1f} µs" for n in ("policy.act (folded)", "normalise around the MLP", "MLP only")]
        print(f"| {r['run']} | {'-'.join(map(str, r['mlp']))} | {' | '.join(cells)} | {r['speed-up of the median (reference / folded)']:.2f}x |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": results, "provenance": provenance(["python", "benchmarks/lwd_step_latency.py", *sys.argv[1:]])}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
