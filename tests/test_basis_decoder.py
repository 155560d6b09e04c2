"""The shared-basis decoder (decoder="basis"): what it can express, what it costs, and that it trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwd.config import DataInfo
from lwd.data import MinMaxNormalizer
from lwd.flops import count_flops
from lwd.methods.lwd import LWD, LWDConfig
from lwd.methods.lwd.hypernet import BasisHypernetwork, ChunkedHypernetwork
from lwd.methods.target_mlp import TargetMLPSpec, batched_mlp_forward

from conftest import make_episodes


def test_generated_policies_lie_in_a_subspace_of_basis_size_dimensions():
    spec = TargetMLPSpec(7, 3, (16, 12), "relu")
    decoder = BasisHypernetwork(spec, latent_dim=5, basis_size=4, hidden=(32,))
    theta = decoder(torch.randn(50, 5)).detach()
    offsets = theta - decoder.base.detach()
    singular = torch.linalg.svdvals(offsets)
    assert (singular[:4] > 1e-3 * singular[0]).all()  # four directions used, and no more
    assert singular[4] < 1e-5 * singular[0]
    assert not torch.allclose(theta[0], theta[1])


def test_batched_policies_match_one_at_a_time():
    spec = TargetMLPSpec(7, 3, (16,), "mish")
    decoder = BasisHypernetwork(spec, latent_dim=5, basis_size=8, hidden=(32,))
    z, obs = torch.randn(4, 5), torch.randn(4, 6, 7)
    batched = decoder.policy_actions(z, obs)
    for b in range(4):
        torch.testing.assert_close(batched[b], batched_mlp_forward(spec, decoder(z[b:b + 1]), obs[b:b + 1])[0])


def test_fresh_basis_decoder_gives_sanely_scaled_policy():
    spec = TargetMLPSpec(39, 4, (128, 128))
    out = BasisHypernetwork(spec, latent_dim=64).policy_actions(torch.randn(16, 64), torch.randn(16, 10, 39))
    assert 0.05 < out.std().item() < 5.0


def test_basis_decoder_costs_about_two_flops_per_basis_direction_and_parameter():
    """What the option is for: MT10's policy (22,148 parameters) from 32 directions instead of a 256-wide head."""
    spec = TargetMLPSpec(39, 4, (128, 128))
    z = torch.randn(1, 64)
    basis = count_flops(lambda: BasisHypernetwork(spec, 64, basis_size=32, hidden=(256,))(z))
    chunked = count_flops(lambda: ChunkedHypernetwork(spec, 64, hidden=(256,))(z))
    assert 2 * 32 * spec.num_params <= basis < 1.1 * 2 * 32 * spec.num_params + 2 * 64 * 256 + 2 * 256 * 32
    assert basis < chunked / 5


def test_basis_decoder_fits_a_handful_of_segments():
    episodes = make_episodes()
    cfg = LWDConfig(latent_dim=8, policy_hidden=(32, 32), hyper_hidden=(64,), encoder_dim=32, encoder_heads=2,
                    denoiser_width=32, denoiser_blocks=1, horizon=8, kl_weight=0.0, decoder="basis", basis_size=16)
    model = LWD(cfg, DataInfo(5, 2, ("t0", "t1")), MinMaxNormalizer.fit(episodes.data))
    assert isinstance(model.vae.decoder, BasisHypernetwork)
    dataset = model.segment_dataset(episodes)
    batch = dataset.sample_batch(np.arange(0, len(dataset), 15)[:8])
    opt = torch.optim.Adam(model.vae.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for step in range(400):
        loss, metrics = model.vae.loss(batch, kl_weight=0.0)
        first = metrics["bc_mse"] if step == 0 else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert metrics["bc_mse"] < 1e-3, f"basis decoder could not fit 8 segments: mse {metrics['bc_mse']:.5f} (start {first:.3f})"


@pytest.mark.parametrize("bad", [{"decoder": "lowrank"}, {"basis_size": 0}])
def test_bad_decoder_settings_are_refused(bad):
    with pytest.raises(ValueError, match="decoder|basis_size"):
        LWDConfig(**bad)
