"""diffusers schedulers for every diffusion model in lwd: one factory and one per-model cache."""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler

SAMPLERS = ("ddpm", "ddim")
Scheduler = DDPMScheduler | DDIMScheduler


def make_scheduler(
    kind: str, num_train_timesteps: int, beta_schedule: str, prediction_type: str = "epsilon",
    clip_sample: bool = True, clip_sample_range: float = 1.0,
) -> Scheduler:
    """A DDPM or DDIM scheduler with diffusers' defaults for everything not named here
    (betas 1e-4..0.02 for the linear schedules, DDPM variance 'fixed_small', DDIM alpha_T = 1,
    no step offset: Diffusion Policy's reference settings)."""
    if kind not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
    common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type=prediction_type,
                  clip_sample=clip_sample, clip_sample_range=clip_sample_range)
    return DDIMScheduler(**common) if kind == "ddim" else DDPMScheduler(**common)


class SamplerCache:
    """Samplers by (kind, steps), built once: a scheduler holds no per-sample state once its
    timesteps are set, so every policy of a model can share it."""

    def __init__(self, **settings: object) -> None:
        self.settings = settings
        self._cache: dict[tuple[str, int], Scheduler] = {}

    def get(self, kind: str, steps: int) -> Scheduler:
        key = (kind, steps)
        if key not in self._cache:
            scheduler = make_scheduler(kind, **self.settings)  # type: ignore[arg-type]
            scheduler.set_timesteps(steps)
            self._cache[key] = scheduler
        return self._cache[key]
