"""Diffusion Policy at run time: receding-horizon execution of sampled action chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from lwd.data.keys import ACTION, OBS
from lwd.methods.base import GenerationRuntime, Policy
from lwd.methods.history import ObsHistory

if TYPE_CHECKING:
    from lwd.methods.dp.model import DiffusionPolicy


class DPPolicy(Policy):
    """Receding-horizon runtime for one episode.

    Keeps the last To normalised observations (the first observation repeated until there are
    To), and whenever its action queue is empty samples a full horizon of T actions and queues
    the Ta actions [To-1, To-1+Ta). An image model observes dicts ({"obs": low-dim, <image key>:
    (H, W, 3) uint8}) and keeps their frames in the history beside the normalised low-dim part. The sampling noise comes from a generator seeded by the
    episode seed, so an episode's actions never depend on other episodes or on parallel envs.
    """

    batches_acting = True

    def __init__(self, model: "DiffusionPolicy", runtime: GenerationRuntime) -> None:
        super().__init__()
        self.model = model.eval()
        self.action_horizon = model.check_action_horizon(runtime.action_horizon)
        _, self.sampler, self.inference_steps = model.sampler(runtime.sampler, runtime.inference_steps)
        self.delay = runtime.generation_delay or 0
        if self.delay >= self.action_horizon:
            raise ValueError(f"generation_delay={self.delay} must be below the action horizon Ta={self.action_horizon}")
        need = model.cfg.obs_steps - 1 + self.action_horizon + self.delay
        if need > model.cfg.horizon:  # the chunk must reach past the delay
            raise ValueError(f"with generation_delay={self.delay} a plan must hold To-1+Ta+delay={need} actions but the model "
                             f"predicts T={model.cfg.horizon}; lower the delay or Ta")
        self._extension: list[np.ndarray] = []  # actions of the last plan that cover the next plan's delay
        self._planned = False
        self._generator = torch.Generator().manual_seed(0)
        self._task: torch.Tensor | None = None
        self._history = ObsHistory(model.cfg.obs_steps)  # normalised observations
        self._queue: list[np.ndarray] = []  # arrays of shape (Da,), unnormalised

    def reset(self, seed: int, task: int | None = None) -> None:
        if self.model.num_tasks and task is None:
            raise ValueError("this Diffusion Policy is multitask: pass the task id to reset()")
        self._generator = torch.Generator().manual_seed(int(seed))
        self._task = torch.tensor([int(task)], dtype=torch.long) if (self.model.num_tasks and task is not None) else None
        self._history.clear()
        self._queue = []
        self._extension = []
        self._planned = False

    def _install(self, sample: np.ndarray) -> None:
        """Queue a plan (T, Da) normalised, sampled from this step's observations.

        Without delay: actions [To-1, To-1+Ta). With a delay of K steps the plan arrives K steps
        late: until then the previous plan's next K actions run, and this plan contributes
        [To-1+K, To-1+Ta) now and [To-1+Ta, To-1+Ta+K) to cover the next plan's delay. The first
        plan of an episode is waited for."""
        start, k = self.model.cfg.obs_steps - 1, self.delay
        low = start if not self._planned else start + k
        chunk = self.model.normalizer.unnormalize(ACTION, sample[low : start + self.action_horizon + k]).astype(np.float32)
        now = self.action_horizon - (low - start)
        self._queue = self._extension + list(chunk[:now])
        self._extension = list(chunk[now:])
        self._planned = True
        self.generations += 1

    @classmethod
    def act_batch(cls, policies: Sequence[Policy], obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """One step of several episodes (obs (N, Do), or an image model's dict of (N, ...) arrays):
        the ones whose queue is empty replan in one batched call."""
        dp = [p for p in policies if isinstance(p, DPPolicy)]
        if len(dp) != len(policies):
            raise ValueError("DPPolicy.act_batch steps Diffusion Policy runtimes only")
        rows = [{key: value[i] for key, value in obs.items()} for i in range(len(dp))] if isinstance(obs, dict) else obs
        cls.plan_together([p for p, o in zip(dp, rows) if p.observe(o)])
        return np.stack([p.next_action() for p in dp])

    @staticmethod
    def plan_together(policies: list["DPPolicy"]) -> None:
        """One batched sampling run that refills the queue of every policy given (same model and settings).

        Each policy keeps its own noise generator, so the noise is what it would draw alone; the
        network's batched arithmetic can differ from batch 1 in the last float bits.
        """
        if not policies:
            return
        first = policies[0]
        if any(p.model is not first.model or (p.sampler, p.inference_steps, p.action_horizon, p.delay)
               != (first.sampler, first.inference_steps, first.action_horizon, first.delay) for p in policies):
            raise ValueError("plan_together needs policies of one model with the same runtime settings")
        hist, images = _batched([p._history.stacked() for p in policies])  # (B, To, Do), {key: (B, To, H, W, 3)}
        task = torch.cat([p._task for p in policies]) if first._task is not None else None  # (B,)
        sample = first.model.sample_actions(hist, task, [p._generator for p in policies], first.sampler, first.inference_steps,
                                            images=images)  # (B, T, Da)
        for policy, plan in zip(policies, sample.cpu().numpy()):
            policy._install(plan)

    def _plan(self) -> None:
        hist, images = _batched([self._history.stacked()])  # (1, To, Do), {key: (1, To, H, W, 3)} or None
        sample = self.model.sample_actions(hist, self._task, self._generator, self.sampler, self.inference_steps,
                                           images=images)  # (1, T, Da)
        self._install(sample[0].cpu().numpy())

    def observe(self, obs: np.ndarray | dict[str, np.ndarray]) -> bool:
        """Record obs (Do,) raw (an image model: {"obs": (Do,), <image key>: (H, W, 3) uint8}) in the
        history; True if a plan is needed before `next_action`."""
        low_dim = obs[OBS] if isinstance(obs, dict) else obs
        obs_n = self.model.normalizer.normalize(OBS, np.asarray(low_dim, np.float32)).astype(np.float32)  # (Do,)
        if self.model.image_keys:
            if not isinstance(obs, dict):
                raise ValueError(f"this Diffusion Policy reads camera frames {list(self.model.image_keys)}: "
                                 "act() takes {'obs': low-dim, <image key>: frame} observations")
            self._history.push({OBS: obs_n, **{key: np.array(obs[key], np.uint8) for key in self.model.image_keys}})
        else:
            self._history.push(obs_n)
        return not self._queue

    def next_action(self) -> np.ndarray:
        """The next queued action (Da,) raw; plans first (at batch 1) if the queue is empty."""
        if not self._queue:
            self._plan()
        self.steps += 1
        return self._queue.pop(0)

    def act(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """obs (Do,) raw (or an image model's dict, see `observe`) -> action (Da,) raw."""
        self.observe(obs)
        return self.next_action()


def _batched(histories: list) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """Stacked histories of B policies -> obs history (B, To, Do) and, for an image model's dict
    histories, the frames {key: (B, To, H, W, 3) uint8} (else None)."""
    if not isinstance(histories[0], dict):
        return torch.from_numpy(np.stack(histories)), None
    hist = torch.from_numpy(np.stack([h[OBS] for h in histories]))
    images = {key: torch.from_numpy(np.stack([h[key] for h in histories])) for key in histories[0] if key != OBS}
    return hist, images
