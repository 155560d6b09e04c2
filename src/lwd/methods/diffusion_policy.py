"""Diffusion Policy (Chi et al., RSS 2023), low-dim variant: the baseline LWD is compared against.

One model: a FiLM-conditioned 1-D temporal U-Net (:class:`lwd.nn.unet1d.ConditionalUnet1D`)
denoises a whole horizon of T actions at once, conditioned on the flattened, normalised history of
the last To observations (and, for multitask data, a learned task embedding). Training is plain
DDPM: noise the demonstrated action window, regress the noise (epsilon MSE over every step of the
window, padded steps included, as the reference does). At run time the full reverse chain (100
DDPM steps by default) runs every Ta control steps and the Ta actions after the last observed step
are executed open-loop (receding horizon).

The defaults of :class:`DPConfig` are the reference low-dim config (`diffusion_policy/config/
task/*_lowdim` + `train_diffusion_unet_lowdim_workspace.yaml`, `obs_as_global_cond=True`); the
optimiser settings (AdamW lr 1e-4, betas (0.95, 0.999), wd 1e-6, 500 warm-up steps, batch 256,
EMA power 0.75) live in the "train" part of the "dp" presets (`lwd.presets`), because they are
:class:`lwd.config.TrainConfig` fields shared by every method.

Everything for the method is in this file: config, model + training stage, runtime policy, cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from lwd.config import DataInfo, TrainConfig, to_dict
from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.data.keys import ACTION, ACTIONS, OBS, OBS_HISTORY, TASK
from lwd.flops import count_flops, num_params
from lwd.methods.base import Method, Stage
from lwd.nn.unet1d import ConditionalUnet1D, min_horizon_multiple, round_up_horizon

SAMPLERS = ("ddpm", "ddim")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "sample")


@dataclass(frozen=True)
class DPConfig:
    """Diffusion Policy settings; the defaults are the reference low-dim ("paper") config.

    Horizon vocabulary (To = obs_steps, Ta = action_steps, T = horizon)::

        step:      t-1   t    t+1  ...  t+Ta-1  ...  t+T-To
        obs:      [ To obs ]                            condition (global, FiLM)
        sample:   [<------------- T actions ------------>]  denoised at once
        executed:       [<----- Ta ----->]              indices [To-1, To-1+Ta) of the sample
    """

    horizon: int = 16
    """T: actions predicted (denoised) at once; a multiple of 2**(len(down_dims)-1)."""
    obs_steps: int = 2
    """To: observations the policy is conditioned on (the last one is the current step)."""
    action_steps: int = 8
    """Ta: actions executed before re-planning (runtime default; `make_policy` may change it)."""
    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 5
    diffusion_step_embed_dim: int = 256
    n_groups: int = 8
    cond_predict_scale: bool = True
    """FiLM with per-channel scale and bias (True) or bias only."""
    task_embed_dim: int = 64
    """Size of the learned task embedding appended to the condition (multitask data only)."""
    num_train_timesteps: int = 100
    num_inference_steps: int = 100
    """Denoising steps at run time for `sampler` (ddpm: 100 = the full chain, as the reference)."""
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    """Clip the predicted clean sample to [-1, 1] (the normalised action box) at every step."""
    sampler: str = "ddpm"
    """Default run-time sampler. 'ddim' (fewer steps) is a different operating point: results
    with it are reported under their own sampler/steps, never as the ddpm baseline."""
    steps: int = 20000
    """Training steps (the learning rate is TrainConfig.lr, as for every method)."""

    def __post_init__(self) -> None:
        for name in ("horizon", "obs_steps", "action_steps", "kernel_size", "diffusion_step_embed_dim", "n_groups",
                     "task_embed_dim", "num_train_timesteps", "num_inference_steps", "steps"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DPConfig.{name} must be an int >= 1, got {value!r}")
        if not self.down_dims or any(not isinstance(d, (int, np.integer)) or d < 1 for d in self.down_dims):
            raise ValueError(
                f"DPConfig.down_dims must be a non-empty tuple of positive ints, e.g. (256, 512, 1024); got {self.down_dims!r}"
            )
        bad = [d for d in self.down_dims if d % self.n_groups]
        if bad:
            raise ValueError(
                f"DPConfig.down_dims {tuple(self.down_dims)}: widths {bad} are not multiples of "
                f"n_groups={self.n_groups} (GroupNorm); change them or n_groups"
            )
        if self.kernel_size % 2 != 1:
            raise ValueError(
                f"DPConfig.kernel_size must be odd so 'same' padding keeps T, got {self.kernel_size}; use {self.kernel_size + 1}"
            )
        if self.diffusion_step_embed_dim < 4 or self.diffusion_step_embed_dim % 2:
            raise ValueError(f"DPConfig.diffusion_step_embed_dim must be even and >= 4, got {self.diffusion_step_embed_dim}")
        multiple = min_horizon_multiple(self.down_dims)
        if self.horizon % multiple:
            raise ValueError(
                f"DPConfig.horizon={self.horizon} must be a multiple of {multiple} (= 2**(len(down_dims)-1) for "
                f"down_dims={tuple(self.down_dims)}); use horizon={round_up_horizon(self.horizon, self.down_dims)} "
                "(lwd.nn.unet1d.round_up_horizon)"
            )
        if self.obs_steps - 1 + self.action_steps > self.horizon:
            need = self.obs_steps - 1 + self.action_steps
            raise ValueError(
                f"DPConfig: executed actions [To-1, To-1+Ta) = [{self.obs_steps - 1}, {need}) do not fit in horizon "
                f"T={self.horizon}; need action_steps + obs_steps - 1 <= horizon: lower action_steps or use "
                f"horizon={round_up_horizon(need, self.down_dims)}"
            )
        if self.num_inference_steps > self.num_train_timesteps:
            raise ValueError(
                f"DPConfig.num_inference_steps ({self.num_inference_steps}) cannot exceed "
                f"num_train_timesteps ({self.num_train_timesteps}); lower it or use more train timesteps"
            )
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"DPConfig.beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"DPConfig.prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"DPConfig.sampler must be one of {SAMPLERS}, got {self.sampler!r}")


class DiffusionPolicy(Method):
    """Diffusion Policy with a 1-D temporal U-Net over actions and the obs history as condition.

    One planning step, anchored at the current step t (To = 2, Ta = 8, T = 16 by default)::

        step:      t-1   t    t+1  ...  t+7   t+8  ...  t+14
        obs:      [o     o]                                    condition: To obs, flattened
        sample:   [a     a    a    ...  a     a    ...  a   ]  T actions denoised together
        executed:       [a    a    ...  a]                     Ta actions: [To-1, To-1+Ta)
        next plan:                            ^ at t+Ta, from the obs seen then

    Training windows (WindowSpec.diffusion_policy) put the sample's first action at the oldest
    observed step, so the action at index To-1 is the one for the current observation.
    """

    name = "dp"

    def __init__(self, cfg: DPConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        super().__init__()
        self.cfg = cfg
        self.info = info
        self.normalizer = normalizer
        self.num_tasks = info.num_tasks if info.num_tasks > 1 else 0
        self.task_embedding = nn.Embedding(self.num_tasks, cfg.task_embed_dim) if self.num_tasks else None
        self.global_cond_dim = cfg.obs_steps * info.obs_dim + (cfg.task_embed_dim if self.num_tasks else 0)
        self.unet = ConditionalUnet1D(
            input_dim=info.action_dim,
            global_cond_dim=self.global_cond_dim,
            diffusion_step_embed_dim=cfg.diffusion_step_embed_dim,
            down_dims=cfg.down_dims,
            kernel_size=cfg.kernel_size,
            n_groups=cfg.n_groups,
            cond_predict_scale=cfg.cond_predict_scale,
        )
        self.noise_scheduler = self.make_scheduler("ddpm")
        self._samplers: dict[tuple[str, int], DDPMScheduler | DDIMScheduler] = {}

    def method_config(self) -> dict[str, Any]:
        return to_dict(self.cfg)

    # ----------------------------------------------------------------- diffusion helpers
    def make_scheduler(self, kind: str) -> DDPMScheduler | DDIMScheduler:
        """The reference schedulers: 100 steps, squaredcos_cap_v2, clip to [-1, 1], epsilon."""
        if kind not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
        common = dict(
            num_train_timesteps=self.cfg.num_train_timesteps,
            beta_start=0.0001,
            beta_end=0.02,
            beta_schedule=self.cfg.beta_schedule,
            clip_sample=self.cfg.clip_sample,
            prediction_type=self.cfg.prediction_type,
        )
        if kind == "ddim":
            return DDIMScheduler(**common, set_alpha_to_one=True, steps_offset=0)
        return DDPMScheduler(**common, variance_type="fixed_small")

    def _sampler(self, sampler: str | None, steps: int | None) -> tuple[DDPMScheduler | DDIMScheduler, str, int]:
        kind = sampler or self.cfg.sampler
        n_steps = self.cfg.num_inference_steps if steps is None else int(steps)
        if kind not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
        if not 1 <= n_steps <= self.cfg.num_train_timesteps:
            raise ValueError(f"inference_steps must be in [1, {self.cfg.num_train_timesteps}] (num_train_timesteps), got {n_steps}")
        key = (kind, n_steps)
        if key not in self._samplers:  # schedulers hold no per-sample state once their timesteps are set
            self._samplers[key] = self.make_scheduler(kind)
            self._samplers[key].set_timesteps(n_steps)
        return self._samplers[key], kind, n_steps

    def global_condition(self, obs_history: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """obs_history (B, To, Do) normalised, task (B,) -> FiLM condition (B, To*Do [+ E_task])."""
        if obs_history.ndim != 3 or obs_history.shape[1:] != (self.cfg.obs_steps, self.info.obs_dim):
            raise ValueError(
                f"obs_history must be (B, To={self.cfg.obs_steps}, Do={self.info.obs_dim}), got {tuple(obs_history.shape)}"
            )
        cond = obs_history.flatten(1)  # (B, To*Do)
        if self.task_embedding is not None:
            if task is None:
                raise ValueError(f"this Diffusion Policy is multitask ({self.num_tasks} tasks): pass task ids")
            cond = torch.cat([cond, self.task_embedding(task)], dim=-1)  # (B, To*Do + E_task)
        return cond

    @torch.no_grad()
    def sample_actions(
        self,
        obs_history: torch.Tensor,
        task: torch.Tensor | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        sampler: str | None = None,
        inference_steps: int | None = None,
    ) -> torch.Tensor:
        """Reverse diffusion from N(0, I): obs_history (B, To, Do) normalised -> actions (B, T, Da) normalised.

        `generator` may be a list of B generators, one per sample: each sample then draws exactly
        the noise it would draw alone at batch 1 (diffusers' schedulers accept such lists too), which
        is what lets the evaluator batch several episodes' replans into one network call.
        """
        scheduler, _, _ = self._sampler(sampler, inference_steps)
        cond = self.global_condition(obs_history, task)  # (B, Dg)
        batch = obs_history.shape[0]
        shape = (batch, self.cfg.horizon, self.info.action_dim)
        if isinstance(generator, list):
            if len(generator) != batch:
                raise ValueError(f"got {len(generator)} generators for a batch of {batch}")
            x = torch.cat([torch.randn((1, *shape[1:]), generator=g, device=g.device) for g in generator])
        else:
            x = torch.randn(shape, generator=generator, device=generator.device if generator is not None else "cpu")
        x = x.to(cond.device)  # (B, T, Da)
        for k in scheduler.timesteps:
            model_out = self.unet(x, k, cond)  # (B, T, Da)
            x = scheduler.step(model_out, k, x, generator=generator).prev_sample
        return x

    # ----------------------------------------------------------------- training
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """DDPM loss on a batch of windows: actions (B, T, Da), obs_history (B, To, Do), [task (B,)].

        Every step of the window is scored, padded ones included (the reference's loss_mask is
        all-true with global conditioning): near an episode's edges the model learns to repeat
        the first / last action, i.e. to hold still.
        """
        actions = batch[ACTIONS]  # (B, T, Da)
        cond = self.global_condition(batch[OBS_HISTORY], batch.get(TASK))  # (B, Dg)
        noise = torch.randn_like(actions)  # (B, T, Da)
        k = torch.randint(0, self.cfg.num_train_timesteps, (actions.shape[0],), device=actions.device)
        noisy = self.noise_scheduler.add_noise(actions, noise, k)  # (B, T, Da)
        pred = self.unet(noisy, k, cond)  # (B, T, Da)
        target = noise if self.cfg.prediction_type == "epsilon" else actions
        value = F.mse_loss(pred, target)
        return value, {f"{self.cfg.prediction_type}_mse": value.item()}

    def stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        spec = WindowSpec.diffusion_policy(obs_steps=self.cfg.obs_steps, horizon=self.cfg.horizon)
        dataset = SegmentDataset(episodes, spec, self.normalizer, short_episodes=train_cfg.short_episodes)

        def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return dataset.sample_batch(rng.integers(len(dataset), size=train_cfg.batch_size))

        # The whole module (U-Net + task embedding) is trained and EMA-averaged.
        return [Stage("dp", self.cfg.steps, self, sample, self.loss, lr=train_cfg.lr)]

    # ----------------------------------------------------------------- run time
    def make_policy(
        self, action_horizon: int | None = None, sampler: str | None = None, inference_steps: int | None = None
    ) -> "DPPolicy":
        return DPPolicy(self, action_horizon, sampler, inference_steps)

    def check_action_horizon(self, action_horizon: int | None) -> int:
        """Ta to execute per plan (None: cfg.action_steps); must fit after the To-1 observed steps."""
        ta = self.cfg.action_steps if action_horizon is None else int(action_horizon)
        if ta < 1:
            raise ValueError(f"action_horizon (Ta) must be >= 1 for Diffusion Policy, got {ta}")
        need = self.cfg.obs_steps - 1 + ta
        if need > self.cfg.horizon:
            raise ValueError(
                f"action_horizon Ta={ta} does not fit: the model predicts T={self.cfg.horizon} actions and executes "
                f"[To-1, To-1+Ta) = [{self.cfg.obs_steps - 1}, {need}), so the horizon must be at least To-1+Ta={need}; "
                f"train a model with horizon={round_up_horizon(need, self.cfg.down_dims)} "
                "(round_up_horizon) or lower action_horizon"
            )
        return ta

    def cost(self, action_horizon: int | None = None, sampler: str | None = None, inference_steps: int | None = None) -> dict[str, Any]:
        """Params and FLOPs at batch 1: one full sampling run every Ta steps, nothing in between."""
        ta = self.check_action_horizon(action_horizon)
        _, kind, n_steps = self._sampler(sampler, inference_steps)
        hist = torch.zeros(1, self.cfg.obs_steps, self.info.obs_dim)  # (1, To, Do)
        task = torch.zeros(1, dtype=torch.long) if self.num_tasks else None
        cond = self.global_condition(hist, task)  # (1, Dg)
        x = torch.zeros(1, self.cfg.horizon, self.info.action_dim)  # (1, T, Da)
        call_flops = count_flops(lambda: self.unet(x, torch.tensor([0]), cond))
        gen_flops = count_flops(lambda: self.sample_actions(hist, task, torch.Generator().manual_seed(0), kind, n_steps))
        params = num_params(self)
        return {
            "params_total": params,
            "params_per_step": params,  # the whole U-Net runs to produce actions
            "sampler": kind,
            "inference_steps": n_steps,
            "flops_denoiser_call": call_flops,
            "flops_generation": gen_flops,
            "flops_policy_step": 0,  # queued actions are replayed; no network runs between plans
            "generation_every": ta,
            "flops_per_step": gen_flops / ta,
        }


class DPPolicy:
    """Receding-horizon runtime for one episode.

    Keeps the last To normalised observations (the first observation repeated until there are
    To), and whenever its action queue is empty samples a full horizon of T actions and queues
    the Ta actions [To-1, To-1+Ta). The sampling noise comes from a generator seeded by the
    episode seed, so an episode's actions never depend on other episodes or on parallel envs.
    """

    def __init__(self, model: DiffusionPolicy, action_horizon: int | None, sampler: str | None, inference_steps: int | None) -> None:
        self.model = model.eval()
        self.action_horizon = model.check_action_horizon(action_horizon)
        _, self.sampler, self.inference_steps = model._sampler(sampler, inference_steps)
        self.generations = 0
        self.steps = 0
        self._generator = torch.Generator().manual_seed(0)
        self._task: torch.Tensor | None = None
        self._history: list[np.ndarray] = []  # To arrays of shape (Do,), normalised
        self._queue: list[np.ndarray] = []  # arrays of shape (Da,), unnormalised

    def reset(self, seed: int, task: int | None = None) -> None:
        if self.model.num_tasks and task is None:
            raise ValueError("this Diffusion Policy is multitask: pass the task id to reset()")
        self._generator = torch.Generator().manual_seed(int(seed))
        self._task = torch.tensor([int(task)], dtype=torch.long) if (self.model.num_tasks and task is not None) else None
        self._history = []
        self._queue = []

    @staticmethod
    def plan_together(policies: list["DPPolicy"]) -> None:
        """One batched sampling run that refills the queue of every policy given (same model and settings).

        Each policy keeps its own noise generator, so the noise is what it would draw alone; the
        network's batched arithmetic can differ from batch 1 in the last float bits.
        """
        if not policies:
            return
        first = policies[0]
        if any(p.model is not first.model or (p.sampler, p.inference_steps, p.action_horizon)
               != (first.sampler, first.inference_steps, first.action_horizon) for p in policies):
            raise ValueError("plan_together needs policies of one model with the same runtime settings")
        hist = torch.from_numpy(np.stack([np.stack(p._history) for p in policies]))  # (B, To, Do)
        task = torch.cat([p._task for p in policies]) if first._task is not None else None  # (B,)
        sample = first.model.sample_actions(hist, task, [p._generator for p in policies], first.sampler, first.inference_steps)  # (B, T, Da)
        start = first.model.cfg.obs_steps - 1
        actions = sample[:, start : start + first.action_horizon].cpu().numpy()  # (B, Ta, Da) normalised
        for policy, chunk in zip(policies, actions):
            policy._queue = list(first.model.normalizer.unnormalize(ACTION, chunk).astype(np.float32))
            policy.generations += 1

    def _plan(self) -> None:
        hist = torch.from_numpy(np.stack(self._history))[None]  # (1, To, Do)
        sample = self.model.sample_actions(hist, self._task, self._generator, self.sampler, self.inference_steps)  # (1, T, Da)
        start = self.model.cfg.obs_steps - 1
        actions = sample[0, start : start + self.action_horizon].cpu().numpy()  # (Ta, Da) normalised
        actions = self.model.normalizer.unnormalize(ACTION, actions).astype(np.float32)
        self._queue = list(actions)
        self.generations += 1

    def observe(self, obs: np.ndarray) -> bool:
        """Record obs (Do,) raw in the history; True if a plan is needed before `next_action`."""
        obs_n = self.model.normalizer.normalize(OBS, np.asarray(obs, np.float32)).astype(np.float32)  # (Do,)
        if not self._history:
            self._history = [obs_n] * self.model.cfg.obs_steps  # pad the history with the first obs
        else:
            self._history = [*self._history[1:], obs_n]
        return not self._queue

    def next_action(self) -> np.ndarray:
        """The next queued action (Da,) raw; plans first (at batch 1) if the queue is empty."""
        if not self._queue:
            self._plan()
        self.steps += 1
        return self._queue.pop(0)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs (Do,) raw -> action (Da,) raw."""
        self.observe(obs)
        return self.next_action()
