"""The latent-conditioned MLP baseline: pi(s, z) as a decoder that only shifts the first bias."""

from __future__ import annotations

import numpy as np
import torch

from lwd.checkpoint import load_model
from lwd.config import RunConfig, TrainConfig
from lwd.data import MinMaxNormalizer
from lwd.methods import build_method
from lwd.methods.lwd import LWDConfig
from lwd.pipeline import data_info
from lwd.train import train

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
