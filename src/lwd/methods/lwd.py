"""Latent Weight Diffusion (Hegde et al., arXiv 2410.14040): model, training stages, runtime policy.

Two models, trained one after the other (the paper's order):
1. VAE. A transformer encodes a demonstration segment of H (state, action) pairs into z; a chunked
   hypernetwork decodes z into the weights theta of a small MLP policy pi_theta(s) -> a. The
   reconstruction loss is behaviour cloning: MSE(pi_theta(s_t), a_t) over the segment, plus
   kl_weight * KL(q(z | segment) || N(0, I)).
2. Prior. With the encoder frozen, each segment's posterior mean is standardised and a DDPM
   (epsilon prediction, diffusers scheduler) learns p(z | condition), the condition being the task
   id and/or the observation history at the segment's start.

We train stage by stage rather than jointly: the prior then sees a fixed latent distribution, the
VAE can be checked on its own (reconstruction loss), and the prior is cheap to retrain for a new
condition. Joint fine-tuning gave no reason to add it yet; see the README.

At run time (`LWDPolicy`) the prior is sampled once every H steps (or once per episode), the
sample is decoded into theta once, and the tiny MLP then runs closed-loop at every control step
in plain NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from lwd.config import DataInfo, LWDConfig, TrainConfig, to_dict
from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.flops import count_flops, num_params
from lwd.methods.base import Method, Stage
from lwd.nn.denoiser import LatentDenoiser
from lwd.nn.encoder import TrajectoryEncoder
from lwd.nn.hypernet import ChunkedHypernetwork
from lwd.nn.target_mlp import TargetMLPSpec, batched_mlp_forward, fold_affine, numpy_mlp_forward


class LWDVAE(nn.Module):
    """Encoder q(z | segment) and hypernetwork decoder z -> theta."""

    def __init__(self, cfg: LWDConfig, info: DataInfo, target: TargetMLPSpec) -> None:
        super().__init__()
        self.encoder = TrajectoryEncoder(
            info.obs_dim, info.action_dim, cfg.horizon, cfg.latent_dim,
            d_model=cfg.encoder_dim, n_layers=cfg.encoder_layers, n_heads=cfg.encoder_heads,
            num_tasks=info.num_tasks if info.num_tasks > 1 else 0,
        )
        self.decoder = ChunkedHypernetwork(
            target, cfg.latent_dim, chunk_size=cfg.chunk_size, chunk_emb_dim=cfg.chunk_emb_dim, hidden=cfg.hyper_hidden
        )

    def loss(self, batch: dict[str, torch.Tensor], kl_weight: float, policy_obs_steps: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        states, actions, mask = batch["states"], batch["actions"], batch["mask"]  # (B,H,Do) (B,H,Da) (B,H)
        mu, logvar = self.encoder(states, actions, mask, batch.get("task"))  # (B, Dz) each
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        inputs = policy_inputs(batch["obs_history"], states, policy_obs_steps)  # (B, H, k*Do)
        pred = self.decoder.policy_actions(z, inputs)  # (B, H, Da)
        sq = ((pred - actions) ** 2).mean(-1)  # (B, H)
        bc = (sq * mask).sum() / mask.sum().clamp_min(1.0)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        loss = bc + kl_weight * kl
        return loss, {"bc_mse": bc.item(), "kl": kl.item()}


def policy_inputs(obs_history: torch.Tensor, states: torch.Tensor, k: int) -> torch.Tensor:
    """What the generated policy sees at each step of a segment: the last k observations, stacked.

    obs_history (B, To, Do) ends at the segment's first step (obs_history[:, -1] == states[:, 0]);
    states (B, H, Do). Step j gets [s_{j-k+1}, ..., s_j] (oldest first), reaching back into the
    history for the first steps, exactly as the runtime policy stacks its last k observations.
    -> (B, H, k*Do)
    """
    if k == 1:
        return states
    seq = torch.cat([obs_history[:, :-1], states], dim=1)  # (B, To-1+H, Do)
    windows = seq.unfold(1, k, 1)[:, -states.shape[1]:]  # (B, H, Do, k)
    return windows.transpose(2, 3).flatten(2)  # (B, H, k*Do)


class LWD(Method):
    name = "lwd"

    def __init__(self, cfg: LWDConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        super().__init__()
        if cfg.uses_task and info.num_tasks < 1:
            raise ValueError("condition='task' needs a dataset with task ids; use condition='state' for single-task data")
        self.cfg = cfg
        self.info = info
        self.normalizer = normalizer
        self.target = TargetMLPSpec(cfg.policy_obs_steps * info.obs_dim, info.action_dim, cfg.policy_hidden, cfg.policy_activation)
        self.vae = LWDVAE(cfg, info, self.target)
        self.prior = LatentDenoiser(
            cfg.latent_dim,
            num_tasks=info.num_tasks if cfg.uses_task else 0,
            obs_cond_dim=cfg.obs_steps * info.obs_dim if cfg.uses_state else 0,
            width=cfg.denoiser_width,
            n_blocks=cfg.denoiser_blocks,
        )
        # Latents are standardised before diffusion so the noise schedule fits their scale.
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("latent_std", torch.ones(cfg.latent_dim))
        self._prior_data: dict[str, torch.Tensor] = {}
        self.noise_scheduler = self.make_scheduler("ddpm")
        self._samplers: dict[tuple[str, int], Any] = {}

    def method_config(self) -> dict[str, Any]:
        return to_dict(self.cfg)

    # ----------------------------------------------------------------- diffusion helpers
    def make_scheduler(self, kind: str) -> DDPMScheduler | DDIMScheduler:
        common = dict(
            num_train_timesteps=self.cfg.diffusion_train_steps,
            beta_schedule=self.cfg.beta_schedule,
            prediction_type="epsilon",
            # At the noisiest steps of squaredcos_cap_v2 (alpha_bar ~ 1e-5 at k=99) the implied x0 is
            # eps error x ~300: clipping it to a few standard deviations (as Diffusion Policy clips to
            # [-1, 1]) keeps long DDIM/DDPM chains from blowing up.
            clip_sample=self.cfg.clip_sample_range > 0,
            clip_sample_range=self.cfg.clip_sample_range if self.cfg.clip_sample_range > 0 else 1.0,
        )
        return DDIMScheduler(**common) if kind == "ddim" else DDPMScheduler(**common)

    def condition(self, task: torch.Tensor | None, obs_history: torch.Tensor | None) -> torch.Tensor:
        """task (B,), obs_history (B, To, Do) normalised -> denoiser condition (B, C)."""
        obs_cond = obs_history.flatten(1) if (self.cfg.uses_state and obs_history is not None) else None
        return self.prior.condition(task if self.cfg.uses_task else None, obs_cond)

    @torch.no_grad()
    def sample_latents(
        self, cond: torch.Tensor, generator: torch.Generator | None = None, sampler: str | None = None, steps: int | None = None
    ) -> torch.Tensor:
        """Reverse diffusion from N(0, I): cond (B, C) -> z (B, Dz) in the VAE's latent units."""
        sampler = sampler or self.cfg.sampler
        n_steps = self.cfg.diffusion_train_steps if sampler == "ddpm" else (steps or self.cfg.inference_steps)
        key = (sampler, n_steps)
        if key not in self._samplers:  # schedulers are stateless once their timesteps are set
            self._samplers[key] = self.make_scheduler(sampler)
            self._samplers[key].set_timesteps(n_steps)
        scheduler = self._samplers[key]
        z = torch.randn(cond.shape[0], self.cfg.latent_dim, generator=generator)
        for k in scheduler.timesteps:
            eps = self.prior(z, k.expand(z.shape[0]), cond)
            z = scheduler.step(eps, k, z, generator=generator).prev_sample
        return z * self.latent_std + self.latent_mean

    # ----------------------------------------------------------------- training
    def segment_dataset(self, episodes: Episodes, short_episodes: str = "error") -> SegmentDataset:
        spec = WindowSpec(obs_steps=self.cfg.obs_steps, action_steps=self.cfg.horizon, action_offset=0, with_states=True)
        # Whole-episode segments may be shorter than H (the rest is masked).
        if self.cfg.segment_starts == "episode":
            short_episodes = "pad"
        return SegmentDataset(episodes, spec, self.normalizer, short_episodes=short_episodes)

    def segment_starts(self, episodes: Episodes, dataset: SegmentDataset) -> np.ndarray:
        """Indices of the segments used for training (anchors are one per step, in order)."""
        if self.cfg.segment_starts == "episode":
            return np.asarray(dataset.episodes.episode_starts, dtype=np.int64)
        return np.arange(len(dataset), dtype=np.int64)

    def stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        dataset = self.segment_dataset(episodes, train_cfg.short_episodes)
        starts = self.segment_starts(episodes, dataset)
        cfg = self.cfg

        def vae_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return dataset.sample_batch(starts[rng.integers(len(starts), size=train_cfg.batch_size)])

        def vae_loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
            return self.vae.loss(batch, cfg.kl_weight, cfg.policy_obs_steps)

        def prior_prepare() -> None:
            self._prior_data = self.encode_latents(dataset, starts)

        def prior_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            idx = torch.from_numpy(rng.integers(len(self._prior_data["mu"]), size=cfg.prior_batch_size))
            batch = {k: v[idx] for k, v in self._prior_data.items()}
            # A fresh draw from each segment's posterior: the prior models the aggregated posterior,
            # i.e. exactly the latents the decoder was trained to turn into good policies.
            batch["z"] = batch.pop("mu") + torch.randn_like(batch["logvar"]) * (0.5 * batch.pop("logvar")).exp()
            return batch

        def prior_loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
            z0 = (batch["z"] - self.latent_mean) / self.latent_std  # (B, Dz)
            noise = torch.randn_like(z0)
            k = torch.randint(0, cfg.diffusion_train_steps, (z0.shape[0],))
            zk = self.noise_scheduler.add_noise(z0, noise, k)
            cond = self.condition(batch.get("task"), batch.get("obs_history"))
            loss = F.mse_loss(self.prior(zk, k, cond), noise)
            return loss, {"eps_mse": loss.item()}

        return [
            Stage("vae", cfg.vae_steps, self.vae, vae_batch, vae_loss, lr=train_cfg.lr),
            Stage("prior", cfg.prior_steps, self.prior, prior_batch, prior_loss, lr=cfg.prior_lr, prepare=prior_prepare),
        ]

    @torch.no_grad()
    def encode_latents(self, dataset: SegmentDataset, starts: np.ndarray | None = None, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """Posterior (mu, logvar) of every `latent_stride`-th segment with its condition; sets latent stats.

        The statistics are those of the aggregated posterior (mean of mu; variance of mu plus mean
        posterior variance), so standardised latents have unit scale in every dimension, including
        dimensions the KL term has collapsed to the prior.
        """
        was_training = self.training
        self.eval()
        starts = np.arange(len(dataset)) if starts is None else starts
        index = starts[:: self.cfg.latent_stride]
        out: dict[str, list[torch.Tensor]] = {"mu": [], "logvar": [], "task": [], "obs_history": []}
        for start in range(0, len(index), batch_size):
            batch = dataset.sample_batch(index[start : start + batch_size])
            mu, logvar = self.vae.encoder(batch["states"], batch["actions"], batch["mask"], batch.get("task"))
            out["mu"].append(mu)
            out["logvar"].append(logvar)
            if "task" in batch:
                out["task"].append(batch["task"])
            out["obs_history"].append(batch["obs_history"])
        self.train(was_training)
        data = {k: torch.cat(v) for k, v in out.items() if v}
        variance = data["mu"].var(0) + data["logvar"].exp().mean(0)
        self.latent_mean.copy_(data["mu"].mean(0))
        self.latent_std.copy_(variance.sqrt().clamp_min(1e-3))
        return data

    # ----------------------------------------------------------------- run time
    def make_policy(self, action_horizon: int | None = None, sampler: str | None = None, inference_steps: int | None = None) -> "LWDPolicy":
        return LWDPolicy(self, action_horizon, sampler, inference_steps)

    @torch.no_grad()
    def generate_policy(
        self, task: int | None, obs_history: np.ndarray | None, generator: torch.Generator | None = None,
        sampler: str | None = None, steps: int | None = None,
    ) -> torch.Tensor:
        """One fresh policy: sample z for the condition, decode theta (1, P). obs_history normalised (To, Do)."""
        task_t = torch.tensor([task], dtype=torch.long) if (self.cfg.uses_task and task is not None) else None
        hist_t = torch.from_numpy(np.asarray(obs_history, np.float32))[None] if obs_history is not None else None
        cond = self.condition(task_t, hist_t)
        z = self.sample_latents(cond, generator, sampler, steps)
        return self.vae.decoder(z)

    def cost(self, action_horizon: int | None = None, sampler: str | None = None, inference_steps: int | None = None) -> dict[str, Any]:
        """Params and FLOPs per control step at batch 1: generation / H + one step of the generated MLP."""
        horizon = action_horizon or self.cfg.horizon
        hist = np.zeros((self.cfg.obs_steps, self.info.obs_dim), np.float32)
        task = 0 if self.cfg.uses_task else None
        gen_flops = count_flops(lambda: self.generate_policy(task, hist, torch.Generator().manual_seed(0), sampler, inference_steps))
        theta = self.generate_policy(task, hist, torch.Generator().manual_seed(0), sampler, inference_steps)
        step_flops = count_flops(lambda: batched_mlp_forward(self.target, theta, torch.zeros(1, 1, self.target.obs_dim)))
        return {
            "params_total": num_params(self),
            "params_per_step": self.target.num_params,
            "params_encoder": num_params(self.vae.encoder),
            "params_decoder": num_params(self.vae.decoder),
            "params_prior": num_params(self.prior),
            "flops_generation": gen_flops,
            "flops_policy_step": step_flops,
            "generation_every": horizon,
            "flops_per_step": gen_flops / horizon + step_flops,
        }


class LWDPolicy:
    """Closed-loop runtime for one episode: regenerate theta every H steps, run the MLP every step.

    `action_horizon=None` uses the training H; 0 generates once per episode. Sampling noise comes
    from a generator seeded by the episode seed, so an episode's result never depends on which
    other episodes ran or how many envs ran in parallel.

    Each generated MLP gets the normalisers folded into its first and last layers, so a plain
    control step is only the MLP on raw observations (the prior still sees normalised ones).
    """

    def __init__(self, model: LWD, action_horizon: int | None, sampler: str | None, inference_steps: int | None) -> None:
        self.model = model.eval()
        self.horizon = model.cfg.horizon if action_horizon is None else action_horizon
        if self.horizon < 0:
            raise ValueError(f"action_horizon must be >= 0 (0 = once per episode), got {self.horizon}")
        self.sampler = sampler
        self.inference_steps = inference_steps
        self.generations = 0
        self.steps = 0
        self._layers: list[tuple[np.ndarray, np.ndarray]] = []  # normalised space, as generated
        self._raw_layers: list[tuple[np.ndarray, np.ndarray]] = []  # raw obs in, raw action out
        k = model.cfg.policy_obs_steps
        self._policy_obs_steps, self._obs_shape = k, (model.info.obs_dim,)  # read every step
        obs_scale, obs_shift = model.normalizer.affine("obs")
        act_scale, act_shift = model.normalizer.affine("action", inverse=True)
        self._fold = (np.tile(obs_scale, k), np.tile(obs_shift, k), act_scale, act_shift)
        self._generator = torch.Generator().manual_seed(0)
        self._task: int | None = None
        self._t = 0
        self._history: list[np.ndarray] = []  # raw observations, oldest first

    def reset(self, seed: int, task: int | None = None) -> None:
        if self.model.cfg.uses_task and task is None:
            raise ValueError("this LWD model is task-conditioned: pass the task id to reset()")
        self._generator = torch.Generator().manual_seed(int(seed))
        self._task = task
        self._t = 0
        self._history = []

    def _regenerate(self) -> None:
        hist = self.model.normalizer.normalize("obs", np.stack(self._history[-self.model.cfg.obs_steps :]))  # (To, Do)
        theta = self.model.generate_policy(self._task, hist, self._generator, self.sampler, self.inference_steps)
        self._layers = [(w[0].numpy().copy(), b[0, 0].numpy().copy()) for w, b in self.model.target.unflatten(theta)]
        self._raw_layers = fold_affine(self._layers, *self._fold)
        self.generations += 1

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.array(obs, np.float32)  # a copy: the history must not alias a buffer the caller reuses
        if obs.shape != self._obs_shape:
            raise ValueError(f"expected one observation of shape {self._obs_shape}, got {obs.shape}")
        if not self._history:
            self._history = [obs] * self.model.cfg.obs_steps  # pad the history with the first obs
        else:
            self._history = [*self._history[1:], obs]
        if self._t == 0 or (self.horizon > 0 and self._t % self.horizon == 0):
            self._regenerate()
        self._t += 1
        self.steps += 1
        k = self._policy_obs_steps
        policy_in = obs if k == 1 else np.concatenate(self._history[-k:])  # (k*Do,) oldest first
        return numpy_mlp_forward(self.model.target, self._raw_layers, policy_in)

    def policy_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The active generated MLP as NumPy (weight (in, out), bias (out,)) pairs, in normalised space
        (normalised obs in, normalised action out), exactly as the decoder produced it."""
        return self._layers
