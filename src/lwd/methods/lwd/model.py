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

At run time (`LWDPolicy`, policy.py) the prior is sampled once every H steps (or once per episode), the
sample is decoded into theta once, and the tiny MLP then runs closed-loop at every control step
in plain NumPy.

Camera frames (the paper's vision variant, with a frozen encoder; `lwd.methods.frozen_vision`):
when the training data has frames, each step's input is the step vector [obs, features of every
camera] wherever state data has the observation alone: the segments the VAE encodes, the history
the prior conditions on, what the generated MLP acts on. The encoder is loaded (`encoder_from`) or
trained first by behaviour cloning (stage "encoder"), then frozen; every training frame is embedded
once and the VAE and prior train on feature vectors. At run time the encoder runs every step
(a new frame each step) before the MLP, so its FLOPs are part of every step's cost.

Styles (`style_condition`; `lwd.methods.lwd.style`): on demos that record each step's expert style,
the prior also conditions on the segment's style (or a 'no style' token), and a style is asked for
at run time by classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lwd.config import DataInfo, TrainConfig
from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.data.keys import ACTIONS, MASK, OBS, OBS_HISTORY, STATES, STYLE, TASK
from lwd.flops import count_flops, num_params
from lwd.methods.base import BenchCell, Cost, GenerationRuntime, Method, Stage, register_method
from lwd.methods.diffusion import SamplerCache, make_scheduler
from lwd.methods.frozen_vision import FrozenVision, lazy
from lwd.methods.lwd.config import LWDConfig
from lwd.methods.lwd.denoiser import LatentDenoiser
from lwd.methods.lwd.encoder import TrajectoryEncoder
from lwd.methods.lwd.hypernet import BasisHypernetwork, ChunkedHypernetwork, WeightDecoder
from lwd.methods.lwd.presets import PRESETS
from lwd.methods.lwd.style import LWDRuntime, StyleRequest, drop_styles, guided_noise, style_request
from lwd.methods.target_mlp import TargetMLPSpec, batched_mlp_forward


class LWDVAE(nn.Module):
    """Encoder q(z | segment) and hypernetwork decoder z -> theta."""

    def __init__(self, cfg: LWDConfig, info: DataInfo, target: TargetMLPSpec, step_dim: int | None = None) -> None:
        """step_dim: size of a segment's states (the step vector with image features; default obs_dim)."""
        super().__init__()
        self.encoder = TrajectoryEncoder(
            step_dim or info.obs_dim, info.action_dim, cfg.horizon, cfg.latent_dim,
            d_model=cfg.encoder_dim, n_layers=cfg.encoder_layers, n_heads=cfg.encoder_heads,
            num_tasks=info.task_inputs,
        )
        self.decoder: WeightDecoder
        if cfg.decoder == "basis":
            self.decoder = BasisHypernetwork(target, cfg.latent_dim, basis_size=cfg.basis_size, hidden=cfg.hyper_hidden)
        else:
            self.decoder = ChunkedHypernetwork(
                target, cfg.latent_dim, chunk_size=cfg.chunk_size, chunk_emb_dim=cfg.chunk_emb_dim, hidden=cfg.hyper_hidden
            )

    def loss(self, batch: dict[str, torch.Tensor], kl_weight: float, policy_obs_steps: int = 1,
             free_bits: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        states, actions, mask = batch[STATES], batch[ACTIONS], batch[MASK]  # (B,H,Do) (B,H,Da) (B,H)
        mu, logvar = self.encoder(states, actions, mask, batch.get(TASK))  # (B, Dz) each
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        inputs = policy_inputs(batch[OBS_HISTORY], states, policy_obs_steps)  # (B, H, k*Do)
        pred = self.decoder.policy_actions(z, inputs)  # (B, H, Da)
        sq = ((pred - actions) ** 2).mean(-1)  # (B, H)
        bc = (sq * mask).sum() / mask.sum().clamp_min(1.0)
        penalised, kl = kl_penalty(mu, logvar, free_bits)
        loss = bc + kl_weight * penalised
        return loss, {"bc_mse": bc.detach(), "kl": kl.detach()}


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) of each latent dimension: (B, Dz) -> (B, Dz), in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_penalty(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(the KL term the loss pays, the true KL), both the batch mean of the sum over dimensions.

    With free_bits > 0 each dimension pays max(its batch-mean KL, free_bits): below the floor a
    dimension's KL has no gradient, so the posterior is not pushed all the way to the prior."""
    per_dim = kl_per_dim(mu, logvar)  # (B, Dz)
    kl = per_dim.sum(-1).mean()
    if free_bits <= 0:
        return kl, kl
    return per_dim.mean(0).clamp_min(free_bits).sum(), kl


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


@register_method
class LWD(Method):
    name = "lwd"
    config_class = LWDConfig
    runtime_class = LWDRuntime
    presets = PRESETS
    reads_images = True
    cfg: LWDConfig

    def __init__(self, cfg: LWDConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        if cfg.uses_task and info.num_tasks < 1:
            raise ValueError("condition='task' needs a dataset with task ids; use condition='state' for single-task data")
        if cfg.style_condition and not info.styles:
            raise ValueError("style_condition=true needs data that records each step's expert style (lwd demos SUITE "
                             "--styles all) and a DataInfo naming them (styles)")
        super().__init__(cfg, info, normalizer)
        # Image data: a frozen encoder per camera (built last, so state models keep their initial weights).
        self.step_dim = info.obs_dim + (len(info.images) * cfg.camera_features if info.images else 0)
        """Size of a step vector: the observation, plus the cameras' features on image data."""
        self.target = TargetMLPSpec(cfg.policy_obs_steps * self.step_dim, info.action_dim, cfg.policy_hidden, cfg.policy_activation)
        self.vae = LWDVAE(cfg, info, self.target, self.step_dim)
        self.prior = LatentDenoiser(
            cfg.latent_dim,
            num_tasks=info.num_tasks if cfg.uses_task else 0,
            obs_cond_dim=cfg.obs_steps * self.step_dim if cfg.uses_state else 0,
            width=cfg.denoiser_width,
            n_blocks=cfg.denoiser_blocks,
            num_styles=len(info.styles) if cfg.style_condition else 0,
        )
        # Latents are standardised before diffusion so the noise schedule fits their scale.
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("latent_std", torch.ones(cfg.latent_dim))
        self._prior_data: dict[str, torch.Tensor] = {}
        self.kl_weight_now = cfg.kl_weight
        """The VAE's KL weight at the current training step (`kl_warmup`)."""
        # At the noisiest steps of squaredcos_cap_v2 (alpha_bar ~ 1e-5 at k=99) the implied x0 is
        # eps error x ~300: clipping it to a few standard deviations (as Diffusion Policy clips to
        # [-1, 1]) keeps long DDIM/DDPM chains from blowing up.
        self.samplers = SamplerCache(
            num_train_timesteps=cfg.diffusion_train_steps, beta_schedule=cfg.beta_schedule, prediction_type="epsilon",
            clip_sample=cfg.clip_sample_range > 0, clip_sample_range=cfg.clip_sample_range if cfg.clip_sample_range > 0 else 1.0,
        )
        self.noise_scheduler = make_scheduler("ddpm", **self.samplers.settings)  # training only adds noise
        self.vision = FrozenVision(info.images, cfg, info.obs_dim, info.action_dim) if info.images else None

    @property
    def step_normalizer(self) -> MinMaxNormalizer:
        """The normaliser of step vectors: `normalizer` itself on state data; with frames, its "obs" also
        covers the features (their range over the training set)."""
        return self.normalizer if self.vision is None else self.vision.step_normalizer(self.normalizer)

    def condition(self, task: torch.Tensor | None, obs_history: torch.Tensor | None,
                  style: torch.Tensor | None = None) -> torch.Tensor:
        """task (B,), obs_history (B, To, Ds) normalised step vectors [, style (B,) ids of a
        style-conditioned prior; None: the 'no style' token] -> denoiser condition (B, C)."""
        obs_cond = obs_history.flatten(1) if (self.cfg.uses_state and obs_history is not None) else None
        return self.prior.condition(task if self.cfg.uses_task else None, obs_cond, style)

    @torch.no_grad()
    def sample_latents(
        self, cond: torch.Tensor, generator: torch.Generator | None = None, sampler: str | None = None, steps: int | None = None,
        uncond: torch.Tensor | None = None, guidance: float = 1.0,
    ) -> torch.Tensor:
        """Reverse diffusion from N(0, I): cond (B, C) -> z (B, Dz) in the VAE's latent units.

        uncond (B, C): classifier-free guidance, each step's noise eps_uncond + guidance * (eps_cond -
        eps_uncond) (`lwd.methods.lwd.style`); the random draws are the same as without it."""
        sampler = sampler or self.cfg.sampler
        n_steps = self.cfg.diffusion_train_steps if sampler == "ddpm" else (steps or self.cfg.inference_steps)
        scheduler = self.samplers.get(sampler, n_steps)
        z = torch.randn(cond.shape[0], self.cfg.latent_dim, generator=generator)
        eta = {"eta": self.cfg.ddim_eta} if sampler == "ddim" else {}
        for k in scheduler.timesteps:
            eps = guided_noise(self.prior, z, k.expand(z.shape[0]), cond, uncond, guidance)
            z = scheduler.step(eps, k, z, generator=generator, **eta).prev_sample
        return z * self.latent_std + self.latent_mean

    # ----------------------------------------------------------------- training
    def segment_dataset(self, episodes: Episodes, short_episodes: str = "error",
                        with_dynamics: bool = False) -> SegmentDataset:
        """Windows of To observations ending at each anchor and the H steps from it (see WindowSpec).

        On image data the windows hold step vectors [obs, features]: the frames are embedded once
        by the frozen encoder (`FrozenVision.feature_episodes`)."""
        spec = WindowSpec(obs_steps=self.cfg.obs_steps, action_steps=self.cfg.horizon, action_offset=0,
                          with_states=True, with_dynamics=with_dynamics)
        # Whole-episode segments may be shorter than H (the rest is masked).
        if self.cfg.segment_starts == "episode":
            short_episodes = "pad"
        if self.vision is not None:
            self.vision.freeze()
            episodes = self.vision.feature_episodes(episodes)
        return SegmentDataset(episodes, spec, self.step_normalizer, short_episodes=short_episodes)

    def segment_starts(self, episodes: Episodes, dataset: SegmentDataset) -> np.ndarray:
        """Indices of the segments used for training (anchors are one per step, in order)."""
        if self.cfg.segment_starts == "episode":
            return np.asarray(dataset.episodes.episode_starts, dtype=np.int64)
        return np.arange(len(dataset), dtype=np.int64)

    def check_styles(self, episodes: Episodes) -> None:
        """A style-conditioned model refuses data without style ids before any stage trains (the prior,
        which reads them, trains last)."""
        if self.cfg.style_condition and STYLE not in episodes.data:
            raise ValueError(f"style_condition=true: the training data has no per-step '{STYLE}' key; make the demos "
                             "with lwd demos SUITE --styles all, or drop style_condition")

    def stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        self.check_styles(episodes)
        if self.vision is not None:
            return self.image_stages(train_cfg, episodes)
        dataset = self.segment_dataset(episodes, train_cfg.short_episodes).to(self.device)
        starts = self.segment_starts(episodes, dataset)
        cfg = self.cfg

        def vae_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return dataset.sample_batch(starts[rng.integers(len(starts), size=train_cfg.batch_size)])

        def vae_loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return self.vae.loss(batch, self.kl_weight_now, cfg.policy_obs_steps, cfg.free_bits)

        return [
            Stage("vae", cfg.vae_steps, self.vae, vae_batch, vae_loss, lr=train_cfg.lr, batch_size=train_cfg.batch_size,
                  on_step=self.kl_warmup, report=lambda: self.latent_report("vae", dataset, starts)),
            self.prior_stage(dataset, starts),
        ]

    def image_stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        """The stages on image data: the encoder's (loaded, or its "encoder" stage), then the VAE and
        the prior on step vectors. Their windows are built when the VAE (or, resumed, the prior) stage
        starts, from features of the frozen encoder, which the "encoder" stage has trained by then;
        the windows are checked on the low-dim data now, before anything trains."""
        assert self.vision is not None
        cfg = self.cfg
        SegmentDataset(episodes, WindowSpec(cfg.obs_steps, cfg.horizon), self.normalizer,
                       short_episodes="pad" if cfg.segment_starts == "episode" else train_cfg.short_episodes)
        encoder = self.vision.stages(train_cfg, episodes, self.normalizer)

        def build() -> tuple[SegmentDataset, np.ndarray]:
            self.vision.freeze()
            embedded = self.vision.feature_episodes(episodes)
            self.vision.fit_feature_stats(embedded.data[OBS])  # the training set's feature range
            dataset = self.segment_dataset(episodes, train_cfg.short_episodes).to(self.device)
            return dataset, self.segment_starts(episodes, dataset)

        data = lazy(build)

        def build_now() -> None:
            data()

        def vae_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            dataset, starts = data()
            return dataset.sample_batch(starts[rng.integers(len(starts), size=train_cfg.batch_size)])

        def vae_loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return self.vae.loss(batch, self.kl_weight_now, cfg.policy_obs_steps, cfg.free_bits)

        prior = self.latent_prior_stage(lambda: self.encode_latents(*data()))
        return [
            *encoder,
            Stage("vae", cfg.vae_steps, self.vae, vae_batch, vae_loss, lr=train_cfg.lr, batch_size=train_cfg.batch_size,
                  prepare=build_now, on_step=self.kl_warmup,
                  report=lambda: self.latent_report("vae", *data())),
            replace(prior, report=lambda: self.latent_report("prior", *data())),
        ]

    def kl_warmup(self, step: int) -> None:
        """A VAE stage's `on_step`: the KL weight of step `step` under `kl_warmup_steps` (linear from 0)."""
        warmup = self.cfg.kl_warmup_steps
        self.kl_weight_now = self.cfg.kl_weight * (min(1.0, step / warmup) if warmup > 0 else 1.0)

    def prior_stage(self, dataset: SegmentDataset, starts: np.ndarray) -> Stage:
        """The second stage: with the VAE trained, the latent diffusion prior on its posteriors."""
        stage = self.latent_prior_stage(lambda: self.encode_latents(dataset, starts))
        return replace(stage, report=lambda: self.latent_report("prior", dataset, starts))

    def latent_report(self, stage: str, dataset: SegmentDataset, starts: np.ndarray) -> dict[str, object]:
        """Latent diagnostics at the end of a stage (`lwd.methods.lwd.diagnostics`): after "vae" the
        posterior's (KL per dimension, active units, z-dependence), after "prior" the generated latents'.
        Uses no global random stream, so a run's weights are the same with or without it."""
        from lwd.methods.lwd import diagnostics

        was_training = self.training
        self.eval()
        try:
            measure = diagnostics.posterior_report if stage == "vae" else diagnostics.prior_report
            return {"latent": measure(self, dataset, starts)}
        finally:
            self.train(was_training)

    def latent_prior_stage(self, latents: Callable[[], dict[str, torch.Tensor]]) -> Stage:
        """The prior stage on any latent source: `latents()` returns posterior "mu" and "logvar" (N, Dz)
        with their conditions (TASK (N,) and/or OBS_HISTORY (N, To, Do), normalised), and is called
        when the stage starts (and STYLE (N,) ids for a style-conditioned prior). The latent statistics
        are fitted to it (`fit_latent_stats`). Tests use it to train the prior alone on latents whose
        distribution is known."""
        cfg = self.cfg

        def prior_prepare() -> None:
            self._prior_data = latents()
            self.fit_latent_stats(self._prior_data["mu"], self._prior_data["logvar"])

        def prior_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            idx = torch.from_numpy(rng.integers(len(self._prior_data["mu"]), size=cfg.prior_batch_size)).to(self.device)
            batch = {k: v[idx] for k, v in self._prior_data.items()}
            # A fresh draw from each segment's posterior: the prior models the aggregated posterior,
            # i.e. exactly the latents the decoder was trained to turn into good policies.
            batch["z"] = batch.pop("mu") + torch.randn_like(batch["logvar"]) * (0.5 * batch.pop("logvar")).exp()
            return batch

        def prior_loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            z0 = (batch["z"] - self.latent_mean) / self.latent_std  # (B, Dz)
            noise = torch.randn_like(z0)
            k = torch.randint(0, cfg.diffusion_train_steps, (z0.shape[0],), device=z0.device)
            zk = self.noise_scheduler.add_noise(z0, noise, k)
            style = None
            if cfg.style_condition:  # a share of the labels becomes 'no style': the unconditional prior
                if STYLE not in batch:
                    raise ValueError("this prior is style-conditioned, but its latents carry no style ids")
                style = drop_styles(batch[STYLE], cfg.style_dropout, self.prior.no_style)
            cond = self.condition(batch.get(TASK), batch.get(OBS_HISTORY), style)
            loss = F.mse_loss(self.prior(zk, k, cond), noise)
            return loss, {"eps_mse": loss.detach()}

        return Stage("prior", cfg.prior_steps, self.prior, prior_batch, prior_loss, lr=cfg.prior_lr, prepare=prior_prepare,
                     batch_size=cfg.prior_batch_size)

    @torch.no_grad()
    def encode_latents(self, dataset: SegmentDataset, starts: np.ndarray | None = None, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """Posterior (mu, logvar) of every `latent_stride`-th segment with its condition (and, for a
        style-conditioned model, the style of its first step); sets the latent statistics (`fit_latent_stats`)."""
        was_training = self.training
        self.eval()
        starts = np.arange(len(dataset)) if starts is None else starts
        index = starts[:: self.cfg.latent_stride]
        out: dict[str, list[torch.Tensor]] = {"mu": [], "logvar": [], TASK: [], OBS_HISTORY: []}
        for start in range(0, len(index), batch_size):
            batch = dataset.sample_batch(index[start : start + batch_size])
            mu, logvar = self.vae.encoder(batch[STATES], batch[ACTIONS], batch[MASK], batch.get(TASK))
            out["mu"].append(mu)
            out["logvar"].append(logvar)
            if TASK in batch:
                out[TASK].append(batch[TASK])
            out[OBS_HISTORY].append(batch[OBS_HISTORY])
        self.train(was_training)
        data = {k: torch.cat(v) for k, v in out.items() if v}
        if self.cfg.style_condition:  # anchors are global steps of dataset.episodes: a segment's style is its first step's
            self.check_styles(dataset.episodes)
            data[STYLE] = torch.as_tensor(dataset.episodes.data[STYLE][index], dtype=torch.long, device=data["mu"].device)
        self.fit_latent_stats(data["mu"], data["logvar"])
        return data

    def fit_latent_stats(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        """Standardisation of the aggregated posterior: mean of mu; variance of mu plus the mean
        posterior variance, so standardised latents have unit scale in every dimension, including
        dimensions the KL term has collapsed to the prior. mu, logvar (N, Dz)."""
        variance = mu.var(0) + logvar.exp().mean(0)
        self.latent_mean.copy_(mu.mean(0))
        self.latent_std.copy_(variance.sqrt().clamp_min(1e-3))

    # ----------------------------------------------------------------- run time
    def make_policy(self, runtime: GenerationRuntime | None = None) -> "LWDPolicy":
        from lwd.methods.lwd.policy import LWDPolicy

        return LWDPolicy(self, runtime or LWDRuntime())

    def weight_generator(self) -> "LWDWeightGenerator":
        """Export, latent maps and reconstruction reach this model through it (WARPD and lcmlp inherit it)."""
        from lwd.methods.lwd.generator import LWDWeightGenerator

        return LWDWeightGenerator(self)

    @torch.no_grad()
    def generate_policy(
        self, task: int | None, obs_history: np.ndarray | None, generator: torch.Generator | None = None,
        sampler: str | None = None, steps: int | None = None, style: StyleRequest | None = None,
    ) -> torch.Tensor:
        """One fresh policy: sample z for the condition, decode theta (1, P). obs_history: normalised step
        vectors (To, Ds) (the observations on state data). style (`style_request`): a style on request,
        by classifier-free guidance; None samples unconditionally."""
        task_t = torch.tensor([task], dtype=torch.long) if (self.cfg.uses_task and task is not None) else None
        hist_t = torch.from_numpy(np.asarray(obs_history, np.float32))[None] if obs_history is not None else None
        if style is None:
            z = self.sample_latents(self.condition(task_t, hist_t), generator, sampler, steps)
        else:
            cond = self.condition(task_t, hist_t, torch.tensor([style.style], dtype=torch.long))
            # w = 1 is the conditional prior itself: one denoiser pass a step instead of two
            uncond = None if style.guidance == 1.0 else self.condition(task_t, hist_t)
            z = self.sample_latents(cond, generator, sampler, steps, uncond=uncond, guidance=style.guidance)
        return self.vae.decoder(z)

    def sampling(self, runtime: GenerationRuntime) -> tuple[str, int]:
        """The sampler and step count a run-time choice runs (None: the config's). DDPM always runs
        the whole chain, so another step count with it is refused rather than replaced."""
        sampler = runtime.sampler or self.cfg.sampler
        if sampler == "ddpm":
            if runtime.inference_steps not in (None, self.cfg.diffusion_train_steps):
                raise ValueError(f"the ddpm sampler runs all {self.cfg.diffusion_train_steps} diffusion steps; "
                                 f"drop inference_steps={runtime.inference_steps} or use the ddim sampler")
            return sampler, self.cfg.diffusion_train_steps
        steps = runtime.inference_steps or self.cfg.inference_steps
        if steps > self.cfg.diffusion_train_steps:
            raise ValueError(f"inference_steps={steps} exceeds the model's {self.cfg.diffusion_train_steps} diffusion steps")
        return sampler, steps

    def cost(self, runtime: GenerationRuntime | None = None, episode_steps: int | None = None) -> Cost:
        """Params and FLOPs per control step at batch 1: generation / H + one step of the generated MLP
        (on image data, + the frozen encoder on that step's frames: it runs every step).

        Generating once per episode (action_horizon 0) is costed over `episode_steps`, the longest
        an episode runs; episodes that end early spend more per step (the evaluation measures it)."""
        runtime = runtime or LWDRuntime()
        horizon = self.cfg.horizon if runtime.action_horizon is None else runtime.action_horizon
        details: dict[str, object] = {}
        if horizon == 0:
            if not episode_steps:
                raise ValueError("generating once per episode costs generation / episode length per step; "
                                 "give the episode length (evaluate in a suite, or pass --env to lwd info)")
            horizon = episode_steps
            details["generation"] = "once per episode"
        sampler, steps = self.sampling(runtime)
        style = style_request(self, runtime)  # guidance above 1 runs the denoiser twice a step
        if style is not None:
            details.update(style=style.name, guidance=style.guidance)
        hist = np.zeros((self.cfg.obs_steps, self.step_dim), np.float32)
        task = 0 if self.cfg.uses_task else None
        gen_flops = count_flops(lambda: self.generate_policy(task, hist, torch.Generator().manual_seed(0), sampler, steps, style))
        theta = self.generate_policy(task, hist, torch.Generator().manual_seed(0), sampler, steps, style)
        step_flops = count_flops(lambda: batched_mlp_forward(self.target, theta, torch.zeros(1, 1, self.target.obs_dim)))
        per_step_params = self.target.num_params
        if self.vision is not None:  # the frozen encoder runs every step, before the generated MLP
            details.update(flops_generated_mlp=step_flops, flops_image_encoders=self.vision.step_flops(),
                           params_image_encoders=self.vision.encoder_params(), params_generated_mlp=self.target.num_params)
            step_flops += details["flops_image_encoders"]
            per_step_params += self.vision.encoder_params()
        return Cost(
            params_total=num_params(self),
            params_per_step=per_step_params,
            flops_policy_step=step_flops,
            flops_generation=gen_flops,
            generation_every=horizon,
            details={"params_encoder": num_params(self.vae.encoder), "params_decoder": num_params(self.vae.decoder),
                     "params_prior": num_params(self.prior), "sampler": sampler, "inference_steps": steps, **details},
        )

    @classmethod
    def bench_cell(cls, variant: str, horizon: int, cfg: LWDConfig, ddim_steps: int) -> BenchCell:
        """One trained model for every H: H is how often the policy is regenerated at run time."""
        return BenchCell((), GenerationRuntime(action_horizon=horizon))
