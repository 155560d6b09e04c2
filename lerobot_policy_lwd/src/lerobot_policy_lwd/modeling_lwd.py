"""LeRobot's policy wrapper around lwd's LWD: the model, its two stages' losses and its runtime are lwd's.

    training  forward(batch)   steps [0, vae_steps): lwd's VAE loss (LWDVAE.loss, KL warm-up by step);
                               then lwd's prior loss (LWD.latent_prior_stage) on the frozen encoder's
                               posteriors of the batch's segments. The step count is a buffer that
                               `update()` (LeRobot calls it after every optimiser step) advances, so it
                               is saved with the weights and survives a resume.
              update()         EMA of the current stage's module, copied in when the stage ends (as lwd's
                               trainer does).
    run time  select_action    one lwd LWDPolicy per env of the batch: regenerate the small MLP every H
                               steps, run it in between; sampling seeded per episode.

LeRobot's processors normalise observations and actions with the dataset's min/max (to [-1, 1], as
lwd's normaliser does), so the wrapped LWD carries an identity normaliser: an lwd-built LWD with
the same weights and a normaliser of the same statistics acts the same (tests/test_plugin.py).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import Tensor

from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import ACTION

from lwd.config import DataInfo
from lwd.data import MinMaxNormalizer
from lwd.data.keys import ACTIONS, MASK, OBS, OBS_HISTORY, STATES
from lwd.data.keys import ACTION as LWD_ACTION
from lwd.methods.base import GenerationRuntime
from lwd.methods.lwd import LWD
from lwd.training.ema import EMA

from lerobot_policy_lwd.configuration_lwd import LWDConfig


def identity_normalizer(obs_dim: int, action_dim: int) -> MinMaxNormalizer:
    """lwd's normaliser that leaves [-1, 1] data as it is (LeRobot's processors have normalised it)."""
    return MinMaxNormalizer({OBS: -np.ones(obs_dim), LWD_ACTION: -np.ones(action_dim)},
                            {OBS: np.ones(obs_dim), LWD_ACTION: np.ones(action_dim)})


class LWDPolicy(PreTrainedPolicy):
    """Latent Weight Diffusion under LeRobot's PreTrainedPolicy contract."""

    config_class = LWDConfig
    name = "lwd"

    def __init__(self, config: LWDConfig, **kwargs) -> None:  # kwargs: dataset_stats, dataset_meta (unused)
        super().__init__(config)
        config.validate_features()
        self.config = config
        obs_dim = sum(config.input_features[k].shape[0] for k in config.state_keys)
        action_dim = config.action_feature.shape[0]
        self.model = LWD(config.core_config(), DataInfo(obs_dim=obs_dim, action_dim=action_dim),
                         identity_normalizer(obs_dim, action_dim))
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))
        self._prior_loss = self.model.latent_prior_stage(lambda: {}).loss
        self._stats_latents: list[tuple[Tensor, Tensor]] = []
        self._ema: EMA | None = None
        self._runners: list = []
        self._next_seed = config.seed
        self._acting: LWD | None = None

    # ------------------------------------------------------------------ training
    def get_optim_params(self) -> list[dict]:
        """lwd's stages as param groups: the VAE at optimizer_lr, the prior at prior_lr."""
        return [{"params": list(self.model.vae.parameters())},
                {"params": list(self.model.prior.parameters()), "lr": self.config.prior_lr}]

    @property
    def stage(self) -> str:
        return "vae" if int(self.train_step) < self.config.vae_steps else "prior"

    def _observations(self, batch: dict[str, Tensor]) -> Tensor:
        """The state features, concatenated: (B, [T,] Do) in the dataset's normalised units."""
        return torch.cat([batch[k] for k in self.config.state_keys], dim=-1)

    def segments(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """LeRobot's delta-timestamp batch as lwd's segment batch (see configuration_lwd's timeline)."""
        obs = self._observations(batch)  # (B, To-1+H, Do)
        to, h = self.config.obs_steps, self.config.horizon
        return {OBS_HISTORY: obs[:, :to], STATES: obs[:, to - 1: to - 1 + h], ACTIONS: batch[ACTION],  # (B,To,Do) (B,H,Do) (B,H,Da)
                MASK: (~batch[f"{ACTION}_is_pad"]).float() if f"{ACTION}_is_pad" in batch
                else torch.ones(batch[ACTION].shape[:2], device=obs.device)}  # (B, H)

    def forward(self, batch: dict[str, Tensor], reduction: str = "mean") -> tuple[Tensor, dict]:
        if reduction != "mean":
            raise ValueError(f"LWD's loss is a batch mean (reduction='mean'), got reduction={reduction!r}")
        seg = self.segments(batch)
        model, stage = self.model, self.stage
        if self.training and (self._ema is None or self._ema.module is not self._stage_module(stage)):
            self._ema = EMA(self._stage_module(stage), self.config.ema_power, self.config.ema_max_decay)
        if stage == "vae":
            model.kl_warmup(int(self.train_step))
            loss, metrics = model.vae.loss(seg, model.kl_weight_now, self.config.policy_obs_steps, self.config.free_bits)
        else:
            with torch.no_grad():
                was_training = model.vae.training
                model.vae.eval()
                mu, logvar = model.vae.encoder(seg[STATES], seg[ACTIONS], seg[MASK])  # (B, Dz) each
                model.vae.train(was_training)
            if self.training and len(self._stats_latents) < self.config.latent_stats_batches:
                self._stats_latents.append((mu, logvar))
                model.fit_latent_stats(torch.cat([m for m, _ in self._stats_latents]),
                                       torch.cat([v for _, v in self._stats_latents]))
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # a draw from each posterior, as lwd's prior stage
            loss, metrics = self._prior_loss({"z": z, OBS_HISTORY: seg[OBS_HISTORY]})
        return loss, {"lwd_stage": 0 if stage == "vae" else 1, **{k: float(v) for k, v in metrics.items()}}

    def _stage_module(self, stage: str) -> torch.nn.Module:
        return self.model.vae if stage == "vae" else self.model.prior

    def update(self) -> None:
        """After each optimiser step: EMA of the stage's module, the step count, the stage's end."""
        if self._ema is not None:
            self._ema.update()
        self.train_step += 1
        done = int(self.train_step)
        if done in (self.config.vae_steps, self.config.vae_steps + self.config.prior_steps) and self._ema is not None:
            self._ema.copy_to_module()  # the stage's averaged weights, as lwd's trainer leaves them
            self._ema = None
            logging.info("LWD: %s stage done at step %d", "VAE" if done == self.config.vae_steps else "prior", done)

    # ------------------------------------------------------------------ run time
    def reset(self) -> None:
        """A new episode in every env: fresh runtimes, seeded by the next episode numbers."""
        self._runners = []
        self._acting = None

    def _runtime_model(self) -> LWD:
        """lwd's runtime is NumPy on the CPU: a CPU copy when the policy lives elsewhere."""
        if self.model.latent_mean.device.type == "cpu":
            return self.model
        if self._acting is None:
            self._acting = copy.deepcopy(self.model).cpu()
        return self._acting

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], **kwargs) -> Tensor:
        obs = self._observations(batch)  # (B, Do) normalised
        if obs.dim() == 3:  # (B, n_obs_steps, Do): the runtime keeps its own history
            obs = obs[:, -1]
        if len(self._runners) != obs.shape[0]:
            model = self._runtime_model()
            runtime = GenerationRuntime(action_horizon=self.config.action_horizon)
            self._runners = [model.make_policy(runtime) for _ in range(obs.shape[0])]
            for runner in self._runners:
                runner.reset(seed=self._next_seed)
                self._next_seed += 1
        actions = np.stack([runner.act(o) for runner, o in zip(self._runners, obs.float().cpu().numpy())])  # (B, Da)
        return torch.from_numpy(actions).to(obs.device)

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], **kwargs) -> Tensor:
        """LWD generates a policy, not an action chunk: the chunk is the current action, (B, 1, Da)."""
        return self.select_action(batch)[:, None]
