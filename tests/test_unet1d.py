"""Specification of Diffusion Policy's ConditionalUnet1D (lwd.nn.unet1d)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lwd.methods.dp.unet1d import (
    ConditionalResidualBlock1D,
    ConditionalUnet1D,
    min_horizon_multiple,
    round_up_horizon,
)

PAPER_DOWN_DIMS = (256, 512, 1024)


@pytest.fixture(scope="module")
def paper_unet() -> ConditionalUnet1D:
    """The DP low-dim PushT preset: 2-d actions, To=2 observations of 5-d state."""
    torch.manual_seed(0)
    return ConditionalUnet1D(input_dim=2, global_cond_dim=2 * 5).eval()


def test_paper_preset_output_shape_matches_input(paper_unet: ConditionalUnet1D) -> None:
    sample = torch.randn(3, 16, 2)
    with torch.no_grad():
        out = paper_unet(sample, torch.tensor([0, 50, 99]), torch.randn(3, 10))
    assert out.shape == (3, 16, 2)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "horizon, input_dim, down_dims",
    [
        (16, 2, (32, 64, 128)),
        (8, 7, (16, 32)),
        (32, 10, (16, 32, 64, 64)),
        (5, 3, (16,)),  # a single level never downsamples, so any T works
    ],
)
def test_output_shape_equals_sample_shape(horizon: int, input_dim: int, down_dims: tuple) -> None:
    net = ConditionalUnet1D(input_dim, 4, diffusion_step_embed_dim=16, down_dims=down_dims)
    out = net(torch.randn(2, horizon, input_dim), 7, torch.randn(2, 4))
    assert out.shape == (2, horizon, input_dim)


def test_global_cond_and_timestep_both_change_the_output(paper_unet: ConditionalUnet1D) -> None:
    torch.manual_seed(1)
    sample, cond = torch.randn(1, 16, 2), torch.randn(1, 10)
    with torch.no_grad():
        base = paper_unet(sample, 10, cond)
        other_cond = paper_unet(sample, 10, cond + 1.0)
        other_step = paper_unet(sample, 80, cond)
    assert (base - other_cond).abs().max() > 1e-4
    assert (base - other_step).abs().max() > 1e-4


def test_int_scalar_and_batched_timesteps_agree() -> None:
    net = ConditionalUnet1D(2, 3, diffusion_step_embed_dim=16, down_dims=(16, 32)).eval()
    sample, cond = torch.randn(2, 8, 2), torch.randn(2, 3)
    a = net(sample, 5, cond)
    b = net(sample, torch.tensor(5), cond)
    c = net(sample, torch.tensor([5, 5]), cond)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_film_without_scale_predicts_bias_only() -> None:
    with_scale = ConditionalResidualBlock1D(8, 16, 12, 5, 8, cond_predict_scale=True)
    bias_only = ConditionalResidualBlock1D(8, 16, 12, 5, 8, cond_predict_scale=False)
    assert with_scale.cond_encoder[-1].out_features == 32
    assert bias_only.cond_encoder[-1].out_features == 16
    assert bias_only(torch.randn(2, 8, 4), torch.randn(2, 12)).shape == (2, 16, 4)


def test_paper_preset_parameter_count_matches_dp_lowdim_unet(paper_unet: ConditionalUnet1D) -> None:
    n = sum(p.numel() for p in paper_unet.parameters())
    print(f"paper ConditionalUnet1D(input_dim=2, global_cond_dim=10) params: {n:,} ({n:.3e})")
    assert 5e7 < n < 8e7
    # global_cond_dim=20 is the other commonly quoted DP low-dim figure (~6.5e7).
    n20 = sum(p.numel() for p in ConditionalUnet1D(2, 20).parameters())
    print(f"paper ConditionalUnet1D(input_dim=2, global_cond_dim=20) params: {n20:,} ({n20:.3e})")
    assert 5e7 < n20 < 8e7


def test_flop_counter_counts_one_paper_forward(paper_unet: ConditionalUnet1D) -> None:
    sample, cond = torch.randn(1, 16, 2), torch.randn(1, 10)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        paper_unet(sample, torch.tensor([3]), cond)
    flops = counter.get_total_flops()
    print(f"paper ConditionalUnet1D forward FLOPs (B=1, T=16): {flops:,} ({flops:.3e})")
    assert flops > 0


def test_horizon_helpers_give_the_smallest_valid_multiple() -> None:
    assert min_horizon_multiple(PAPER_DOWN_DIMS) == 4
    assert ConditionalUnet1D.min_horizon_multiple((64,)) == 1
    assert round_up_horizon(16, PAPER_DOWN_DIMS) == 16
    assert round_up_horizon(30, PAPER_DOWN_DIMS) == 32
    assert round_up_horizon(1, PAPER_DOWN_DIMS) == 4
    assert ConditionalUnet1D.round_up_horizon(33, (8, 16, 32, 64)) == 40


def test_non_multiple_horizon_raises_clear_error() -> None:
    net = ConditionalUnet1D(2, 4, diffusion_step_embed_dim=16, down_dims=(16, 32, 64))
    with pytest.raises(ValueError, match=r"T=10 is not a multiple of 4.*T=12"):
        net(torch.randn(1, 10, 2), 0, torch.randn(1, 4))


def test_mismatched_dims_raise_clear_errors() -> None:
    net = ConditionalUnet1D(2, 4, diffusion_step_embed_dim=16, down_dims=(16, 32))
    with pytest.raises(ValueError, match="input_dim=2"):
        net(torch.randn(1, 8, 3), 0, torch.randn(1, 4))
    with pytest.raises(ValueError, match="global_cond_dim=4"):
        net(torch.randn(1, 8, 2), 0, torch.randn(1, 5))
    with pytest.raises(ValueError, match="global_cond is required"):
        net(torch.randn(1, 8, 2), 0, None)


def test_unconditional_unet_accepts_no_global_cond() -> None:
    net = ConditionalUnet1D(2, 0, diffusion_step_embed_dim=16, down_dims=(16, 32))
    assert net(torch.randn(2, 8, 2), 1).shape == (2, 8, 2)


def test_tiny_unet_overfits_a_fixed_batch() -> None:
    torch.manual_seed(0)
    net = ConditionalUnet1D(2, 6, diffusion_step_embed_dim=32, down_dims=(32, 64))
    sample, target = torch.randn(8, 16, 2), torch.randn(8, 16, 2)
    cond, steps = torch.randn(8, 6), torch.randint(0, 100, (8,))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss = torch.nn.functional.mse_loss(net(sample, steps, cond), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"tiny U-Net overfit: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    assert losses[-1] < losses[0] / 10
