"""Diffusion Policy (Chi et al., RSS 2023), low-dim variant: the baseline LWD is compared against.

One model: a FiLM-conditioned 1-D temporal U-Net (:class:`lwd.methods.dp.unet1d.ConditionalUnet1D`)
denoises a whole horizon of T actions at once, conditioned on the flattened, normalised history of
the last To observations (and, for multitask data, a learned task embedding). Training is plain
DDPM: noise the demonstrated action window, regress the noise (epsilon MSE over every step of the
window, padded steps included, as the reference does). At run time (policy.py) the full reverse
chain (100 DDPM steps by default) runs every Ta control steps and the Ta actions after the last
observed step are executed open-loop (receding horizon).

The defaults of :class:`DPConfig` are the reference low-dim config (`diffusion_policy/config/
task/*_lowdim` + `train_diffusion_unet_lowdim_workspace.yaml`, `obs_as_global_cond=True`); the
optimiser settings (AdamW lr 1e-4, betas (0.95, 0.999), wd 1e-6, 500 warm-up steps, batch 256,
EMA power 0.75) live in the "train" part of the presets (presets.py), because they are
:class:`lwd.config.TrainConfig` fields shared by every method.

Image observations (the reference's hybrid image policy, `diffusion_unet_hybrid_image_policy.py`):
when the training data has camera frames (`Episodes.frames`; `DataInfo.images` then records them),
each camera gets its own encoder (:class:`lwd.methods.vision.ImageEncoder`: crop, ResNet-18 with
GroupNorm, spatial softmax, 64 features), and the condition of each observed step is
[features of every camera, low-dim obs] (B, To, n_cams * 64 + Do), flattened over the To steps as
before. The encoders train with the U-Net (and are EMA-averaged with it); they run once per plan.
The "image-paper" preset is the reference PushT image config (U-Net (512, 1024, 2048), step
embedding 128, 84 x 84 crops, batch 64); "image-cpu" a narrow one for this machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lwd.config import DataInfo, TrainConfig
from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.data.keys import ACTIONS, OBS_HISTORY, TASK, image_history_key
from lwd.flops import count_flops, num_params
from lwd.methods.base import BenchCell, Cost, GenerationRuntime, Method, Stage, register_method
from lwd.methods.diffusion import SAMPLERS, SamplerCache, Scheduler, make_scheduler
from lwd.methods.dp.config import DPConfig
from lwd.methods.dp.presets import PRESETS
from lwd.methods.dp.unet1d import ConditionalUnet1D, round_up_horizon
from lwd.methods.vision import ImageEncoder

if TYPE_CHECKING:
    from lwd.methods.dp.policy import DPPolicy


@register_method
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
    config_class = DPConfig
    runtime_class = GenerationRuntime
    presets = PRESETS
    bench_variants = ("", "ddim")
    reads_images = True
    cfg: DPConfig

    def __init__(self, cfg: DPConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        super().__init__(cfg, info, normalizer)
        self.num_tasks = info.task_inputs
        self.task_embedding = nn.Embedding(self.num_tasks, cfg.task_embed_dim) if self.num_tasks else None
        self.image_keys = tuple(key for key, _ in info.images)
        self.encoders: nn.ModuleDict | None = None  # one image encoder per camera; None for low-dim data
        if self.image_keys:
            self.encoders = nn.ModuleDict({
                key: ImageEncoder(tuple(shape), cfg.crop_shape, cfg.image_width, cfg.image_keypoints, cfg.camera_features,
                                cfg.image_pool)
                for key, shape in info.images
            })
        self.step_dim = info.obs_dim + len(self.image_keys) * cfg.camera_features
        """Condition features per observed step: the cameras' features, then the low-dim obs."""
        self.global_cond_dim = cfg.obs_steps * self.step_dim + (cfg.task_embed_dim if self.num_tasks else 0)
        self.unet = ConditionalUnet1D(
            input_dim=info.action_dim,
            global_cond_dim=self.global_cond_dim,
            diffusion_step_embed_dim=cfg.diffusion_step_embed_dim,
            down_dims=cfg.down_dims,
            kernel_size=cfg.kernel_size,
            n_groups=cfg.n_groups,
            cond_predict_scale=cfg.cond_predict_scale,
        )
        # The reference schedulers: 100 steps, squaredcos_cap_v2, clip to [-1, 1], epsilon.
        self.samplers = SamplerCache(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                                     prediction_type=cfg.prediction_type, clip_sample=cfg.clip_sample)
        self.noise_scheduler = make_scheduler("ddpm", **self.samplers.settings)  # training only adds noise

    # ----------------------------------------------------------------- diffusion helpers
    def sampler(self, sampler: str | None, steps: int | None) -> tuple[Scheduler, str, int]:
        """The scheduler for a run-time choice (None: the config's), its kind and step count."""
        kind = sampler or self.cfg.sampler
        n_steps = self.cfg.num_inference_steps if steps is None else int(steps)
        if kind not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
        if not 1 <= n_steps <= self.cfg.num_train_timesteps:
            raise ValueError(f"inference_steps must be in [1, {self.cfg.num_train_timesteps}] (num_train_timesteps), got {n_steps}")
        return self.samplers.get(kind, n_steps), kind, n_steps

    def global_condition(self, obs_history: torch.Tensor, task: torch.Tensor | None,
                         images: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """obs_history (B, To, Do) normalised, task (B,), images {key: (B, To, H, W, 3) uint8} (image
        models) -> FiLM condition (B, To*(F_img*n_cams + Do) [+ E_task])."""
        if obs_history.ndim != 3 or obs_history.shape[1:] != (self.cfg.obs_steps, self.info.obs_dim):
            raise ValueError(
                f"obs_history must be (B, To={self.cfg.obs_steps}, Do={self.info.obs_dim}), got {tuple(obs_history.shape)}"
            )
        if self.encoders is None:
            cond = obs_history.flatten(1)  # (B, To*Do)
        else:
            missing = [key for key in self.image_keys if images is None or key not in images]
            if missing:
                raise ValueError(f"this Diffusion Policy reads camera frames {list(self.image_keys)}: pass images {missing}")
            features = [self.encoders[key](images[key]) for key in self.image_keys]  # (B, To, F) each
            cond = torch.cat([*features, obs_history], dim=-1).flatten(1)  # (B, To*(n_cams*F + Do))
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
        images: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Reverse diffusion from N(0, I): obs_history (B, To, Do) normalised -> actions (B, T, Da) normalised.

        An image model also takes `images` {key: (B, To, H, W, 3) uint8}; they are encoded once per call.

        `generator` may be a list of B generators, one per sample: each sample then draws exactly
        the noise it would draw alone at batch 1 (diffusers' schedulers accept such lists too), which
        is what lets the evaluator batch several episodes' replans into one network call.
        """
        scheduler, _, _ = self.sampler(sampler, inference_steps)
        cond = self.global_condition(obs_history, task, images)  # (B, Dg)
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
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """DDPM loss on a batch of windows: actions (B, T, Da), obs_history (B, To, Do), [task (B,)].

        Every step of the window is scored, padded ones included (the reference's loss_mask is
        all-true with global conditioning): near an episode's edges the model learns to repeat
        the first / last action, i.e. to hold still.
        """
        actions = batch[ACTIONS]  # (B, T, Da)
        images = {key: batch[image_history_key(key)] for key in self.image_keys} or None  # (B, To, H, W, 3) each
        cond = self.global_condition(batch[OBS_HISTORY], batch.get(TASK), images)  # (B, Dg)
        noise = torch.randn_like(actions)  # (B, T, Da)
        k = torch.randint(0, self.cfg.num_train_timesteps, (actions.shape[0],), device=actions.device)
        noisy = self.noise_scheduler.add_noise(actions, noise, k)  # (B, T, Da)
        pred = self.unet(noisy, k, cond)  # (B, T, Da)
        target = noise if self.cfg.prediction_type == "epsilon" else actions
        value = F.mse_loss(pred, target)
        return value, {f"{self.cfg.prediction_type}_mse": value.detach()}

    def stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        spec = WindowSpec.diffusion_policy(obs_steps=self.cfg.obs_steps, horizon=self.cfg.horizon, image_keys=self.image_keys)
        dataset = SegmentDataset(episodes, spec, self.normalizer, short_episodes=train_cfg.short_episodes).to(self.device)

        def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return dataset.sample_batch(rng.integers(len(dataset), size=train_cfg.batch_size))

        # The whole module (U-Net + task embedding) is trained and EMA-averaged.
        return [Stage("dp", self.cfg.steps, self, sample, self.loss, lr=train_cfg.lr, batch_size=train_cfg.batch_size)]

    # ----------------------------------------------------------------- run time
    def make_policy(self, runtime: GenerationRuntime | None = None) -> "DPPolicy":
        from lwd.methods.dp.policy import DPPolicy

        return DPPolicy(self, runtime or GenerationRuntime())

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

    def cost(self, runtime: GenerationRuntime | None = None, episode_steps: int | None = None) -> Cost:
        """Params and FLOPs at batch 1: one full sampling run every Ta steps, nothing in between."""
        runtime = runtime or GenerationRuntime()
        ta = self.check_action_horizon(runtime.action_horizon)
        _, kind, n_steps = self.sampler(runtime.sampler, runtime.inference_steps)
        hist = torch.zeros(1, self.cfg.obs_steps, self.info.obs_dim)  # (1, To, Do)
        task = torch.zeros(1, dtype=torch.long) if self.num_tasks else None
        images = {key: torch.zeros(1, self.cfg.obs_steps, *shape, dtype=torch.uint8)
                  for key, shape in self.info.images} or None  # (1, To, H, W, 3) each
        training = self.training
        self.eval()  # the evaluation crop, and no draw from the global RNG for a random one
        try:
            cond = self.global_condition(hist, task, images)  # (1, Dg)
            x = torch.zeros(1, self.cfg.horizon, self.info.action_dim)  # (1, T, Da)
            call_flops = count_flops(lambda: self.unet(x, torch.tensor([0]), cond))
            gen_flops = count_flops(lambda: self.sample_actions(hist, task, torch.Generator().manual_seed(0), kind, n_steps,
                                                                images=images))
            details: dict[str, Any] = {"sampler": kind, "inference_steps": n_steps, "flops_denoiser_call": call_flops}
            if self.encoders is not None:  # the encoders run once per plan, on To frames of each camera
                details["params_image_encoders"] = num_params(self.encoders)
                details["flops_image_encoders"] = count_flops(lambda: self.global_condition(hist, task, images))
        finally:
            self.train(training)
        params = num_params(self)
        return Cost(
            params_total=params,
            params_per_step=params,  # the whole U-Net runs to produce actions
            flops_policy_step=0,  # queued actions are replayed; no network runs between plans
            flops_generation=gen_flops,
            generation_every=ta,
            details=details,
        )

    @classmethod
    def bench_cell(cls, variant: str, horizon: int, cfg: DPConfig, ddim_steps: int) -> BenchCell:
        """Execute H actions per plan: the prediction horizon must hold To-1+H actions, rounded up as
        the U-Net requires, so one model is trained per distinct prediction horizon. The "ddim"
        variant evaluates that DDPM-trained model with `ddim_steps` DDIM steps."""
        pred = round_up_horizon(max(cfg.horizon, cfg.obs_steps - 1 + horizon), cfg.down_dims)
        sampling: dict[str, Any] = {"sampler": "ddim", "inference_steps": ddim_steps} if variant == "ddim" else {}
        return BenchCell((f"horizon={pred}",), GenerationRuntime(action_horizon=horizon, **sampling), run_tag=f"T{pred}")
