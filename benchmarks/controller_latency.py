"""Per-control-step latency of LWD's deployable controllers, against DP's step, on one CPU thread.

    OMP_NUM_THREADS=1 python benchmarks/controller_latency.py runs/show-lwd --dp runs/show-dp \\
        --out benchmarks/results/controller-latency.json

Between generations an LWD control step is the small MLP on the latest observations. Timed here,
interleaved round by round so machine noise hits every runner alike (each round: a few hundred
steps per runner), with the weights of one generated policy:
- `numpy runner`: the exported `lwd_controller.py` (`lwd export RUN --format npz`), NumPy only;
- `onnxruntime`: `controller.onnx` (`--format onnx`), the weights passed as an input each step;
- `torch eager`: the same graph in torch, under no_grad;
- `lwd policy.act`: the in-library runtime between generations;
- `dp policy.act` (with --dp): Diffusion Policy's step, which pops a queued action and replans every Ta steps;
- `numpy set_weights`: installing a new weight vector in the NumPy runner (normalisers folded in),
  which the two-rate runtime does once every H steps.
Reports median and p99 in microseconds; only ratios within one run mean much on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from lwd.checkpoint import load_model
    from lwd.export import _ControllerGraph, export_controller, export_onnx
    from lwd.provenance import provenance

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--dp", default=None, help="a Diffusion Policy run to time alongside")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--steps", type=int, default=250, help="steps per runner per round")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    import onnxruntime as ort

    model = load_model(args.run)
    folder = Path(tempfile.mkdtemp(prefix="lwd-latency-"))
    export_controller(args.run, folder)
    export_onnx(args.run, folder)
    spec = importlib.util.spec_from_file_location("lwd_controller", folder / "lwd_controller.py")
    runner_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner_module)

    policy = model.make_policy(model.runtime_options(action_horizon=0))  # generate once, then plain steps
    policy.reset(0, 0 if model.cfg.uses_task else None)
    rng = np.random.default_rng(0)
    low, high = (np.asarray(a, np.float32) for a in model.normalizer.unnormalize("obs", np.stack([-np.ones(model.info.obs_dim), np.ones(model.info.obs_dim)])))
    observations = rng.uniform(low, high, (args.steps, model.info.obs_dim)).astype(np.float32)
    policy.act(observations[0])
    theta = np.concatenate([np.concatenate([w.reshape(-1), b]) for w, b in policy.policy_weights()]).astype(np.float32)
    controller = runner_module.Controller.load(folder)
    controller.set_weights(theta)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(folder / "controller.onnx"), options, providers=["CPUExecutionProvider"])
    graph = _ControllerGraph(model).eval()
    theta_2d, theta_t = theta[None], torch.from_numpy(theta[None])
    k = model.cfg.policy_obs_steps
    stacked = [np.tile(o, k)[None].astype(np.float32) for o in observations]

    def torch_step(i: int) -> None:
        with torch.no_grad():
            graph(theta_t, torch.from_numpy(stacked[i]))

    runners = {
        "numpy runner": lambda i: controller.act(observations[i]),
        "onnxruntime": lambda i: session.run(None, {"theta": theta_2d, "obs": stacked[i]}),
        "torch eager": torch_step,
        "lwd policy.act": lambda i: policy.act(observations[i]),
        # not a control step: what the loop pays when new weights arrive (once every H steps)
        "numpy set_weights": lambda i: controller.set_weights(theta),
    }
    if args.dp:
        dp = load_model(args.dp)
        dp_policy = dp.make_policy()
        dp_policy.reset(0, None)
        dp_obs = rng.uniform(-1, 1, (args.steps, dp.info.obs_dim)).astype(np.float32)
        runners["dp policy.act"] = lambda i: dp_policy.act(dp_obs[i])
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, step in runners.items():
            for i in range(args.steps):
                t0 = time.perf_counter()
                step(i)
                times[name].append(time.perf_counter() - t0)
    rows = {name: {"median_us": float(np.median(t) * 1e6), "p99_us": float(np.percentile(t, 99) * 1e6), "steps": len(t)}
            for name, t in times.items()}
    for name, r in rows.items():
        print(f"{name:18s} median {r['median_us']:9.1f} us   p99 {r['p99_us']:11.1f} us   ({r['steps']} steps)")
    result = {"provenance": provenance(["python", "benchmarks/controller_latency.py", *sys.argv[1:]]), "run": args.run, "dp": args.dp,
              "params_per_step": model.target.num_params, "obs_dim": model.info.obs_dim, "policy_obs_steps": k, "runners": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"-> {args.out}")


if __name__ == "__main__":
    main()
