"""What the pusht-image study costs, from a short run of each arm on one thread.

    OMP_NUM_THREADS=1 python benchmarks/pusht_image_cost.py --data data/pusht-image-20.zarr \\
        --out benchmarks/results/pusht-image-cost.json

Trains each arm of benchmarks/studies/pusht-image.toml with its preset for a few hundred steps per
stage on the given pusht/image demos (LWD and BC on frozen features: encoder, VAE, prior / BC
stages; Diffusion Policy image-cpu), and times: seconds per step of every stage (wall clock, from
train_log.json, and CPU time of the stage's loop, which is what one core costs when the machine is
shared), frames embedded per second by the frozen encoder, one control step of each policy
(`lwd.evaluation.latency`, random frames; DP per executed action at H = 8 and, from an untrained model of the
prediction horizon H = 32 needs, at H = 32), and one pusht/image env step. The estimate multiplies
these by the study's steps, runs, cells and episodes (300 steps an episode at most: an upper bound,
successes end earlier).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ARMS = {  # label: (method, preset, shortened steps for the timing)
    "lwd": ("lwd", "pusht-image", ["encoder_steps={enc}", "vae_steps={steps}", "prior_steps={steps}"]),
    "bc": ("bc", "pusht-image", ["encoder_steps={enc}", "steps={steps}"]),
    "dp": ("dp", "image-cpu", ["steps={dp}"]),
}


def stage_cpu_seconds() -> dict[str, float]:
    """CPU seconds of each stage's step loop (not its set-up), recorded by wrapping the training loop."""
    import lwd.training.train as train

    spent: dict[str, float] = {}
    run = train._StageLoop.run

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return run(self, *args, **kwargs)
        finally:
            spent[self.stage.name] = spent.get(self.stage.name, 0.0) + time.process_time() - t0

    train._StageLoop.run = timed
    return spent


def env_step_seconds(steps: int = 300) -> float:
    from lwd.envs.pusht import PushTEnv

    env, rng = PushTEnv("image"), np.random.default_rng(0)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(0, 512, 2))
    env.close()
    return (time.perf_counter() - t0) / steps


def dp_plan_seconds(model: Any, horizon: int, plans: int = 3) -> float:
    """Seconds of one DDPM plan of an (untrained) copy of `model` with prediction horizon `horizon`."""
    import dataclasses

    from lwd.methods.base import build_method

    wide = build_method("dp", dataclasses.replace(model.cfg, horizon=horizon), model.info, model.normalizer, seed=0).eval()
    hist = torch.zeros(1, wide.cfg.obs_steps, wide.info.obs_dim)
    images = {k: torch.zeros(1, wide.cfg.obs_steps, *s, dtype=torch.uint8) for k, s in wide.info.images}
    t0 = time.perf_counter()
    for _ in range(plans):
        wide.sample_actions(hist, None, torch.Generator().manual_seed(0), images=images)
    return (time.perf_counter() - t0) / plans


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="pusht/image demos (lwd demos pusht/image)")
    p.add_argument("--steps", type=int, default=300, help="steps of the VAE, prior and BC stages")
    p.add_argument("--encoder-steps", type=int, default=200, help="steps of the encoder stage")
    p.add_argument("--dp-steps", type=int, default=200, help="Diffusion Policy steps")
    p.add_argument("--latency-steps", type=int, default=64)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)

    from lwd.checkpoint import load_model
    from lwd.data import Episodes
    from lwd.evaluation.latency import measure_latency
    from lwd.pipeline import train_run
    from lwd.provenance import provenance

    spent = stage_cpu_seconds()
    report: dict[str, Any] = {"data": args.data, "threads": torch.get_num_threads(), "arms": {}}
    episodes = Episodes.load(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        for label, (method, preset, sets) in ARMS.items():
            overrides = [s.format(enc=args.encoder_steps, steps=args.steps, dp=args.dp_steps) for s in sets]
            spent.clear()
            t0 = time.perf_counter()
            train_run(method, args.data, Path(tmp) / label, preset=preset, overrides=overrides, progress=False)
            log = json.loads((Path(tmp) / label / "train_log.json").read_text())
            steps = {name: len(rows) and rows[-1]["step"] for name, rows in log["stages"].items()}
            arm: dict[str, Any] = {"preset": preset, "overrides": overrides, "run_seconds": round(time.perf_counter() - t0, 1),
                                   "stages": {name: {"steps": steps[name], "wall_s_per_step": log["seconds"][name] / steps[name],
                                                     "cpu_s_per_step": spent.get(name, float("nan")) / steps[name]}
                                              for name in steps}}
            model = load_model(Path(tmp) / label)
            if getattr(model, "vision", None) is not None:
                t1, c1 = time.perf_counter(), time.process_time()
                model.vision.embed(episodes, progress=False)
                arm["embed_frames_per_s"] = {"wall": episodes.num_steps / (time.perf_counter() - t1),
                                             "cpu": episodes.num_steps / (time.process_time() - c1)}
            horizons = (8, 32) if method != "bc" else (None,)
            arm["policy_step_s"] = {}
            for h in horizons:
                runtime = {"action_horizon": h} if h else {}
                if method == "dp" and h == 32:  # another trained model (prediction horizon 40): one plan / 32 steps
                    arm["policy_step_s"]["32"] = dp_plan_seconds(model, 40) / 32
                    continue
                lat = measure_latency(model, model.runtime_options(**runtime), steps=args.latency_steps, warmup=8)
                arm["policy_step_s"][str(h or "every")] = lat["latency_us_mean"] / 1e6
            arm["cost"] = model.cost(model.runtime_options(**({"action_horizon": 8} if method != "bc" else {}))).to_dict()
            report["arms"][label] = arm
            print(label, json.dumps(arm, default=float)[:600], flush=True)
    report["env_step_s"] = env_step_seconds()
    report["provenance"] = provenance()
    text = json.dumps(report, indent=1, default=float)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
