"""Wall-clock latency per control step of a runtime policy, on one CPU thread.

Every step is timed (`policy.act` on a fixed random observation), so the median shows the cost of
a plain step and the p95/max show the steps where the method regenerates (LWD) or replans (DP).
A model that reads camera frames gets a random frame per camera beside the low-dim part, so its
steps include the image encoders as they run on a robot.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lwd.data.keys import OBS
from lwd.methods.base import Method, RuntimeOptions


def measure_latency(method: Method, runtime: RuntimeOptions | None = None, steps: int = 2000, warmup: int = 200,
                    seed: int = 0) -> dict[str, float]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        policy = method.make_policy(runtime or method.runtime_options())
        task = 0 if method.info.num_tasks > 0 else None
        policy.reset(seed, task)
        obs = np.random.default_rng(seed).uniform(-1, 1, size=method.info.obs_dim).astype(np.float32)
        obs = method.normalizer.unnormalize(OBS, obs).astype(np.float32)
        if method.info.images:  # {"obs": low-dim, <image key>: frame}, as an image suite observes
            rng = np.random.default_rng(seed + 1)
            obs = {OBS: obs, **{key: rng.integers(0, 256, shape, dtype=np.uint8) for key, shape in method.info.images}}
        for _ in range(warmup):
            policy.act(obs)
        times = np.empty(steps)
        for i in range(steps):
            t0 = time.perf_counter()
            policy.act(obs)
            times[i] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    us = times * 1e6
    return {
        "latency_us_median": float(np.median(us)),
        "latency_us_p95": float(np.percentile(us, 95)),
        "latency_us_max": float(us.max()),
        "latency_us_mean": float(us.mean()),
        "latency_steps": steps,
    }
