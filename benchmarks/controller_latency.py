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
  which the two-rate runtime does once every H steps;
- `c via ctypes`: the C export (`lwd export RUN --format c`) driven from Python (`lwd.deploy.export_c.CController.act`);
- `c native`: the C export's `lwd_act` in a C loop (a small driver program, one process per round),
  each step timed with clock_gettime (its own cost, `timer_overhead_ns`, is included and reported).
Reports median and p99 in microseconds; only ratios within one run mean much on a shared machine.

With --callgrind, also the instructions per step of the C, NumPy and ONNX Runtime runners, counted
by `valgrind --tool=callgrind` (independent of machine load): each runner runs N and 0 steps in a
process of its own (the NumPy and ONNX ones import only numpy / onnxruntime), and (Ir(N) - Ir(0)) / N
is reported. The NumPy and ONNX counts include the Python loop that calls them, as in deployment.
The C library is built for x86-64-v3 (AVX2 + FMA) here, for both timing and counting: valgrind
cannot run AVX-512 code, which -march=native emits on such CPUs.

No trained run on the machine? `--shape mt10|lift` builds an untrained LWD whose generated MLP has
the shape of the MT10 (39-d observation, 128-128, 4-d action) or robomimic Lift (2 x 19-d, 128-128,
7-d) presets, with random (init-scaled) weights: a step's cost depends on the shape, not the values.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

C_FLAGS = ("-O3", "-std=c99", "-ffp-contract=fast", "-march=x86-64-v3")
_DRIVER = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "lwd_controller.h"
/* usage: driver THETA OBS NUM_OBS STEPS [TIMES_OUT]: set the weights, run STEPS lwd_act calls over the
 * observations; with TIMES_OUT, time each step (ns, float64) after as many warm-up steps. */
static double ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
    static float theta[LWD_NUM_PARAMS]; float action[LWD_ACTION_DIM]; double sink = 0;
    long m = atol(argv[3]), n = atol(argv[4]), i;
    float *obs = malloc(sizeof(float) * LWD_OBS_DIM * m);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(theta, sizeof(float), LWD_NUM_PARAMS, f) != LWD_NUM_PARAMS) return 2;
    fclose(f);
    f = fopen(argv[2], "rb");
    if (!f || fread(obs, sizeof(float) * LWD_OBS_DIM, m, f) != (size_t)m) return 2;
    fclose(f);
    if (lwd_set_weights(theta) != 0) return 3;
    if (argc < 6) {
        for (i = 0; i < n; i++) { lwd_act(obs + (i % m) * LWD_OBS_DIM, action); sink += action[0]; }
    } else {
        double *times = malloc(sizeof(double) * (n + 1)), t0, t1;
        for (i = 0; i < n; i++) { lwd_act(obs + (i % m) * LWD_OBS_DIM, action); sink += action[0]; }
        for (i = 0; i < n; i++) {
            t0 = ns(); lwd_act(obs + (i % m) * LWD_OBS_DIM, action); t1 = ns();
            times[i] = t1 - t0; sink += action[0];
        }
        t0 = ns(); t1 = ns(); times[n] = t1 - t0;  /* one empty timer pair: the timer's own cost */
        f = fopen(argv[5], "wb"); fwrite(times, sizeof(double), n + 1, f); fclose(f);
    }
    return sink != sink;  /* uses the actions, so no step is optimised away */
}
"""


def _random_run(shape: str, root: Path) -> Path:
    """An untrained LWD whose generated MLP has a preset's shape (see the module docstring)."""
    import torch

    from lwd.checkpoint import save_model
    from lwd.config import DataInfo, RunConfig, TrainConfig
    from lwd.data import MinMaxNormalizer
    from lwd.methods.lwd import LWD, LWDConfig

    small_generator = {"hyper_hidden": (64,), "denoiser_width": 128, "denoiser_blocks": 2}  # mt10-lite's; export is faster
    if shape == "mt10":  # presets mt10 / mt10-lite: one 39-d observation, task-conditioned
        info, cfg = DataInfo(39, 4, tuple(f"task{i}" for i in range(10))), LWDConfig(horizon=32, condition="task", **small_generator)
    else:  # preset robomimic (extends pusht): the last 2 observations, state-conditioned
        info, cfg = DataInfo(19, 7), LWDConfig(horizon=16, policy_obs_steps=2, condition="state", **small_generator)
    rng = np.random.default_rng(0)
    data = {"obs": rng.uniform(-2, 2, (256, info.obs_dim)).astype(np.float32),
            "action": rng.uniform(-1, 1, (256, info.action_dim)).astype(np.float32)}
    torch.manual_seed(0)
    model = LWD(cfg, info, MinMaxNormalizer.fit(data)).eval()
    save_model(root / f"random-{shape}", model, RunConfig("lwd", cfg, TrainConfig(), info))
    return root / f"random-{shape}"


def _child(kind: str, folder: Path, steps: int) -> None:
    """One runner for `steps` steps in a fresh process (for callgrind): imports only what it needs."""
    theta, observations = np.load(folder / "theta.npy"), np.load(folder / "obs.npy")
    if kind == "numpy":
        spec = importlib.util.spec_from_file_location("lwd_controller", folder / "lwd_controller.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        controller = module.Controller.load(folder)
        controller.set_weights(theta)
        for i in range(steps):
            controller.act(observations[i % len(observations)])
    else:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(folder / "controller.onnx"), options, providers=["CPUExecutionProvider"])
        stacked = np.load(folder / "stacked.npy")
        theta_2d = theta[None]
        for i in range(steps):
            session.run(None, {"theta": theta_2d, "obs": stacked[i % len(stacked)]})


def _callgrind(command: list[str], steps: int) -> float:
    """(instructions with `steps` steps - instructions with 0 steps) / steps, by callgrind."""
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (steps, 0):
            out = Path(tmp) / f"callgrind.{n}"
            env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command(n)], check=True,
                           capture_output=True, env=env)
            counts.append(next(int(line.split()[1]) for line in out.read_text().splitlines() if line.startswith("summary:")))
    return (counts[0] - counts[1]) / steps


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        return _child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    import torch

    from lwd.checkpoint import load_model
    from lwd.deploy.export import export_c, export_controller, export_onnx
    from lwd.methods.lwd.onnx_export import _ControllerGraph
    from lwd.deploy.export_c import CController, build_library
    from lwd.provenance import provenance

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default=None, help="a trained LWD run (or --shape)")
    p.add_argument("--shape", choices=["mt10", "lift"], default=None,
                   help="no run: an untrained LWD with this preset's controller shape (random weights)")
    p.add_argument("--dp", default=None, help="a Diffusion Policy run to time alongside")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--steps", type=int, default=250, help="steps per runner per round")
    p.add_argument("--callgrind", type=int, default=0, metavar="N",
                   help="also count instructions per step with valgrind's callgrind over N steps (0: skip)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if (args.run is None) == (args.shape is None):
        p.error("give a run directory or --shape")
    torch.set_num_threads(1)
    import onnxruntime as ort

    folder = Path(tempfile.mkdtemp(prefix="lwd-latency-"))
    if args.shape:
        args.run = str(_random_run(args.shape, folder))
    model = load_model(args.run)
    export_controller(args.run, folder)
    export_onnx(args.run, folder)
    export_c(args.run, folder)
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

    c_controller = CController(build_library(folder, cache=False, flags=C_FLAGS))
    c_controller.set_weights(theta)
    (folder / "driver.c").write_text(_DRIVER)
    subprocess.run(["cc", *C_FLAGS, "-o", "driver", "driver.c", "lwd_controller.c", "-lm"], cwd=folder, check=True)
    theta.tofile(folder / "theta.f32")
    observations.tofile(folder / "obs.f32")
    np.save(folder / "theta.npy", theta)
    np.save(folder / "obs.npy", observations)
    np.save(folder / "stacked.npy", np.stack(stacked))
    driver = [str(folder / "driver"), str(folder / "theta.f32"), str(folder / "obs.f32"), str(len(observations))]
    runners = {
        "c native": None,  # timed inside the driver process, once per round (below)
        "c via ctypes": lambda i: c_controller.act(observations[i]),
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
    timer_ns: list[float] = []
    for _ in range(args.rounds):
        for name, step in runners.items():
            if step is None:
                subprocess.run([*driver, str(args.steps), str(folder / "times.f64")], check=True)
                native = np.fromfile(folder / "times.f64", np.float64)
                times[name].extend((native[:-1] * 1e-9).tolist())
                timer_ns.append(float(native[-1]))
                continue
            for i in range(args.steps):
                t0 = time.perf_counter()
                step(i)
                times[name].append(time.perf_counter() - t0)
    rows = {name: {"median_us": float(np.median(t) * 1e6), "p99_us": float(np.percentile(t, 99) * 1e6), "steps": len(t)}
            for name, t in times.items()}
    for name, r in rows.items():
        print(f"{name:18s} median {r['median_us']:9.1f} us   p99 {r['p99_us']:11.1f} us   ({r['steps']} steps)")
    result = {"provenance": provenance(["python", "benchmarks/controller_latency.py", *sys.argv[1:]]), "run": args.run, "dp": args.dp,
              "shape": args.shape, "random_weights": args.shape is not None, "layer_sizes": model.target.layer_sizes,
              "activation": model.target.activation, "c_flags": list(C_FLAGS),
              "params_per_step": model.target.num_params, "obs_dim": model.info.obs_dim, "policy_obs_steps": k, "runners": rows,
              "timer_overhead_ns_median": float(np.median(timer_ns))}
    print(f"(c native includes one clock_gettime pair per step: {result['timer_overhead_ns_median']:.0f} ns)")
    if args.callgrind:
        me = [sys.executable, str(Path(__file__).resolve()), "--child"]
        counts = {"c native": _callgrind(lambda n: [*driver, str(n)], args.callgrind),
                  "numpy runner": _callgrind(lambda n: [*me, "numpy", str(folder), str(n)], args.callgrind),
                  "onnxruntime": _callgrind(lambda n: [*me, "onnx", str(folder), str(n)], args.callgrind)}
        result["instructions_per_step"] = {"steps": args.callgrind, **counts}
        for name, count in counts.items():
            print(f"{name:18s} {count:12,.0f} instructions per step (callgrind, {args.callgrind} steps vs 0)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"-> {args.out}")


if __name__ == "__main__":
    main()
