"""Per-step latency of a LeRobot policy on gym-pusht, as lerobot-eval calls it: preprocessor ->
select_action -> postprocessor, one env, one thread, over whole episodes (generation/planning steps
included). Prints one JSON line: mean, median, p99 in milliseconds.

    python lerobot_policy_lwd/benchmarks/latency.py CHECKPOINT [--episodes 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import gymnasium as gym
    import gym_pusht  # noqa: F401
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    cfg = PreTrainedConfig.from_pretrained(args.checkpoint)
    cfg.device = "cpu"
    policy = get_policy_class(cfg.type).from_pretrained(args.checkpoint, config=cfg)
    pre, post = make_pre_post_processors(cfg, pretrained_path=args.checkpoint)
    env = gym.make("gym_pusht/PushT-v0", obs_type="environment_state_agent_pos", max_episode_steps=300)
    times = []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=100000 + episode)
        policy.reset()
        for _ in range(300):
            batch = {"observation.state": torch.from_numpy(obs["agent_pos"]).float(),
                     "observation.environment_state": torch.from_numpy(obs["environment_state"]).float()}
            start = time.perf_counter()
            with torch.inference_mode():
                action = post(policy.select_action(pre(batch)))
            times.append(time.perf_counter() - start)
            obs, _, terminated, truncated, _ = env.step(action[0].numpy())
            if terminated or truncated:
                break
    ms = np.array(times) * 1e3
    result = {"policy": cfg.type, "steps": len(ms), "mean_ms": round(float(ms.mean()), 3),
              "median_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}
    print(json.dumps(result))
    if args.out:  # LeRobot's from_pretrained prints to stdout too
        with open(args.out, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
