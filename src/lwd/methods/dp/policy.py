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
    the Ta actions [To-1, To-1+Ta). The sampling noise comes from a generator seeded by the
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
    def act_batch(cls, policies: Sequence[Policy], obs: np.ndarray) -> np.ndarray:
        """One step of several episodes: the ones whose queue is empty replan in one batched call."""
        dp = [p for p in policies if isinstance(p, DPPolicy)]
        if len(dp) != len(policies):
            raise ValueError("DPPolicy.act_batch steps Diffusion Policy runtimes only")
        cls.plan_together([p for p, o in zip(dp, obs) if p.observe(o)])
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
        hist = torch.from_numpy(np.stack([p._history.stacked() for p in policies]))  # (B, To, Do)
        task = torch.cat([p._task for p in policies]) if first._task is not None else None  # (B,)
        sample = first.model.sample_actions(hist, task, [p._generator for p in policies], first.sampler, first.inference_steps)  # (B, T, Da)
        for policy, plan in zip(policies, sample.cpu().numpy()):
            policy._install(plan)

    def _plan(self) -> None:
        hist = torch.from_numpy(self._history.stacked())[None]  # (1, To, Do)
        sample = self.model.sample_actions(hist, self._task, self._generator, self.sampler, self.inference_steps)  # (1, T, Da)
        self._install(sample[0].cpu().numpy())

    def observe(self, obs: np.ndarray) -> bool:
        """Record obs (Do,) raw in the history; True if a plan is needed before `next_action`."""
        obs_n = self.model.normalizer.normalize(OBS, np.asarray(obs, np.float32)).astype(np.float32)  # (Do,)
        self._history.push(obs_n)
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
