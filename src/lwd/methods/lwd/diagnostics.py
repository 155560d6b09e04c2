"""Is the latent used? Measurements of an LWD model's latent space, logged when each training stage ends.

A VAE whose decoder can fit the data without z learns to ignore it (posterior collapse): the
KL term then pushes every posterior to the prior, every generated policy is the same MLP, and the
diffusion prior has nothing to generate. These figures say whether that happened and where:

After the VAE stage (posterior only):
- `kl_per_dim`, `kl`: KL(q(z | segment) || N(0, I)) per latent dimension, mean over segments (nats).
- `active_units`: dimensions whose posterior mean varies over the data, Var_x(E[z_d | x]) >
  ACTIVE_THRESHOLD (Burda et al. 2016, in the VAE's units, where the prior has unit variance).
- `z_dependence_posterior`: at the same states, the spread (std) of the actions of policies decoded
  from the posterior means of other segments, over the spread of the demonstrated actions. 0 means
  the decoder ignores z; about 1 means swapping latents changes actions as much as the data does.
- `bc_mse_posterior`: behaviour cloning error of each segment's own decoded policy (posterior mean).

After the prior stage (generated latents):
- `z_dependence_prior`: as above, with K latents sampled from the prior for each state's own
  condition: how different the policies the prior generates for one situation are.
- `bc_mse_prior`: each segment's actions against the policy generated for its condition.
- `prior_mmd`, `posterior_mmd`: squared MMD (RBF kernel, median bandwidth) between generated latents
  and posterior samples z ~ q(z | segment) of one half of the segments, against the MMD between the
  two halves (the floor that sampling noise alone gives). Measured on training segments (the prior
  saw them all). Posterior *samples*, not means: the prior is trained on the aggregated posterior,
  so in a dimension the KL has collapsed (q = N(0, 1)) its samples spread like the prior's; against
  the means (logged before 2026-12-07, `reference` absent) every sample of a model with collapsed
  dimensions looked off support (1.00 on MT10 and on the collapsed PushT settings).
- `nn_ratio`, `off_support`: distance from each generated latent to its nearest posterior sample,
  median over the same for posterior samples of the other half; and the share of generated latents
  farther than 95% of the posterior ones are. Latents sampled *between* clusters of the posterior
  show up as a ratio above 1 and a share above 0.05.
All latent distances are in standardised units (the prior's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lwd.data import SegmentDataset
from lwd.data.keys import ACTIONS, MASK, OBS_HISTORY, STATES, TASK
from lwd.methods.target_mlp import TargetMLPSpec, batched_mlp_forward

if TYPE_CHECKING:
    from lwd.methods.lwd.model import LWD

ACTIVE_THRESHOLD = 0.01
"""Posterior-mean variance above which a latent dimension counts as active (Burda et al. 2016)."""


def action_spread(target: TargetMLPSpec, thetas: torch.Tensor, inputs: torch.Tensor) -> float:
    """Mean std of actions across policies at the same inputs.

    thetas (M, K, P): K policies for each of M inputs; inputs (M, D) -> scalar: the std over the K
    policies' actions, averaged over inputs and action dimensions."""
    m, k, p = thetas.shape
    x = inputs[:, None, None, :].expand(m, k, 1, inputs.shape[-1]).reshape(m * k, 1, -1)  # (M*K, 1, D)
    actions = batched_mlp_forward(target, thetas.reshape(m * k, p), x).reshape(m, k, -1)  # (M, K, Da)
    return float(actions.std(1, unbiased=False).mean())


def demo_spread(actions: torch.Tensor, mask: torch.Tensor) -> float:
    """Std of the demonstrated actions over the data, averaged over action dimensions: (B, H, Da), (B, H)."""
    valid = actions[mask > 0]  # (N, Da)
    return float(valid.std(0, unbiased=False).mean())


def segment_mse(target: TargetMLPSpec, thetas: torch.Tensor, inputs: torch.Tensor, actions: torch.Tensor,
                mask: torch.Tensor) -> float:
    """Behaviour cloning error of policy i on segment i: thetas (B, P), inputs (B, H, D), actions (B, H, Da)."""
    pred = batched_mlp_forward(target, thetas, inputs)
    sq = ((pred - actions) ** 2).mean(-1)
    return float((sq * mask).sum() / mask.sum().clamp_min(1.0))


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Squared maximum mean discrepancy (biased estimate) with an RBF kernel: x (N, D), y (M, D)."""
    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth**2))

    return float(kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean())


def nearest_distance(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Distance from each row of x (N, D) to its nearest row of reference (M, D) -> (N,)."""
    return torch.cdist(x, reference).min(1).values


def posterior_report(model: "LWD", dataset: SegmentDataset, starts: np.ndarray, segments: int = 256,
                     policies: int = 8, seed: int = 0) -> dict[str, Any]:
    """The posterior figures of the module docstring, on up to `segments` random training segments."""
    batch, inputs = _segments(model, dataset, starts, segments, seed)
    with torch.no_grad():
        mu, logvar = model.vae.encoder(batch[STATES], batch[ACTIONS], batch[MASK], batch.get(TASK))
        from lwd.methods.lwd.model import kl_per_dim

        kl_dims = kl_per_dim(mu, logvar).mean(0)
        active = mu.var(0, unbiased=False) > ACTIVE_THRESHOLD
        own = model.vae.decoder(mu)  # (B, P)
        rng = np.random.default_rng(seed)
        others = torch.from_numpy(rng.integers(len(mu), size=(len(mu), policies)))  # (B, K) other segments' latents
        spread = action_spread(model.target, own[others], inputs[:, 0])
        demo = demo_spread(batch[ACTIONS], batch[MASK])
        return {
            "segments": int(len(mu)),
            "kl": float(kl_dims.sum()),
            "kl_per_dim": [round(float(v), 6) for v in kl_dims],
            "active_units": int(active.sum()),
            "active_threshold": ACTIVE_THRESHOLD,
            "action_spread_demo": demo,
            "z_dependence_posterior": spread / max(demo, 1e-12),
            "bc_mse_posterior": segment_mse(model.target, own, inputs, batch[ACTIONS], batch[MASK]),
        }


def prior_report(model: "LWD", dataset: SegmentDataset, starts: np.ndarray, segments: int = 256,
                 policies: int = 8, seed: int = 0) -> dict[str, Any]:
    """The generated-latent figures of the module docstring, on up to `segments` random training segments."""
    batch, inputs = _segments(model, dataset, starts, segments, seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mu, logvar = model.vae.encoder(batch[STATES], batch[ACTIONS], batch[MASK], batch.get(TASK))
        cond = model.condition(batch.get(TASK), batch.get(OBS_HISTORY))  # (B, C)
        n = len(mu)
        z = model.sample_latents(cond.repeat_interleave(policies, 0), generator)  # (B*K, Dz)
        thetas = model.vae.decoder(z).reshape(n, policies, -1)  # (B, K, P)
        demo = demo_spread(batch[ACTIONS], batch[MASK])
        spread = action_spread(model.target, thetas, inputs[:, 0])
        scale = model.latent_std
        generated = ((z.reshape(n, policies, -1)[:, 0] - model.latent_mean) / scale)  # (B, Dz): one per condition
        drawn = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator)  # what the prior learned
        posterior = (drawn - model.latent_mean) / scale
        half = n // 2
        reference, held = posterior[:half], posterior[half:]
        pooled = torch.cat([reference, held])
        bandwidth = float(torch.pdist(pooled).median().clamp_min(1e-6))
        gen_nn = nearest_distance(generated[half:], reference)
        post_nn = nearest_distance(held, reference)
        return {
            "segments": int(n),
            "policies_per_condition": policies,
            "z_dependence_prior": spread / max(demo, 1e-12),
            "bc_mse_prior": segment_mse(model.target, thetas[:, 0], inputs, batch[ACTIONS], batch[MASK]),
            "prior_mmd": mmd_rbf(generated[half:], reference, bandwidth),
            "posterior_mmd": mmd_rbf(held, reference, bandwidth),
            "nn_ratio": float(gen_nn.median() / post_nn.median().clamp_min(1e-12)),
            "off_support": float((gen_nn > torch.quantile(post_nn, 0.95)).float().mean()),
            "reference": "posterior samples",
        }


def _segments(model: "LWD", dataset: SegmentDataset, starts: np.ndarray, count: int,
              seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A fixed random sample of training segments and what the generated policy sees at each of their steps."""
    from lwd.methods.lwd.model import policy_inputs

    rng = np.random.default_rng([seed, 7])  # its own stream: training's batch sampler is untouched
    chosen = np.sort(rng.choice(starts, size=min(count, len(starts)), replace=False))
    batch = dataset.sample_batch(chosen)
    inputs = policy_inputs(batch[OBS_HISTORY], batch[STATES], model.cfg.policy_obs_steps)  # (B, H, k*Do)
    return batch, inputs
