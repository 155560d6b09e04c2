"""WARPD: Latent Weight Diffusion whose decoder is also trained in a learned world model.

The paper's later version (World model Assisted Reactive Policy Diffusion, arXiv 2410.14040 v2+)
adds a learned dynamics model to training: a policy decoded from z and trained only by behaviour
cloning on demonstrated states drifts once it leaves them; rolling it out in a model of the
dynamics lets the loss see the states it will visit. The paper's exact objective is not
reachable from here; this is our design, stated exactly.

Objective of the VAE stage, for a segment (s_0..s_{H-1}, a_0..a_{H-1}, mask m) and z ~ q(z | segment),
theta = D(z):

    L = BC + beta * KL + lambda(n) * A  [+ W in joint mode]

    BC = sum_j m_j ||pi_theta(x_j) - a_j||^2 / sum_j m_j            (LWD's loss; x_j: last k states)
    A  = ( sum_{j=1..K} w_j m_j [ c_s ||s^_j - s_j||^2 + c_a ||pi_theta(x^_j) - a_j||^2 ] ) / sum_j w_j m_j
         s^_0 = s_0 + sigma eps,  s^_j = s^_{j-1} + mean_i f_i(s^_{j-1}, pi_theta(x^_{j-1}))   (imagined, K steps)
         x^_j: the last k imagined states (the history before s_0 from the demonstration)
         eps ~ N(0, I), sigma = `assist_start_noise` (0 by default: the rollout starts on the demo);
         c_s, c_a in {0, 1} by `assist_target`; w_j = prod_{i<=j} exp(-u_i / gate) with u_i the
         members' disagreement at step i (w = 1 when gate = 0); all squared errors are means over
         dimensions, in the normaliser's units
    lambda(n) = assist_weight * min(1, n / assist_warmup), n counting VAE loss evaluations
    W  = one-step MSE of every ensemble member on the segment's transitions (joint mode only)

The world model fits what moved the state: on DART demos the executed (noisy) actions, not the
labels, and never a transition during which a push moved the object (`lwd demos` records both;
demos made with noise or pushes but without these records are refused). For the same reason
imagined step j counts in A only while no push happened before it in the segment (m_j is then 0):
an imagined rollout cannot be pushed, so the demonstrated s_j after a push is not a state it
should reach. On DART demos s_j itself followed from noisy actions, so the state term pulls the
imagined path toward the noisy one; the action term compares with the clean labels.

Gradients of A reach the decoder (and encoder) through the policy at every imagined step and
through the model's input, never into the model's weights (`DynamicsEnsemble.frozen_stepper`):
the model is fitted to the data, not to the policy. In 'pretrain' mode the world model has a stage
of its own first; in 'joint' mode it trains alongside the VAE on the same batches. The prior stage
is LWD's. At run time WARPD is LWD: the world model is not used, so the per-step cost is the same.

The training log reports the world model's open-loop error on held-out episodes at rollout
lengths 1, 4, 16 and H ("reports").
"""

from __future__ import annotations

import numpy as np
import torch

from lwd.config import DataInfo, TrainConfig
from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.data.keys import ACTIONS, DRIVING_ACTIONS, MASK, OBS_HISTORY, STATES, TASK, UNPUSHED
from lwd.methods.base import Stage, register_method
from lwd.methods.lwd.model import LWD, kl_penalty, policy_inputs
from lwd.methods.target_mlp import batched_mlp_forward
from lwd.methods.warpd.config import WARPDConfig
from lwd.methods.warpd.presets import PRESETS
from lwd.methods.warpd.world_model import DynamicsEnsemble

WM_ROWS = "wm_rows"
"""Batch key: 1 for rows from episodes the world model may learn from (not held out for validation)."""


@register_method
class WARPD(LWD):
    name = "warpd"
    config_class = WARPDConfig
    presets = PRESETS
    reads_images = False
    """Its world model predicts observations; with camera frames it would have to predict features of
    a frozen encoder, which nothing here measures yet, so on image data WARPD reads the low-dim part."""
    cfg: WARPDConfig

    def __init__(self, cfg: WARPDConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        super().__init__(cfg, info, normalizer)  # LWD's modules first: the same seed gives LWD's initial weights
        self.world_model = DynamicsEnsemble(info.obs_dim, info.action_dim, cfg.wm_members, cfg.wm_hidden)
        self.register_buffer("assist_calls", torch.zeros((), dtype=torch.long))

    # ----------------------------------------------------------------- the assisted loss
    def assist_loss(self, theta: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A (see the module docstring): theta (B, P) -> scalar, differentiable in theta."""
        cfg = self.cfg
        states, actions, mask = batch[STATES], batch[ACTIONS], batch[MASK]  # (B,H,Do) (B,H,Da) (B,H)
        k = cfg.policy_obs_steps
        history = batch[OBS_HISTORY]  # (B, To, Do), ends at s_0
        window = history[:, history.shape[1] - k:]  # (B, k, Do): the last k states, s_0 last
        state = states[:, 0]
        if cfg.assist_start_noise > 0:  # imagined recovery: start displaced, as after a push
            state = state + cfg.assist_start_noise * torch.randn_like(state)
            window = torch.cat([window[:, :-1], state[:, None]], dim=1)
        weight = torch.ones_like(mask[:, 0])
        if UNPUSHED in batch:  # step j is reachable while no push moved the scene on steps 0..j-1
            mask = mask * torch.cat([torch.ones_like(mask[:, :1]), batch[UNPUSHED][:, :-1].cumprod(1)], dim=1)
        use_state, use_action = cfg.assist_target in ("state", "both"), cfg.assist_target in ("action", "both")
        step = self.world_model.frozen_stepper()  # the model's weights, detached, stacked once per rollout
        policy = self.target.unflatten(theta)  # split once: K + 1 forwards share it
        total = states.new_zeros(())
        norm = states.new_zeros(())
        # The action on imagined state j is both step j's action term and what drives step j + 1, so
        # the policy runs K + 1 times, not 2K.
        action = batched_mlp_forward(self.target, policy, window.flatten(1)[:, None])[:, 0]  # (B, Da)
        for j in range(1, cfg.assist_steps + 1):
            state, disagreement = step(state, action)
            if cfg.assist_gate > 0:
                weight = weight * torch.exp(-disagreement.detach() / cfg.assist_gate)
            window = torch.cat([window[:, 1:], state[:, None]], dim=1)
            term = states.new_zeros(state.shape[0])
            if use_state:
                term = term + ((state - states[:, j]) ** 2).mean(-1)
            if use_action or j < cfg.assist_steps:
                action = batched_mlp_forward(self.target, policy, window.flatten(1)[:, None])[:, 0]
            if use_action:
                term = term + ((action - actions[:, j]) ** 2).mean(-1)
            w = weight * mask[:, j]
            total = total + (term * w).sum()
            norm = norm + w.sum()
        return total / norm.clamp_min(1e-6)

    def vae_objective(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L of the VAE stage (module docstring); the world model's own loss joins in 'joint' mode."""
        cfg = self.cfg
        states, actions, mask = batch[STATES], batch[ACTIONS], batch[MASK]
        mu, logvar = self.vae.encoder(states, actions, mask, batch.get(TASK))
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        theta = self.vae.decoder(z)  # (B, P)
        pred = batched_mlp_forward(self.target, theta, policy_inputs(batch[OBS_HISTORY], states, cfg.policy_obs_steps))
        bc = (((pred - actions) ** 2).mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)
        kl_paid, kl = kl_penalty(mu, logvar, cfg.free_bits)
        assist = self.assist_loss(theta, batch)
        ramp = (self.assist_calls.float() / cfg.assist_warmup).clamp(max=1.0) if cfg.assist_warmup > 0 else 1.0
        loss = bc + self.kl_weight_now * kl_paid + cfg.assist_weight * ramp * assist
        metrics = {"bc_mse": bc.detach(), "kl": kl.detach(), "assist": assist.detach()}
        if cfg.wm_mode == "joint":
            wm = self.world_model.transition_loss(states, batch[DRIVING_ACTIONS], mask * batch[WM_ROWS][:, None],
                                                  batch[UNPUSHED])
            loss = loss + wm
            metrics["wm_mse"] = wm.detach()
        if self.training:
            self.assist_calls += 1
        return loss, metrics

    # ----------------------------------------------------------------- training
    def stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        cfg = self.cfg
        # LWD's windows plus what the world model fits (executed actions, push flags)
        dataset = self.segment_dataset(episodes, train_cfg.short_episodes, with_dynamics=True).to(self.device)
        starts = self.segment_starts(episodes, dataset)
        held_out = self._held_out_episodes(episodes, train_cfg.seed)
        learn_rows = torch.from_numpy((~np.isin(dataset.anchor_episodes, held_out)).astype(np.float32)).to(self.device)
        learn_starts = starts[learn_rows.cpu().numpy()[starts] > 0]
        validation = self._validation_batch(episodes, held_out if held_out.size else np.arange(episodes.num_episodes))

        def batch_from(anchors: np.ndarray) -> dict[str, torch.Tensor]:
            batch = dataset.sample_batch(anchors)
            batch[WM_ROWS] = learn_rows[torch.from_numpy(anchors).to(self.device)]
            return batch

        def vae_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return batch_from(starts[rng.integers(len(starts), size=train_cfg.batch_size)])

        def wm_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return batch_from(learn_starts[rng.integers(len(learn_starts), size=train_cfg.batch_size)])

        def wm_loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            loss = self.world_model.transition_loss(batch[STATES], batch[DRIVING_ACTIONS], batch[MASK], batch[UNPUSHED])
            return loss, {"wm_mse": loss.detach()}

        def report() -> dict[str, float]:
            errors = self.world_model.rollout_errors(validation[STATES], validation[DRIVING_ACTIONS], validation[MASK],
                                                     tuple(sorted({1, 4, 16, cfg.horizon})), validation[UNPUSHED])
            return {f"wm_rollout_mse_{length}": value for length, value in errors.items()} | {
                "wm_validation_episodes": int(held_out.size) or int(episodes.num_episodes),
                "wm_validation_held_out": bool(held_out.size)}

        stages: list[Stage] = []
        if cfg.wm_mode == "pretrain":
            stages.append(Stage("world_model", cfg.wm_steps, self.world_model, wm_batch, wm_loss, lr=cfg.wm_lr,
                                batch_size=train_cfg.batch_size, report=report))
            vae_module: torch.nn.Module = self.vae
        else:  # both trained (and EMA-averaged) in one stage; a local container, so state_dict keys stay as they are
            vae_module = torch.nn.ModuleDict({"vae": self.vae, "world_model": self.world_model})
        def vae_report() -> dict[str, object]:
            latent = self.latent_report("vae", dataset, starts)
            return {**report(), **latent} if cfg.wm_mode == "joint" else latent

        stages.append(Stage("vae", cfg.vae_steps, vae_module, vae_batch, self.vae_objective, lr=train_cfg.lr,
                            batch_size=train_cfg.batch_size, on_step=self.kl_warmup, report=vae_report))
        stages.append(self.prior_stage(dataset, starts))
        return stages

    def _held_out_episodes(self, episodes: Episodes, seed: int) -> np.ndarray:
        """Indices of the episodes the world model never learns from (its validation set)."""
        if self.cfg.wm_val_fraction <= 0 or episodes.num_episodes < 2:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng([seed, 1])  # its own stream: the training sampler's draws stay LWD's
        count = max(1, int(round(episodes.num_episodes * self.cfg.wm_val_fraction)))
        return np.sort(rng.choice(episodes.num_episodes, size=min(count, episodes.num_episodes - 1), replace=False))

    def _validation_batch(self, episodes: Episodes, chosen: np.ndarray) -> dict[str, torch.Tensor]:
        """Windows of H+1 steps from the start of every validation episode (shorter episodes: masked)."""
        longest = int(episodes.lengths[chosen].max())
        spec = WindowSpec(obs_steps=1, action_steps=max(2, min(self.cfg.horizon + 1, longest)), with_states=True,
                          with_dynamics=True)
        dataset = SegmentDataset(episodes.select(chosen), spec, self.normalizer, short_episodes="pad").to(self.device)
        starts = np.asarray(dataset.episodes.episode_starts, dtype=np.int64)
        return dataset.sample_batch(starts)
