"""Diffusion Policy on camera frames (lwd.methods.dp with image data): the reference hybrid image
policy's size, the frames reaching the condition, and a tiny pusht/image run end to end."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_vision import reference_encoder_params

from lwd.config import DataInfo
from lwd.data import Episodes, MinMaxNormalizer
from lwd.flops import num_params
from lwd.methods.base import GenerationRuntime, build_method
from lwd.pipeline import build_configs

PUSHT_IMAGE = DataInfo(obs_dim=2, action_dim=2, tasks=("pusht",), images=(("image", (96, 96, 3)),))


def reference_unet_params(input_dim: int, global_cond_dim: int, embed: int, down_dims: tuple[int, ...], kernel: int) -> int:
    """Parameters of Diffusion Policy's ConditionalUnet1D (cond_predict_scale=True), from its definition:
    step MLP Linear(E, 4E), Linear(4E, E); residual blocks of two Conv1d(k) + GroupNorm, a FiLM
    Linear(E + G, 2 * C_out) and a 1x1 residual conv when the width changes; down levels of two
    blocks + a stride-2 Conv1d(C, C, 3) (none at the last); two mid blocks; up levels (one fewer)
    of two blocks + ConvTranspose1d(C, C, 4); a final Conv1d(k) + GroupNorm and a 1x1 Conv1d."""
    cond = embed + global_cond_dim

    def block(cin: int, cout: int) -> int:
        convs = (cin * cout * kernel + cout) + (cout * cout * kernel + cout) + 2 * (2 * cout)
        film = cond * 2 * cout + 2 * cout
        return convs + film + (cin * cout + cout if cin != cout else 0)

    total = embed * 4 * embed + 4 * embed + 4 * embed * embed + embed
    dims = (input_dim, *down_dims)
    levels = list(zip(dims[:-1], dims[1:]))
    for i, (cin, cout) in enumerate(levels):
        total += block(cin, cout) + block(cout, cout) + (cout * cout * 3 + cout if i < len(levels) - 1 else 0)
    total += 2 * block(down_dims[-1], down_dims[-1])
    for cin, cout in reversed(levels[1:]):
        total += block(2 * cout, cin) + block(cin, cin) + cin * cin * 4 + cin
    d0 = down_dims[0]
    return total + d0 * d0 * kernel + d0 + 2 * d0 + d0 * input_dim + input_dim


def test_the_image_paper_preset_has_the_reference_hybrid_image_policys_parameter_count():
    cfg, train = build_configs("dp", "image-paper")
    with torch.device("meta"):  # 263M parameters: count them without allocating them
        model = build_method("dp", cfg, PUSHT_IMAGE, MinMaxNormalizer({}, {}), seed=0)
    # the reference's PushT image policy: obs features per step = 64 (image) + 2 (agent_pos), To = 2
    unet = reference_unet_params(2, 2 * (64 + 2), 128, (512, 1024, 2048), 5)
    assert num_params(model.unet) == unet
    assert num_params(model.encoders) == reference_encoder_params()
    assert num_params(model) == unet + reference_encoder_params() == 262_709_026
    assert (cfg.crop_shape, cfg.horizon, cfg.obs_steps, cfg.action_steps, train.batch_size, train.lr) == ((84, 84), 16, 2, 8, 64, 1e-4)


def tiny_image_demos(tmp_path, episodes: int = 2, steps: int = 12):
    """A few short pusht/image episodes driven towards random targets (cheap: no expert planning)."""
    from lwd.envs.pusht import PushTEnv

    env, rng, parts = PushTEnv("image"), np.random.default_rng(0), []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        part: dict[str, list] = {"obs": [], "image": [], "action": []}
        for _ in range(steps):
            action = np.clip(obs["obs"] + rng.normal(0, 30, 2), 0, 512).astype(np.float32)
            part["obs"].append(obs["obs"]), part["image"].append(obs["image"]), part["action"].append(action)
            obs, *_ = env.step(action)
        parts.append({k: np.stack(v) for k, v in part.items()})
    data = Episodes.from_list(parts, attrs={"suite": "pusht/image", "tasks": ["pusht"]}, image_keys=("image",))
    return data.save(tmp_path / "demos.zarr")


TINY = ["steps=3", "down_dims=[16,32]", "diffusion_step_embed_dim=16", "horizon=8", "action_steps=4",
        "image_keypoints=4", "camera_features=8", "crop_shape=[88,88]"]


def test_a_tiny_pusht_image_run_trains_reads_frames_and_evaluates_end_to_end(tmp_path):
    from lwd.checkpoint import load_model
    from lwd.envs.pusht import PushTEnv
    from lwd.evaluation.evaluate import evaluate
    from lwd.pipeline import train_run
    from lwd.suites import make_suite

    data = tiny_image_demos(tmp_path)
    run = tmp_path / "run"
    model = train_run("dp", data, run, preset="image-cpu", overrides=TINY, train_overrides=["batch_size=4"], progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["images"] == [["image", [96, 96, 3]]] and saved["preset"] == "image-cpu"
    loaded = load_model(run)
    assert loaded.image_keys == ("image",) and num_params(loaded.encoders) > 0

    # the frames reach the condition: the same low-dim history with another frame gives another condition
    hist = torch.zeros(1, 2, 2)
    frames = torch.zeros(1, 2, 96, 96, 3, dtype=torch.uint8)
    with torch.no_grad():
        a = loaded.global_condition(hist, None, {"image": frames})
        b = loaded.global_condition(hist, None, {"image": frames + 200})
    assert a.shape == (1, loaded.global_cond_dim) == (1, 2 * (8 + 2)) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"reads camera frames \['image'\]"):
        loaded.global_condition(hist, None)

    suite = make_suite("pusht/image")
    short = dataclasses.replace(suite, make_task_env=lambda task, **kw: PushTEnv("image", **{"max_episode_steps": 6, **kw}))
    runtime = GenerationRuntime(sampler="ddim", inference_steps=2)
    result = evaluate(loaded, short, episodes_per_task=2, n_envs=2, runtime=runtime, progress=False)
    assert len(result["episodes"]) == 2 and all(e["steps"] == 6 for e in result["episodes"])
    assert result["cost"]["generations"] == 4  # a plan every Ta = 4 steps, 6 steps per episode
    assert result["cost"]["flops_image_encoders"] > 0
    again = evaluate(model.eval(), short, episodes_per_task=2, n_envs=1, runtime=runtime, progress=False)
    assert [e["total_reward"] for e in again["episodes"]] == [e["total_reward"] for e in result["episodes"]]
