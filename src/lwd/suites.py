"""Benchmarks by name: which tasks, how to make each env and expert, and the test protocol.

A `Suite` is one benchmark: `metaworld/mt10` (10 tasks, task-id = index in `tasks`) or a single
task such as `metaworld/push-v3`. An image suite (`pusht/image`, `robomimic/<task>/image`) observes
a dict with the keys of one episode-store step, `{"obs": low-dim (obs_dim,), <image key>: (H, W, 3)
uint8}`, and lists its cameras in `images`; every other suite observes the low-dim array alone.
Every command takes these names, so one string fixes the
environment, the demonstrator and the evaluation protocol. This module sits above `lwd.envs` and
`lwd.experts` and joins them; neither of those imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym

from lwd.config import is_multitask
from lwd.experts.base import Expert


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    obs_dim: int
    action_dim: int
    max_episode_steps: int
    make_task_env: Callable[..., gym.Env] = field(repr=False)
    make_task_expert: Callable[[str], Expert] = field(repr=False)
    test_seed_start: int = 100_000
    """Evaluation seeds are test_seed_start + i; demonstrations use seeds from 0, far below."""
    styles: tuple[str, ...] = ()
    """Names of the expert's styles (distinct ways to solve the task), in the order a dataset's
    integer `style` ids index; empty when the suite's expert has only its one way."""
    make_task_style_expert: Callable[[str, str], Expert] | None = field(default=None, repr=False)
    images: tuple[tuple[str, tuple[int, int, int]], ...] = ()
    """Camera frames beside the low-dim observation: (image key, (H, W, 3)) each, as
    `DataInfo.images` records them; empty for a state-only suite."""

    @property
    def image_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.images)

    @property
    def multitask(self) -> bool:
        return is_multitask(self.tasks)

    def task_id(self, task: str) -> int:
        if task not in self.tasks:
            raise ValueError(f"task {task!r} is not part of {self.name}; its tasks: {', '.join(self.tasks)}")
        return self.tasks.index(task)

    def make_env(self, task: str, **kwargs: Any) -> gym.Env:
        self.task_id(task)
        return self.make_task_env(task, **kwargs)

    def make_expert(self, task: str, style: str | None = None) -> Expert:
        """The task's expert; with `style`, the expert of that style (one of `styles`)."""
        self.task_id(task)
        if style is None:
            return self.make_task_expert(task)
        if style not in self.styles or self.make_task_style_expert is None:
            known = ", ".join(self.styles) if self.styles else "none (this expert has one way only)"
            raise ValueError(f"{self.name} has no expert style {style!r}; its styles: {known}")
        return self.make_task_style_expert(task, style)


def _metaworld_suite(name: str, tasks: tuple[str, ...]) -> Suite:
    from lwd.envs import metaworld as mw
    from lwd.experts.metaworld import MetaworldExpert, styles_for

    suite_kind = "mt10" if len(tasks) > 1 else "mt1"

    def make_env(task: str, **kwargs: Any) -> gym.Env:
        return mw.MetaworldTaskEnv(task, suite=suite_kind, **kwargs)

    # styles only where every task's expert has them (the MT10 tasks: see lwd.experts.metaworld)
    styles = min((styles_for(task) for task in tasks), key=len)
    return Suite(name, tasks, mw.OBS_DIM, mw.ACTION_DIM, mw.MAX_EPISODE_STEPS, make_env, MetaworldExpert,
                 styles=styles if len(styles) > 1 else (),
                 make_task_style_expert=lambda task, style: MetaworldExpert(task, style=style))


def _pusht_suite(obs_type: str) -> Suite:
    from lwd.envs import pusht
    from lwd.experts.pusht import STYLES, PushTExpert

    def make_env(task: str, **kwargs: Any) -> gym.Env:
        return pusht.PushTEnv(obs_type=obs_type, **kwargs)

    name = "pusht" if obs_type == pusht.DEFAULT_OBS_TYPE else f"pusht/{obs_type}"
    images = ((pusht.IMAGE_KEY, (pusht.IMAGE_SIZE, pusht.IMAGE_SIZE, 3)),) if obs_type == pusht.IMAGE_OBS_TYPE else ()
    return Suite(name, ("pusht",), pusht.LOW_DIMS[obs_type], pusht.ACTION_DIM, pusht.MAX_EPISODE_STEPS,
                 make_env, lambda task: PushTExpert(), styles=STYLES,
                 make_task_style_expert=lambda task, style: PushTExpert(style=style), images=images)


def _robomimic_suite(task_name: str, image: bool = False) -> Suite:
    """robomimic/<task> (low-dim obs) or robomimic/<task>/image (proprioception + the agentview camera)."""
    from lwd.envs import robomimic
    from lwd.experts.robomimic import STYLES, RobomimicExpert

    cameras = robomimic.IMAGE_CAMERAS if image else ()

    def make_env(task: str, **kwargs: Any) -> gym.Env:
        return robomimic.RobomimicEnv(task, cameras=cameras, **kwargs) if cameras else robomimic.RobomimicEnv(task, **kwargs)

    side = robomimic.IMAGE_SIZE
    images = tuple((robomimic.image_key(camera), (side, side, 3)) for camera in cameras)
    obs_dim = robomimic.PROPRIO_DIM if image else robomimic.OBS_DIMS[task_name]
    return Suite(f"robomimic/{task_name}" + ("/image" if image else ""), (task_name,), obs_dim, robomimic.ACTION_DIM,
                 robomimic.MAX_EPISODE_STEPS, make_env, RobomimicExpert, styles=STYLES.get(task_name, ()),
                 make_task_style_expert=lambda task, style: RobomimicExpert(task, style=style), images=images)


REACH_WALL_LOW = "metaworld/reach-wall-low"


def reach_wall_low_suite(start_spread_cm: float = 0.0) -> Suite:
    """metaworld/reach-wall-low (the start fixed) or metaworld/reach-wall-low/spread-<cm> (moved sideways per
    seed by up to that many cm): reach-wall from a low start centred before the wall, with its two ways
    round the wall as styles (lwd.envs.reach_wall, lwd.experts.reach_wall)."""
    from lwd.envs import reach_wall as rw
    from lwd.experts.reach_wall import STYLES, DetourExpert

    if not 0.0 <= start_spread_cm <= 100 * rw.MAX_START_SPREAD:
        raise ValueError(f"{REACH_WALL_LOW}: the start spread must be 0-{100 * rw.MAX_START_SPREAD:g} cm "
                         f"(the start stays in front of the wall), got {start_spread_cm:g}")

    def make_env(task: str, **kwargs: Any) -> gym.Env:
        return rw.ReachWallLowEnv(start_spread=start_spread_cm / 100.0, **kwargs)

    name = REACH_WALL_LOW + (f"/spread-{start_spread_cm:g}" if start_spread_cm else "")
    return Suite(name, (rw.TASK,), rw.OBS_DIM, rw.ACTION_DIM, rw.MAX_EPISODE_STEPS, make_env, lambda task: DetourExpert(),
                 styles=STYLES, make_task_style_expert=lambda task, style: DetourExpert(style))


PUSHT_OBS_TYPES = ("keypoints", "state", "image")
ROBOMIMIC_TASKS = ("lift", "can", "square")


def available_suites() -> list[str]:
    from lwd.envs.metaworld import MT10_TASKS

    return [
        "pusht (= pusht/keypoints)", "pusht/state", "pusht/image",
        *[f"robomimic/{t}" for t in ROBOMIMIC_TASKS], *[f"robomimic/{t}/image" for t in ROBOMIMIC_TASKS],
        "metaworld/mt10", *[f"metaworld/{t}" for t in MT10_TASKS], "metaworld/<any v3 task>",
        REACH_WALL_LOW, f"{REACH_WALL_LOW}/spread-<cm, up to 10>",
    ]


def make_suite(name: str) -> Suite:
    """`pusht[/keypoints|/state|/image]`, `robomimic/<lift|can|square>[/image]`, `metaworld/mt10` or `metaworld/<task>-v3`.

    Unknown names raise with the list of known ones. Simulators are imported only when their
    suite is asked for, so a Metaworld-only install never needs gym-pusht or robosuite.
    """
    key = name.strip().lower()
    if key in ("pusht", "pusht/keypoints", "pusht/state", "pusht/image"):
        return _pusht_suite(key.partition("/")[2] or "keypoints")
    if key.startswith("robomimic/"):
        task, _, variant = key.split("/", 1)[1].partition("/")
        if task not in ROBOMIMIC_TASKS:
            raise ValueError(f"unknown robomimic task {task!r} in {name!r}; known: {', '.join(ROBOMIMIC_TASKS)}")
        if variant not in ("", "image"):
            raise ValueError(f"unknown robomimic observation {variant!r} in {name!r}; use robomimic/{task} or robomimic/{task}/image")
        return _robomimic_suite(task, image=variant == "image")
    if key in ("metaworld/mt10", "mt10"):
        from lwd.envs.metaworld import MT10_TASKS

        return _metaworld_suite("metaworld/mt10", MT10_TASKS)
    if key == REACH_WALL_LOW or key.startswith(REACH_WALL_LOW + "/"):
        variant = key[len(REACH_WALL_LOW) + 1:]
        try:
            spread = float(variant.removeprefix("spread-")) if variant.startswith("spread-") else float("nan")
        except ValueError:
            spread = float("nan")
        if variant and not spread > 0:
            raise ValueError(f"unknown variant {variant!r} in {name!r}; use {REACH_WALL_LOW} or {REACH_WALL_LOW}/spread-<cm>")
        return reach_wall_low_suite(spread if variant else 0.0)
    if key.startswith("metaworld/"):
        task = key.split("/", 1)[1]
        from lwd.envs.metaworld import MT10_TASKS, import_metaworld

        if task not in import_metaworld().ALL_V3_ENVIRONMENTS:
            raise ValueError(f"unknown Metaworld task {task!r} in {name!r}; try one of: {', '.join(MT10_TASKS)}")
        return _metaworld_suite(f"metaworld/{task}", (task,))
    raise ValueError(f"unknown environment {name!r}; known: {', '.join(available_suites())}")
