"""Training windows cut from episodes: an observation history plus a horizon of actions.

Both LWD and Diffusion Policy train on the same kind of window and differ only in where the
actions start relative to the anchor step, so one dataset serves both (see :class:`WindowSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lwd.data.episodes import Episodes
from lwd.data.errors import DatasetError
from lwd.data.keys import (ACTION, ACTIONS, DRIVING_ACTIONS, EXECUTED_ACTION, MASK, OBS, OBS_HISTORY, PUSHED, STATES,
                           TASK, UNPUSHED, image_history_key)
from lwd.data.normalize import MinMaxNormalizer


SHORT_EPISODE_POLICIES = ("error", "pad", "drop")
PUSHES = ("object-push", "block-push")
"""The perturbations of `lwd.envs.perturb` that move the scene themselves (their demos record `pushed`)."""


@dataclass(frozen=True)
class WindowSpec:
    """Which steps around an anchor step ``t`` a window contains.

    Attributes:
        obs_steps: To, observation history ending at the anchor: obs[t-To+1 .. t].
        action_steps: H, number of actions in the window.
        action_offset: actions cover [t+action_offset, t+action_offset+H). LWD uses 0 (the H
            actions starting at t); Diffusion Policy uses -(To-1) (its horizon starts with the
            first observed step).
        with_states: also return the obs at the action steps ("states"), which LWD's
            behaviour-cloning loss feeds to the generated policy.
        with_dynamics: also return what a dynamics model fits at the action steps: the action the
            env executed ("driving_actions": `executed_action` where the demos recorded DART noise,
            else the label) and whether the step's transition was the action's doing alone
            ("unpushed": 0 where `pushed` says a push moved the object too). Labels are what a
            policy should imitate; they are not what moved the state on noise-injected demos.
        image_keys: camera frames to return for the observation history, one batch key per
            camera (``image_history_key(key)``: (B, To, H, W, 3) uint8, read from the store for
            that batch only). Empty: a state-only window, exactly as before frames existed.
    """

    obs_steps: int
    action_steps: int
    action_offset: int = 0
    with_states: bool = True
    with_dynamics: bool = False
    image_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.image_keys, tuple) or not all(isinstance(k, str) for k in self.image_keys):
            raise ValueError(f"WindowSpec.image_keys must be a tuple of image key names, got {self.image_keys!r}")
        for name in ("obs_steps", "action_steps", "action_offset"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"WindowSpec.{name} must be an int, got {value!r}")
        if self.obs_steps < 1:
            raise ValueError(f"WindowSpec.obs_steps (To) must be >= 1, got {self.obs_steps}")
        if self.action_steps < 1:
            raise ValueError(f"WindowSpec.action_steps (H) must be >= 1, got {self.action_steps}")

    @classmethod
    def diffusion_policy(cls, obs_steps: int = 2, horizon: int = 16, image_keys: tuple[str, ...] = ()) -> WindowSpec:
        """Diffusion Policy's window: the predicted horizon starts at the oldest observed step."""
        return cls(obs_steps=obs_steps, action_steps=horizon, action_offset=-(obs_steps - 1), with_states=False,
                   image_keys=image_keys)


class SegmentDataset(torch.utils.data.Dataset):
    """Every step of every episode as the anchor of one window, padded at episode edges.

    Timeline for To=2, H=4, action_offset=0, anchor t two steps before the episode's end::

        step            s   ...   t-1    t    t+1 | t+2  t+3     (episode ends after t+1)
        obs_history               [o     o]
        actions                        [ a    a   | a*   a* ]    a* = last action repeated
        states                         [ o    o   | o*   o* ]    o* = last obs repeated
        mask                             1    1     0    0

    With Diffusion Policy's ``action_offset = -(To-1)`` the action window starts at t-1 instead,
    and at the start of an episode its first entries repeat the first action (mask 0). The
    observation history before the start repeats the first observation (no mask: the models
    condition on it, they are not scored on it).

    Padding keeps every step an anchor exactly once, so the end of each episode, where a robot
    must stop or hold, is seen as often as the middle. ``mask`` lets a loss ignore padded steps.

    Indexing is vectorised: :meth:`sample_batch` builds (B, To) and (B, H) index tensors with
    broadcasting and gathers with one indexing call per key, which makes a DataLoader with
    per-item Python calls unnecessary on CPU. Only O(steps) per-anchor bounds are precomputed,
    not O(steps x H) index tables, so long horizons on big datasets cost no extra memory.
    """

    def __init__(
        self,
        episodes: Episodes,
        spec: WindowSpec,
        normalizer: MinMaxNormalizer | None = None,
        min_episode_length: int | None = None,
        short_episodes: str = "error",
    ) -> None:
        """
        Args:
            min_episode_length: explicit minimum episode length (overrides `short_episodes`).
            short_episodes: what to do with episodes shorter than the window's H actions:
                "error" (a DatasetError naming them), "pad" (keep them: their windows are padded
                and masked like any window that runs past an episode's end, as Diffusion
                Policy's sampler does), or "drop" (leave them out; `dropped_episodes` counts them).
        """
        if short_episodes not in SHORT_EPISODE_POLICIES:
            raise ValueError(f"short_episodes must be one of {SHORT_EPISODE_POLICIES}, got {short_episodes!r}")
        self.dropped_episodes = 0
        if min_episode_length is not None:
            episodes.check_min_length(min_episode_length, f"min_episode_length={min_episode_length}")
        elif short_episodes == "drop":
            kept = episodes.drop_shorter_than(spec.action_steps)
            self.dropped_episodes = episodes.num_episodes - kept.num_episodes
            episodes = kept
        elif short_episodes == "error":
            episodes.check_min_length(spec.action_steps, f"the action horizon H={spec.action_steps}")
        longest = int(episodes.lengths.max()) if episodes.num_episodes else 0
        if episodes.num_episodes and spec.action_steps > longest:
            raise DatasetError(
                f"a window of H={spec.action_steps} actions is longer than the longest episode ({longest} steps): "
                f"every window would be mostly padding; use a horizon of at most {longest}"
            )
        missing = [key for key in spec.image_keys if key not in episodes.frames]
        if missing:
            raise DatasetError(f"the window reads frames {missing} but the episodes have image keys "
                               f"{episodes.image_keys or 'none (state-only data)'}")
        self.episodes = episodes
        self.spec = spec
        self.normalizer = normalizer
        self._frames = {key: episodes.frames[key] for key in spec.image_keys}  # read per batch, never whole

        obs = episodes.data[OBS]  # (N, Do)
        action = episodes.data[ACTION]  # (N, Da)
        if normalizer is not None:  # once for the whole dataset, not per batch
            obs = normalizer.normalize(OBS, obs)
            action = normalizer.normalize(ACTION, action)
        # Stored as torch tensors (sharing NumPy's memory on the CPU) so that `to(device)` can place
        # the whole dataset on a GPU once and every batch is gathered there, with no per-step copy
        # of windows from host to device.
        self._obs = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))  # (N, Do)
        self._action = torch.from_numpy(np.ascontiguousarray(action, dtype=np.float32))  # (N, Da)
        task = episodes.data.get(TASK)
        self._task_np = None if task is None else np.asarray(task, dtype=np.int64)  # (N,) int64 or None
        self._task = None if task is None else torch.from_numpy(self._task_np)
        self._driving = self._unpushed = None
        if spec.with_dynamics:
            executed, pushed = episodes.data.get(EXECUTED_ACTION), episodes.data.get(PUSHED)
            noisy = float(episodes.attrs.get("dart_noise") or 0.0) > 0
            perturbed = str(episodes.attrs.get("perturbation") or "none").split(":")[0] in PUSHES
            missing = [key for key, needed in ((EXECUTED_ACTION, noisy and executed is None),
                                               (PUSHED, perturbed and pushed is None)) if needed]
            if missing:
                raise DatasetError(
                    f"these demos were made with dart_noise {episodes.attrs.get('dart_noise')} and perturbation "
                    f"{episodes.attrs.get('perturbation')} but do not record {missing}, so a dynamics model would "
                    "fit the labels and the pushes; remake them with this lwd's `lwd demos` (the same seeds give "
                    "the same demos, plus these keys)")
            if executed is not None and executed.shape != episodes.data[ACTION].shape:
                raise DatasetError(f"'{EXECUTED_ACTION}' has shape {executed.shape} but '{ACTION}' has "
                                   f"{episodes.data[ACTION].shape}: they must describe the same steps")
            if pushed is not None and (pushed.ndim != 1 or pushed.dtype.kind not in "bui"):
                raise DatasetError(f"'{PUSHED}' must be one flag per step (N,), got dtype {pushed.dtype} shape {pushed.shape}")
            if executed is None:
                self._driving = self._action  # the labels were executed as they are
            else:
                executed = normalizer.normalize(ACTION, executed) if normalizer is not None else executed
                self._driving = torch.from_numpy(np.ascontiguousarray(executed, dtype=np.float32))
            unpushed = np.ones(len(obs), np.float32) if pushed is None else (np.asarray(pushed) == 0).astype(np.float32)
            self._unpushed = torch.from_numpy(unpushed)

        # Per-anchor bounds; anchor n is global step n.
        self._anchor_episode = np.repeat(np.arange(episodes.num_episodes), episodes.lengths)  # (N,)
        self._first = torch.from_numpy(episodes.episode_starts[self._anchor_episode].astype(np.int64))  # (N,) first step
        self._last = torch.from_numpy(episodes.episode_ends[self._anchor_episode].astype(np.int64) - 1)  # (N,) last step
        self._obs_offsets = torch.arange(-spec.obs_steps + 1, 1)  # (To,)
        self._action_offsets = torch.arange(spec.action_steps) + spec.action_offset  # (H,)

    @property
    def device(self) -> torch.device:
        """Where batches are gathered and returned."""
        return self._obs.device

    def to(self, device: str | torch.device) -> "SegmentDataset":
        """Place the dataset on `device` once (in place); later batches are gathered there."""
        device = torch.device(device)
        for name in ("_obs", "_action", "_first", "_last", "_obs_offsets", "_action_offsets"):
            setattr(self, name, getattr(self, name).to(device))
        for name in ("_task", "_driving", "_unpushed"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    def __len__(self) -> int:
        return len(self._anchor_episode)

    @property
    def obs_dim(self) -> int:
        return int(self._obs.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self._action.shape[1])

    @property
    def anchor_episodes(self) -> np.ndarray:
        """(N_anchor,) int64 episode index of each anchor."""
        return self._anchor_episode

    @property
    def anchor_tasks(self) -> np.ndarray | None:
        """(N_anchor,) int64 task id of each anchor, or None when the episodes have no task."""
        return self._task_np

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One window: obs_history (To, Do), actions (H, Da), [states (H, Do)], mask (H,), [task ()]."""
        n = len(self)
        if not isinstance(index, (int, np.integer)) or not -n <= index < n:
            raise IndexError(f"window index {index!r} out of range for {n} windows")
        batch = self.sample_batch(np.array([index % n]))
        return {key: value[0] for key, value in batch.items()}

    def sample_batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Gather B windows at once; same content as stacking ``self[i]`` for i in ``indices``.

        Returns obs_history (B, To, Do), actions (B, H, Da), states (B, H, Do) when
        ``spec.with_states``, mask (B, H) float32, task (B,) int64 when present, with
        ``spec.with_dynamics`` driving_actions (B, H, Da) and unpushed (B, H) float32 (padding
        steps: 0, like the mask), and for each of ``spec.image_keys`` its frame history
        (B, To, H, W, 3) uint8 at the obs_history's steps (read from the store now).
        """
        anchors = np.asarray(indices, dtype=np.int64).reshape(-1)  # (B,)
        if anchors.size and (anchors.min() < 0 or anchors.max() >= len(self)):
            raise IndexError(f"window indices must be in [0, {len(self)}), got min {anchors.min()} max {anchors.max()}")
        # The only host-to-device transfer per batch: B anchor indices (drawn by the NumPy RNG that
        # makes runs reproducible); the windows themselves are gathered where the data lives.
        index = torch.from_numpy(anchors).to(self.device, non_blocking=True)  # (B,)
        first = self._first[index][:, None]  # (B, 1)
        last = self._last[index][:, None]  # (B, 1)

        obs_idx = torch.maximum(torch.minimum(index[:, None] + self._obs_offsets, last), first)  # (B, To)
        raw_action_idx = index[:, None] + self._action_offsets  # (B, H)
        mask = (raw_action_idx >= first) & (raw_action_idx <= last)  # (B, H)
        action_idx = torch.maximum(torch.minimum(raw_action_idx, last), first)  # (B, H)

        batch = {
            OBS_HISTORY: self._obs[obs_idx],  # (B, To, Do)
            ACTIONS: self._action[action_idx],  # (B, H, Da)
            MASK: mask.float(),  # (B, H)
        }
        if self.spec.with_states:
            batch[STATES] = self._obs[action_idx]  # (B, H, Do)
        if self._task is not None:
            batch[TASK] = self._task[index]  # (B,)
        if self._driving is not None:
            batch[DRIVING_ACTIONS] = self._driving[action_idx]  # (B, H, Da)
            batch[UNPUSHED] = self._unpushed[action_idx] * batch[MASK]  # (B, H)
        if self._frames:
            steps = obs_idx.cpu().numpy()  # (B, To)
            for key, frames in self._frames.items():
                batch[image_history_key(key)] = torch.from_numpy(frames[steps]).to(self.device)  # (B, To, H, W, 3) uint8
        return batch
