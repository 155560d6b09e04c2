"""The latent-conditioned MLP baseline: pi(s, z) as a decoder that only shifts the first bias."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwd.checkpoint import load_model
from lwd.config import RunConfig, TrainConfig
from lwd.data import MinMaxNormalizer
from lwd.methods import build_method
from lwd.methods.lwd import LWDConfig
from lwd.pipeline import data_info
from lwd.training.train import train

from conftest import make_episodes

CFG = LWDConfig(latent_dim=8, policy_hidden=(16, 16), horizon=4, encoder_dim=16, encoder_heads=2, denoiser_width=32,
                denoiser_blocks=1, vae_steps=30, prior_steps=10, prior_batch_size=16, chunk_size=128, hyper_hidden=(32,))


def _build(name: str):
    episodes = make_episodes()
    info = data_info(episodes, "memory")
    return build_method(name, CFG, info, MinMaxNormalizer.fit(episodes.data), seed=0), episodes, info


def test_decoded_policy_is_an_mlp_on_state_and_latent():
    model, _, _ = _build("lcmlp")
    decoder = model.vae.decoder
    z, states = torch.randn(3, 8), torch.randn(3, 6, 5)
    layers = model.target.unflatten(decoder.base[None])
    w_s, b = layers[0][0][0], layers[0][1][0, 0]
    w_z = decoder.latent_to_bias.weight.T  # (Dz, h1)
    h = torch.relu(torch.cat([states, z[:, None].expand(-1, 6, -1)], -1) @ torch.cat([w_s, w_z]) + b)
    h = torch.relu(h @ layers[1][0][0] + layers[1][1][0, 0])
    expected = h @ layers[2][0][0] + layers[2][1][0, 0]
    torch.testing.assert_close(decoder.policy_actions(z, states), expected, rtol=1e-5, atol=1e-5)


def test_same_per_step_size_as_lwd_and_a_much_smaller_decoder():
    lcmlp, _, _ = _build("lcmlp")
    lwd, _, _ = _build("lwd")
    runtime = lwd.runtime_options(action_horizon=4)
    a, b = lcmlp.cost(runtime), lwd.cost(runtime)
    assert a.params_per_step == b.params_per_step and a.flops_policy_step == b.flops_policy_step
    assert a.to_dict()["params_decoder"] < b.to_dict()["params_decoder"] / 5


def test_trains_round_trips_and_acts(tmp_path):
    model, episodes, info = _build("lcmlp")
    train_cfg = TrainConfig(batch_size=16, warmup_steps=5)
    train(model, episodes, train_cfg, RunConfig("lcmlp", CFG, train_cfg, info), tmp_path, progress=False)
    assert model.vae.decoder.latent_to_bias.weight.abs().sum() > 0
    loaded = load_model(tmp_path)
    obs = np.asarray(episodes.data["obs"][:5], np.float32)
    actions = []
    for m in (model, loaded):
        policy = m.make_policy(m.runtime_options(action_horizon=2))
        policy.reset(seed=3, task=1)
        actions.append(np.stack([policy.act(o) for o in obs]))
    np.testing.assert_array_equal(actions[0], actions[1])


def _two_mode_episodes(num_episodes: int = 16, length: int = 16):
    """Observation always 0; each episode's action ramps either from +0.5 to +0.8 or from -0.5 to -0.8."""
    from lwd.data import Episodes

    ramp = np.linspace(0.5, 0.8, length, dtype=np.float32)[:, None]
    eps = [{"obs": np.zeros((length, 1), np.float32), "action": (1 if i % 2 == 0 else -1) * ramp}
           for i in range(num_episodes)]
    return Episodes.from_list(eps, attrs={"suite": ""})


@pytest.mark.parametrize("name", ["lcmlp", "lwd"])
def test_generated_policies_reproduce_both_modes_of_a_bimodal_task(tmp_path, name):
    """The same observation, two demonstrated behaviours: each generated policy must pick one of them
    (its sign) and keep its size, never the average of the two (0), and different episode seeds
    must reach both. The latent-conditioned baseline must keep this property of LWD."""
    episodes = _two_mode_episodes()
    info = data_info(episodes, "memory")
    cfg = LWDConfig(latent_dim=4, policy_hidden=(16, 16), horizon=4, condition="state", encoder_dim=16, encoder_heads=2,
                    denoiser_width=128, denoiser_blocks=1, diffusion_train_steps=50, inference_steps=10, vae_steps=400, prior_lr=1e-3,
                    prior_steps=1500, prior_batch_size=64, chunk_size=128, hyper_hidden=(32,), kl_weight=1e-3)
    train_cfg = TrainConfig(batch_size=32, lr=3e-3, warmup_steps=20, checkpoint_every=10_000)
    model = build_method(name, cfg, info, MinMaxNormalizer.fit(episodes.data), seed=0)
    train(model, episodes, train_cfg, RunConfig(name, cfg, train_cfg, info), tmp_path, progress=False)

    policy = model.make_policy(model.runtime_options(action_horizon=4))
    first = []
    for seed in range(40):
        policy.reset(seed)
        first.append(float(policy.act(np.zeros(1, np.float32))[0]))
    first = np.asarray(first)
    positive = float((first > 0).mean())
    print(f"\n{name}: fraction of + mode {positive:.2f}; first actions {np.round(first, 2)}")
    assert 0.2 <= positive <= 0.8, f"{name} samples one mode only ({positive:.2f} positive)"
    on_mode = (np.abs(first) > 0.35) & (np.abs(first) < 0.95)
    assert on_mode.mean() >= 0.9, f"only {on_mode.mean():.2f} of {name}'s generated policies act on a mode: {first}"
