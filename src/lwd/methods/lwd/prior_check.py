"""Does the latent prior reproduce a multimodal posterior, or sample between its modes?

A generated policy is only as good as the latent it is decoded from. When the posterior latents of
a condition form separate clusters (two behaviours seen from the same state), a prior that puts
samples *between* them decodes blends of behaviours that no demonstration showed. This check
trains LWD's prior alone, with the settings and budget of a given config, on latents drawn from two
clusters under one condition, and measures where its samples land:

- `inside`: the share of samples within a cluster's own spread. A sample is inside cluster k when
  its coordinate along the line through the two centres lies within the range of cluster k's own
  latents on that line, and its distance from that line is no more than the largest distance of
  cluster k's latents from it. (In many dimensions a plain radius test is weak: the midpoint of two
  clusters can lie within the typical radius of both; the coordinate along the centres' line is
  where "between" shows.)
- `shares`: the fraction of samples inside each cluster, against the data's mixture weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lwd.config import DataInfo, TrainConfig
from lwd.data import MinMaxNormalizer
from lwd.data.keys import ACTION, OBS, OBS_HISTORY, TASK
from lwd.methods.lwd.config import LWDConfig


@dataclass(frozen=True)
class TwoClusters:
    """Latents of one condition in two isotropic Gaussian clusters at +-separation/2 along a random unit
    direction; `weight` is the first cluster's share. Units are those of the VAE's latent space."""

    separation: float = 6.0
    spread: float = 0.25
    weight: float = 0.7
    count: int = 4000
    seed: int = 0

    def sample(self, latent_dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> latents (N, Dz), cluster labels (N,), centres (2, Dz)."""
        rng = np.random.default_rng(self.seed)
        direction = rng.normal(size=latent_dim)
        direction /= np.linalg.norm(direction)
        centres = np.stack([direction, -direction]) * self.separation / 2
        labels = (rng.random(self.count) >= self.weight).astype(np.int64)
        latents = centres[labels] + rng.normal(scale=self.spread, size=(self.count, latent_dim))
        return latents.astype(np.float32), labels, centres.astype(np.float32)


@dataclass
class ClusterFit:
    """Where the prior's samples land relative to the two clusters (see the module docstring)."""

    inside: float
    shares: list[float]
    data_shares: list[float]
    between: float
    """Share of samples whose coordinate on the centres' line lies strictly between the clusters' ranges."""
    samples: np.ndarray = field(repr=False)
    latents: np.ndarray = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"inside": self.inside, "shares": self.shares, "data_shares": self.data_shares, "between": self.between}


def cluster_fit(samples: np.ndarray, latents: np.ndarray, labels: np.ndarray, centres: np.ndarray) -> ClusterFit:
    """Measure samples (M, Dz) against the clusters of `latents` (N, Dz) with `labels` and `centres` (2, Dz)."""
    axis = centres[1] - centres[0]
    axis = axis / np.linalg.norm(axis)

    def along(x: np.ndarray) -> np.ndarray:
        return (x - centres[0]) @ axis  # (M,)

    def off_line(x: np.ndarray) -> np.ndarray:
        rel = x - centres[0]
        return np.linalg.norm(rel - np.outer(rel @ axis, axis), axis=1)

    t_data, r_data = along(latents), off_line(latents)
    t_samp, r_samp = along(samples), off_line(samples)
    member = np.zeros((2, len(samples)), dtype=bool)
    for k in range(2):
        own = labels == k
        lo, hi, reach = t_data[own].min(), t_data[own].max(), r_data[own].max()
        member[k] = (t_samp >= lo) & (t_samp <= hi) & (r_samp <= reach)
    inside = member.any(0)
    gap_lo, gap_hi = t_data[labels == 0].max(), t_data[labels == 1].min()
    between = (t_samp > gap_lo) & (t_samp < gap_hi)
    n = max(len(samples), 1)
    return ClusterFit(
        inside=float(inside.mean()),
        shares=[float(member[k].sum() / n) for k in range(2)],
        data_shares=[float((labels == k).mean()) for k in range(2)],
        between=float(between.mean()),
        samples=samples,
        latents=latents,
    )


@dataclass
class ClusterPrior:
    """A prior trained on two clusters of latents (`train_prior_on_clusters`), ready to be sampled."""

    model: Any
    latents: np.ndarray
    labels: np.ndarray
    centres: np.ndarray
    obs_dim: int

    def measure(self, samples: int = 2000, sampler: str | None = None, steps: int | None = None, seed: int = 1) -> ClusterFit:
        """Sample the prior under the clusters' condition and measure where the samples land."""
        cfg = self.model.cfg
        task = torch.zeros(samples, dtype=torch.long) if cfg.uses_task else None
        cond = self.model.condition(task, torch.zeros(samples, cfg.obs_steps, self.obs_dim))
        z = self.model.sample_latents(cond, torch.Generator().manual_seed(seed), sampler, steps)
        return cluster_fit(z.numpy(), self.latents, self.labels, self.centres)


def train_prior_on_clusters(cfg: LWDConfig, clusters: TwoClusters = TwoClusters(), obs_dim: int = 2,
                            train_cfg: TrainConfig | None = None, progress: bool = False) -> ClusterPrior:
    """Train LWD's prior (as `cfg` configures it, for `cfg.prior_steps` steps) on two clusters of
    latents under a single condition."""
    from lwd.methods.lwd.model import LWD
    from lwd.training.train import fit_stage

    info = DataInfo(obs_dim=obs_dim, action_dim=1, tasks=("only",) if cfg.uses_task else ())
    # The normaliser is unused here (latents and conditions are given in model units).
    normalizer = MinMaxNormalizer({OBS: np.full(obs_dim, -1.0), ACTION: np.full(1, -1.0)},
                                  {OBS: np.full(obs_dim, 1.0), ACTION: np.full(1, 1.0)})
    model = LWD(cfg, info, normalizer)
    latents, labels, centres = clusters.sample(cfg.latent_dim)
    n = len(latents)
    data = {"mu": torch.from_numpy(latents), "logvar": torch.full((n, cfg.latent_dim), -20.0),
            OBS_HISTORY: torch.zeros(n, cfg.obs_steps, obs_dim)}
    if cfg.uses_task:
        data[TASK] = torch.zeros(n, dtype=torch.long)
    fit_stage(model, model.latent_prior_stage(lambda: data), train_cfg or TrainConfig(), progress=progress)
    return ClusterPrior(model, latents, labels, centres, obs_dim)
