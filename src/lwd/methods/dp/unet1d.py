"""Diffusion Policy's 1-D temporal CNN U-Net denoiser (Chi et al., 2023).

This is the noise-prediction network of the Diffusion Policy baseline. It is kept
architecturally identical to the reference ``ConditionalUnet1D`` (low-dim variant, global
conditioning only) so that baseline parameter counts, FLOPs and results are comparable
with the paper. Where the reference has a quirk, we keep it and say so.

Horizon vocabulary (as in Diffusion Policy)::

    To = n_obs_steps      observations the policy is conditioned on
    T  = horizon          actions the U-Net denoises at once (the "sample" length)
    Ta = n_action_steps   actions actually executed before re-planning

    time:     |t-1|  t  |t+1| ... |t+Ta-1| ...  |t+T-To|
    obs:      |  To obs |
    sample:   |<------------------- T actions ---------->|
    executed:       |<---- Ta ---->|   (indices [To-1, To-1+Ta) of the sample)

The network treats the action sequence as a 1-D signal with ``input_dim`` channels over
``T`` time steps. The diffusion step and the flattened observation history enter every
residual block through FiLM (per-channel scale and bias), which is what the paper found
to work best for low-dim observations.

Shapes: ``B`` batch, ``T`` horizon, ``Da`` action (input) dim, ``C`` channels,
``Dc`` condition dim (= step embedding dim + global_cond_dim).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "SinusoidalPosEmb",
    "Conv1dBlock",
    "Downsample1d",
    "Upsample1d",
    "ConditionalResidualBlock1D",
    "ConditionalUnet1D",
    "min_horizon_multiple",
    "round_up_horizon",
]


def min_horizon_multiple(down_dims: Sequence[int]) -> int:
    """Return the factor the horizon ``T`` must be a multiple of for ``down_dims``.

    Every level but the last halves the time axis (stride-2 conv) and the up path doubles
    it back; the skip concatenation only lines up when each halving is exact, so ``T``
    must be divisible by ``2 ** (number of downsamplings)``.
    """
    if len(down_dims) == 0:
        raise ValueError("down_dims must name at least one level, e.g. (256, 512, 1024).")
    return 2 ** (len(down_dims) - 1)


def round_up_horizon(horizon: int, down_dims: Sequence[int]) -> int:
    """Return the smallest valid U-Net horizon that is ``>= horizon``.

    The benchmark harness uses this when a long action horizon (e.g. Ta=30) needs a
    prediction horizon the U-Net can actually process.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}.")
    m = min_horizon_multiple(down_dims)
    return ((horizon + m - 1) // m) * m


class SinusoidalPosEmb(nn.Module):
    """Transformer-style sinusoidal embedding of a (possibly fractional) diffusion step.

    Gives the step MLP a smooth, multi-frequency code of ``t`` instead of a raw scalar,
    so nearby steps get similar embeddings and far ones are easy to separate.
    Output layout is ``[sin(t * f_0..f_{h-1}), cos(t * f_0..f_{h-1})]`` with
    ``h = dim // 2`` geometrically spaced frequencies from 1 down to 1/10000.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 4 or dim % 2 != 0:
            raise ValueError(f"SinusoidalPosEmb dim must be an even number >= 4, got {dim}.")
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        # x: (B,) diffusion steps -> (B, dim)
        half = self.dim // 2
        scale = math.log(10000.0) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=x.device, dtype=torch.float32) * -scale)
        args = x.float()[:, None] * freqs[None, :]  # (B, half)
        return torch.cat((args.sin(), args.cos()), dim=-1)  # (B, dim)


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish, the basic unit of the U-Net.

    'Same' padding keeps the time length, so only the explicit down/upsample layers change
    ``T``. GroupNorm (not BatchNorm) keeps training stable at any batch size and makes
    the output of one sample independent of the others in the batch.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, n_groups: int = 8) -> None:
        super().__init__()
        if out_ch % n_groups != 0:
            raise ValueError(
                f"GroupNorm needs out_ch ({out_ch}) divisible by n_groups ({n_groups}); "
                "pick channel widths that are multiples of n_groups."
            )
        self.block = nn.Sequential(
            nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_ch),
            nn.Mish(),
        )

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C_in, T) -> (B, C_out, T)
        return self.block(x)


class Downsample1d(nn.Module):
    """Halve the time axis with a learned stride-2 convolution (kernel 3, pad 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, T) -> (B, C, T/2)
        return self.conv(x)


class Upsample1d(nn.Module):
    """Double the time axis with a transposed convolution (kernel 4, stride 2, pad 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, T) -> (B, C, 2T)
        return self.conv(x)


class ConditionalResidualBlock1D(nn.Module):
    """Two Conv1dBlocks with FiLM conditioning in between and a residual connection.

    The condition (diffusion-step embedding + observation features) modulates the features
    after the first conv: ``h = scale(c) * h + bias(c)`` when ``cond_predict_scale`` (the
    Diffusion Policy default for low-dim tasks), else ``h = h + bias(c)``. The residual
    path uses a 1x1 conv only when the channel count changes, so equal-width blocks are an
    exact identity-plus-correction.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        cond_dim: int,
        kernel_size: int = 3,
        n_groups: int = 8,
        cond_predict_scale: bool = False,
    ) -> None:
        super().__init__()
        self.out_ch = out_ch
        self.cond_predict_scale = cond_predict_scale
        self.blocks = nn.ModuleList(
            [
                Conv1dBlock(in_ch, out_ch, kernel_size, n_groups),
                Conv1dBlock(out_ch, out_ch, kernel_size, n_groups),
            ]
        )
        film_ch = 2 * out_ch if cond_predict_scale else out_ch
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, film_ch))
        self.residual_conv: nn.Module = (
            nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        # x: (B, C_in, T), cond: (B, Dc) -> (B, C_out, T)
        h = self.blocks[0](x)  # (B, C_out, T)
        film = self.cond_encoder(cond)  # (B, 2*C_out) or (B, C_out)
        if self.cond_predict_scale:
            film = film.reshape(film.shape[0], 2, self.out_ch, 1)
            scale, bias = film[:, 0], film[:, 1]  # (B, C_out, 1) each
            h = scale * h + bias
        else:
            h = h + film.unsqueeze(-1)
        h = self.blocks[1](h)
        return h + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    """Diffusion Policy's FiLM-conditioned 1-D U-Net over the action sequence.

    Layout for ``down_dims = (d0, d1, ..., dL)`` (levels ``0..L``):

    - step encoder: SinusoidalPosEmb(E) -> Linear(E, 4E) -> Mish -> Linear(4E, E);
      condition ``c = [step_emb, global_cond]`` of size ``E + global_cond_dim``.
    - down level i: ResBlock(d_{i-1} -> d_i), ResBlock(d_i -> d_i), then Downsample1d
      except at the last level (``d_{-1} = input_dim``). Each level's output is kept as skip.
    - mid: two ResBlocks at ``dL``.
    - up levels for i = L..1: concat the level-i skip, ResBlock(2 d_i -> d_{i-1}),
      ResBlock(d_{i-1} -> d_{i-1}), Upsample1d.
    - head: Conv1dBlock(d0 -> d0) -> 1x1 Conv1d(d0 -> input_dim).

    Reference quirk kept on purpose: the up path has one level fewer than the down path,
    so the level-0 skip (full resolution, ``d0`` channels) is computed but never consumed.
    Keeping it makes parameter counts and FLOPs match the published baseline.

    The horizon ``T`` must be a multiple of ``min_horizon_multiple(down_dims)``;
    use ``round_up_horizon`` to pick one.
    """

    def __init__(
        self,
        input_dim: int,
        global_cond_dim: int,
        diffusion_step_embed_dim: int = 256,
        down_dims: Sequence[int] = (256, 512, 1024),
        kernel_size: int = 5,
        n_groups: int = 8,
        cond_predict_scale: bool = True,
    ) -> None:
        super().__init__()
        if input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}.")
        if global_cond_dim < 0:
            raise ValueError(f"global_cond_dim must be >= 0, got {global_cond_dim}.")
        if kernel_size % 2 != 1:
            raise ValueError(
                f"kernel_size must be odd so 'same' padding keeps T, got {kernel_size}."
            )
        down_dims = tuple(int(d) for d in down_dims)
        self.horizon_multiple = min_horizon_multiple(down_dims)
        self.input_dim = input_dim
        self.global_cond_dim = global_cond_dim
        self.down_dims = down_dims

        e = diffusion_step_embed_dim
        self.diffusion_step_encoder = nn.Sequential(
            SinusoidalPosEmb(e),
            nn.Linear(e, 4 * e),
            nn.Mish(),
            nn.Linear(4 * e, e),
        )
        cond_dim = e + global_cond_dim

        def res(i: int, o: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(
                i, o, cond_dim, kernel_size, n_groups, cond_predict_scale
            )

        all_dims = (input_dim,) + down_dims
        in_out = list(zip(all_dims[:-1], all_dims[1:]))

        self.down_modules = nn.ModuleList()
        for level, (d_in, d_out) in enumerate(in_out):
            is_last = level == len(in_out) - 1
            self.down_modules.append(
                nn.ModuleList(
                    [
                        res(d_in, d_out),
                        res(d_out, d_out),
                        nn.Identity() if is_last else Downsample1d(d_out),
                    ]
                )
            )

        mid = down_dims[-1]
        self.mid_modules = nn.ModuleList([res(mid, mid), res(mid, mid)])

        # One level fewer than the down path (see class docstring); every up level upsamples.
        self.up_modules = nn.ModuleList()
        for d_in, d_out in reversed(in_out[1:]):
            self.up_modules.append(
                nn.ModuleList([res(2 * d_out, d_in), res(d_in, d_in), Upsample1d(d_in)])
            )

        start = down_dims[0]
        self.final_conv = nn.Sequential(
            Conv1dBlock(start, start, kernel_size, n_groups),
            nn.Conv1d(start, input_dim, 1),
        )

    min_horizon_multiple = staticmethod(min_horizon_multiple)
    round_up_horizon = staticmethod(round_up_horizon)

    def _check_inputs(self, sample: Tensor, global_cond: Tensor | None) -> None:
        """Fail early with messages that say what to change, instead of a deep shape error."""
        if sample.ndim != 3:
            raise ValueError(
                f"sample must be (B, T, input_dim={self.input_dim}), got shape {tuple(sample.shape)}."
            )
        _, horizon, dim = sample.shape
        if dim != self.input_dim:
            raise ValueError(
                f"sample's last dim is {dim} but the U-Net was built with input_dim={self.input_dim}."
            )
        if horizon % self.horizon_multiple != 0:
            raise ValueError(
                f"horizon T={horizon} is not a multiple of {self.horizon_multiple} "
                f"(= 2**(len(down_dims)-1) for down_dims={self.down_dims}); use "
                f"T={round_up_horizon(horizon, self.down_dims)} (see round_up_horizon)."
            )
        if global_cond is None:
            if self.global_cond_dim > 0:
                raise ValueError(
                    f"global_cond is required: the U-Net was built with "
                    f"global_cond_dim={self.global_cond_dim}."
                )
            return
        if global_cond.ndim != 2 or global_cond.shape[0] != sample.shape[0]:
            raise ValueError(
                f"global_cond must be (B={sample.shape[0]}, {self.global_cond_dim}), "
                f"got shape {tuple(global_cond.shape)}."
            )
        if global_cond.shape[1] != self.global_cond_dim:
            raise ValueError(
                f"global_cond has dim {global_cond.shape[1]} but the U-Net was built with "
                f"global_cond_dim={self.global_cond_dim} (usually n_obs_steps * obs_dim)."
            )

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | int,
        global_cond: Tensor | None = None,
    ) -> Tensor:
        """Predict the noise (or sample) for a noisy action sequence.

        Args:
            sample: noisy actions, (B, T, Da).
            timestep: diffusion step, an int, a 0-d tensor, or a (B,) tensor.
            global_cond: flattened observation features, (B, global_cond_dim), or None
                when the U-Net was built with ``global_cond_dim=0``.

        Returns:
            (B, T, Da), same shape as ``sample``.
        """
        self._check_inputs(sample, global_cond)
        batch = sample.shape[0]
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], device=sample.device)
        if timestep.ndim == 0:
            timestep = timestep[None]
        timestep = timestep.to(sample.device).expand(batch)  # (B,)

        cond = self.diffusion_step_encoder(timestep).to(sample.dtype)  # (B, E)
        if global_cond is not None:
            cond = torch.cat([cond, global_cond], dim=-1)  # (B, Dc)

        x = sample.transpose(1, 2)  # (B, Da, T)
        skips: list[Tensor] = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = down(x)
        for res_block in self.mid_modules:
            x = res_block(x, cond)
        for res1, res2, up in self.up_modules:
            x = torch.cat((x, skips.pop()), dim=1)
            x = res2(res1(x, cond), cond)
            x = up(x)
        x = self.final_conv(x)  # (B, Da, T)
        return x.transpose(1, 2)  # (B, T, Da)
