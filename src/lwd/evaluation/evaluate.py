"""Evaluate a policy on a suite: fixed seeds, gymnasium vector envs, per-task success, FLOPs.

Each episode is fully defined by (task, seed). Every env slot of the vector env owns its own
runtime policy object, reset with the episode's seed, so an episode's outcome does not depend on
how many envs run in parallel or which episodes ran before it (the reference Diffusion Policy
runner only counted its first n_envs seeds; here every requested episode is counted).

Image suites observe a dict (`{"obs": low-dim, <image key>: frame}`, see `lwd.suites`); the vector
env batches it per key. A policy gets what its model reads: a model trained with camera frames
(`DataInfo.images`) gets the dict, any other model the low-dim array alone, so state-only models
and suites run exactly as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from lwd.envs.perturb import apply_perturbation
from lwd.methods.base import Cost, Method, Policy, RuntimeOptions
from lwd.suites import Suite

if TYPE_CHECKING:
    from lwd.analysis.styles import EpisodeStyle


@dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    steps: int
    total_reward: float
    max_score: float | None = None
    """Best per-step score of the episode, for suites that report one (PushT: DP's coverage score)."""
    final_score: float | None = None
    """Score at the episode's last step. Unlike the max, random pushes cannot raise it by a lucky
    shove the policy then undoes, so it is the fairer figure under perturbations."""
    style: str | None = None
    """The behaviour the episode showed, by the suite's style rule (`lwd.analysis.styles`), when the
    evaluation was asked to label episodes; None otherwise (and then left out of the result's rows)."""
    style_consistent: bool | None = None
    """Whether both halves of the episode's style phase show the same style (`EpisodeStyle.consistent`):
    the issue's "does the style hold when the policy is regenerated every H steps"; None when a half is
    undecided. Kept only beside `style`."""

    def row(self) -> dict[str, Any]:
        """As the result's "episodes" list holds it."""
        out = asdict(self)
        if out["style"] is None:
            del out["style"], out["style_consistent"]
        return out


class _SlotEnv(gym.Env):
    """One vector-env slot that can host any task of a suite; after an episode ends it stays frozen.

    The slot never reports terminated/truncated to the vector env (which in gymnasium's
    autoreset-disabled mode refuses to step a finished env, though slots finish at different
    times); the episode's end is reported in info["slot_done"] instead, and the runner resets
    the slot with the next planned episode when it sees it.

    The task is chosen at reset via options={"tasks": [task of slot 0, task of slot 1, ...]} (the
    vector env passes the same options to every slot), and the env is rebuilt only when it changes.
    """

    def __init__(self, suite: Suite, perturb: str | None, index: int) -> None:
        self.index = index
        self.suite = suite
        self.perturb = perturb
        self.observation_space = _observation_space(suite)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (suite.action_dim,), np.float32)
        self._task: str | None = None
        self._env: gym.Env | None = None
        self._done = True
        self._last: Any = _zero_observation(suite)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        task = (options or {}).get("tasks", [self._task] * (self.index + 1))[self.index]
        if task is None:
            raise ValueError("the first reset of an env slot must name its task")
        if task != self._task or self._env is None:
            if self._env is not None:
                self._env.close()
            self._env = apply_perturbation(self.suite.make_env(task), self.perturb)
            self._task = task
        obs, info = self._env.reset(seed=seed)
        self._done = False
        self._last = _as_observation(obs)
        return self._last, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._done or self._env is None:
            return self._last, 0.0, False, False, {}
        obs, reward, terminated, truncated, info = self._env.step(action)
        self._done = bool(terminated or truncated)
        self._last = _as_observation(obs)
        info = {"slot_done": self._done, "success": bool(info.get("success", False)), "score": float(info.get("score", np.nan))}
        return self._last, float(reward), False, False, info

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


def _observation_space(suite: Suite) -> gym.Space:
    """A slot's observation space: the low-dim Box, and on an image suite a Dict with its frames."""
    low_dim = gym.spaces.Box(-np.inf, np.inf, (suite.obs_dim,), np.float32)
    if not suite.images:
        return low_dim
    return gym.spaces.Dict({"obs": low_dim, **{key: gym.spaces.Box(0, 255, shape, np.uint8) for key, shape in suite.images}})


def _zero_observation(suite: Suite) -> Any:
    low_dim = np.zeros(suite.obs_dim, np.float32)
    return {"obs": low_dim, **{key: np.zeros(shape, np.uint8) for key, shape in suite.images}} if suite.images else low_dim


def _as_observation(obs: Any) -> Any:
    """float32 low-dim, uint8 frames (a dict on image suites)."""
    if isinstance(obs, dict):
        return {key: np.asarray(value, np.float32 if key == "obs" else np.uint8) for key, value in obs.items()}
    return np.asarray(obs, np.float32)


def policy_observation(method: Method, obs: Any) -> Any:
    """One env observation as `method`'s policies take it: an image suite's dict (float32 low-dim,
    uint8 frames) for a model that reads camera frames, else the low-dim array alone."""
    obs = _as_observation(obs)
    if isinstance(obs, dict) and not method.info.images:
        return obs["obs"]
    return obs


def _rows(obs: Any, index: Any, frames: bool) -> Any:
    """The observations of some slots (`index`: an int or a list) as a policy takes them: the low-dim
    rows, or with `frames` (a model that reads camera frames) the dict of all keys' rows."""
    if not isinstance(obs, dict):
        return obs[index]
    return {key: value[index] for key, value in obs.items()} if frames else obs["obs"][index]


def episode_plan(suite: Suite, episodes_per_task: int, seed_start: int | None = None, tasks: list[str] | None = None) -> list[tuple[str, int, int]]:
    """(task, task_id, seed) for every episode to run, in a fixed order."""
    start = suite.test_seed_start if seed_start is None else seed_start
    chosen = tasks or list(suite.tasks)
    return [(t, suite.task_id(t), start + i) for t in chosen for i in range(episodes_per_task)]


@dataclass
class EpisodeTally:
    """What one running episode has accumulated so far (per-episode accounting)."""

    task: str
    seed: int
    steps: int = 0
    reward: float = 0.0
    success: bool = False
    max_score: float | None = None
    final_score: float | None = None
    trace: list[np.ndarray] | None = None
    """The low-dim observations each action was chosen from so far, kept only to label the episode's style."""

    def record(self, reward: float, success: bool, score: float) -> None:
        """One env step's outcome; a NaN score means the suite reports none."""
        self.steps += 1
        self.reward += float(reward)
        self.success = self.success or bool(success)
        if np.isfinite(score):
            self.max_score = max(float(score), self.max_score if self.max_score is not None else -np.inf)
            self.final_score = float(score)

    def result(self) -> EpisodeResult:
        return EpisodeResult(self.task, self.seed, self.success, self.steps, self.reward, self.max_score, self.final_score)


class SlotSchedule:
    """Hands planned episodes to vector-env slots in plan order as slots become free."""

    def __init__(self, plan: list[tuple[str, int, int]], n_slots: int) -> None:
        self.queue = list(plan)
        self.running: list[EpisodeTally | None] = [None] * n_slots

    @property
    def busy(self) -> bool:
        return any(t is not None for t in self.running)

    def active(self) -> list[int]:
        return [i for i, t in enumerate(self.running) if t is not None]

    def assign(self, slots: list[int]) -> list[tuple[int, str, int, int]]:
        """Give each slot the next planned episode (or nothing, once the plan is used up):
        returns (slot, task, task_id, seed) for the slots that got one."""
        started = []
        for i in slots:
            if not self.queue:
                self.running[i] = None
                continue
            task, task_id, seed = self.queue.pop(0)
            self.running[i] = EpisodeTally(task, seed)
            started.append((i, task, task_id, seed))
        return started


def passes_task_id(method: Method, suite: Suite) -> bool:
    """Whether policies get the episode's task id: on multitask suites, and for models trained with
    task names (a task-conditioned model needs the id even on one task)."""
    return suite.multitask or bool(method.info.tasks)


def check_compatible(method: Method, suite: Suite) -> None:
    """Refuse a suite whose tasks, observation or action size differ from what the model was trained on."""
    info_tasks = tuple(method.info.tasks)
    if info_tasks and suite.multitask and tuple(suite.tasks) != info_tasks:
        raise ValueError(f"the model was trained on tasks {list(info_tasks)} but {suite.name} has {list(suite.tasks)}")
    if method.info.obs_dim != suite.obs_dim:
        raise ValueError(f"the model expects {method.info.obs_dim}-d observations but {suite.name} gives {suite.obs_dim}-d")
    if method.info.action_dim != suite.action_dim:
        raise ValueError(f"the model outputs {method.info.action_dim}-d actions but {suite.name} takes {suite.action_dim}-d")
    given = dict(suite.images)
    for key, shape in method.info.images:
        if key not in given:
            raise ValueError(f"the model reads camera frames '{key}' but {suite.name} gives "
                             f"{'only ' + ', '.join(repr(k) for k in given) if given else 'none'}; "
                             "evaluate it on the image suite its data came from (e.g. pusht/image)")
        if tuple(given[key]) != tuple(shape):
            raise ValueError(f"the model reads '{key}' frames of {tuple(shape)} but {suite.name} gives {tuple(given[key])}")


def evaluate(
    method: Method,
    suite: Suite,
    episodes_per_task: int = 50,
    n_envs: int = 1,
    seed_start: int | None = None,
    tasks: list[str] | None = None,
    perturb: str | None = None,
    runtime: RuntimeOptions | None = None,
    vector: str = "sync",
    progress: bool = True,
    batch_plans: bool = False,
    shard: tuple[int, int] = (0, 1),
    label_style: Callable[[np.ndarray, str], EpisodeStyle] | None = None,
) -> dict[str, Any]:
    """Run every planned episode; returns per-episode results, per-task success and costs.

    label_style: (an episode's low-dim observations (T, Do): the one each action was chosen from, as
    demonstrations and recorded rollouts hold them; its task) -> its style (a suite rule's `label`).
    When given, each episode's observations are kept while it runs and its row gets "style" and
    "style_consistent": this is how studies measure the style mix of a method's rollouts, also with
    batch_plans, without saving the rollouts.
    It only reads observations, so what is measured is unchanged.

    shard: (rank, world size) when several processes (or nodes) share the evaluation: rank r runs
    every world-th episode of the plan from the r-th, and all ranks then gather every episode
    (see `lwd.training.hardware.gather_json`). An episode's result depends only on its seed, so the
    gathered result equals a single-process run's exactly (all but `seconds`).

    batch_plans: when the policy batches its work across episodes (`Policy.batches_acting`, e.g.
    Diffusion Policy), the slots that replan at the same step share one batched network call
    instead of one each. Each episode still draws its own noise, but batched arithmetic differs
    from batch 1 in the last float bits, so an episode on a knife's edge can end differently; off
    by default, which makes results bit-identical for any n_envs.
    """
    if episodes_per_task <= 0 or n_envs <= 0:
        raise ValueError("episodes_per_task and n_envs must be positive")
    check_compatible(method, suite)
    runtime = runtime or method.runtime_options()
    full_plan = episode_plan(suite, episodes_per_task, seed_start, tasks)
    rank, world = shard
    if not 0 <= rank < world or world > len(full_plan):
        raise ValueError(f"cannot share {len(full_plan)} episodes among {world} processes as rank {rank}")
    plan = full_plan[rank::world]
    if perturb is not None:  # a perturbation the suite's env refuses is an error now, not mid-evaluation
        apply_perturbation(suite.make_env(plan[0][0]), perturb).close()
    n_envs = min(n_envs, len(plan))
    policies = [method.make_policy(runtime) for _ in range(n_envs)]
    batched = batch_plans and type(policies[0]).batches_acting
    pass_task = passes_task_id(method, suite)
    factories = [lambda i=i: _SlotEnv(suite, perturb, i) for i in range(n_envs)]
    vec_cls = gym.vector.AsyncVectorEnv if vector == "async" else gym.vector.SyncVectorEnv
    envs = vec_cls(factories, autoreset_mode=gym.vector.AutoresetMode.DISABLED)

    results: list[EpisodeResult] = []
    schedule = SlotSchedule(plan, n_envs)
    frames = bool(method.info.images)  # the policies get the dict observation
    obs: Any = np.zeros((n_envs, suite.obs_dim), np.float32)
    if suite.images:
        obs = {"obs": obs, **{key: np.zeros((n_envs, *shape), np.uint8) for key, shape in suite.images}}
    started = time.perf_counter()
    bar = tqdm(total=len(plan), desc=f"eval {suite.name}", unit="ep", disable=not progress)

    def start_next(slots: list[int]) -> None:
        """Reset the slots that get a new episode (one vector reset for all of them)."""
        tasks_now: list[str | None] = [t.task if t else None for t in schedule.running]
        new = schedule.assign(slots)
        if not new:
            return
        mask = np.zeros(n_envs, dtype=bool)
        seeds: list[int | None] = [None] * n_envs
        for i, task, task_id, seed in new:
            mask[i], seeds[i], tasks_now[i] = True, seed, task
            policies[i].reset(seed, task_id if pass_task else None)
        new_obs, _ = envs.reset(seed=seeds, options={"reset_mask": mask, "tasks": tasks_now})
        if isinstance(obs, dict):
            for key in obs:
                obs[key][mask] = np.asarray(new_obs[key])[mask]
        else:
            obs[mask] = np.asarray(new_obs, np.float32)[mask]
        if label_style is not None:
            for i, *_ in new:
                schedule.running[i].trace = [_rows(obs, i, frames=False).copy()]

    try:
        start_next(list(range(n_envs)))
        while schedule.busy:
            actions = np.zeros((n_envs, suite.action_dim), np.float32)
            active = schedule.active()
            if batched:
                actions[active] = type(policies[0]).act_batch([policies[i] for i in active], _rows(obs, active, frames))
            else:
                for i in active:
                    actions[i] = policies[i].act(_rows(obs, i, frames))
            obs, rewards, _, _, infos = envs.step(actions)
            obs = {key: np.array(value) for key, value in obs.items()} if isinstance(obs, dict) else np.array(obs, np.float32)
            success = infos.get("success", np.zeros(n_envs, bool))
            done = infos.get("slot_done", np.zeros(n_envs, bool))
            scores = infos.get("score", np.full(n_envs, np.nan))
            finished = []
            for i in active:
                tally = schedule.running[i]
                tally.record(rewards[i], success[i], scores[i])
                if tally.trace is not None and not done[i]:  # the observations actions were chosen from, as demos hold them
                    tally.trace.append(_rows(obs, i, frames=False).copy())
                if done[i]:
                    results.append(tally.result())
                    if label_style is not None:
                        shown = label_style(np.stack(tally.trace), tally.task)
                        results[-1].style, results[-1].style_consistent = shown.label, shown.consistent
                    bar.update(1)
                    finished.append(i)
            if finished:
                start_next(finished)
    finally:
        bar.close()
        envs.close()
    seconds = time.perf_counter() - started
    counted: list[Any] = policies
    if world > 1:
        from lwd.training.hardware import gather_json

        shares = gather_json({"episodes": [r.row() for r in results], "seconds": seconds,
                              "steps": sum(p.steps for p in policies), "generations": sum(p.generations for p in policies)})
        results = [EpisodeResult(**row) for share in shares for row in share["episodes"]]
        seconds = max(share["seconds"] for share in shares)
        counted = [_Counts(share["steps"], share["generations"]) for share in shares]
    results.sort(key=lambda r: (suite.task_id(r.task), r.seed))
    summary = summarise(method, suite, results, counted, runtime, perturb, seconds, n_envs)
    if world > 1:
        summary["processes"] = world
    summary["batch_plans"] = batched
    return summary


@dataclass
class _Counts:
    """What another rank's policies ran (their step and generation counters), for `measured_cost`."""

    steps: int
    generations: int


def measured_cost(cost: Cost, policies: list[Policy] | list[_Counts]) -> dict[str, Any]:
    """The nominal cost plus what the policies actually ran: FLOPs per step spent, generations, steps."""
    steps = sum(p.steps for p in policies)
    generations = sum(p.generations for p in policies)
    out = cost.to_dict()
    if steps:
        out["flops_per_step_measured"] = cost.flops_per_step_measured(generations, steps)
    out["generations"] = generations
    out["policy_steps"] = steps
    return out


def summarise(
    method: Method, suite: Suite, results: list[EpisodeResult], policies: list[Policy] | list[_Counts],
    runtime: RuntimeOptions, perturb: str | None, seconds: float, n_envs: int,
) -> dict[str, Any]:
    per_task: dict[str, dict[str, float]] = {}
    for task in dict.fromkeys(r.task for r in results):
        rows = [r for r in results if r.task == task]
        per_task[task] = {
            "success_rate": float(np.mean([r.success for r in rows])),
            "episodes": len(rows),
            "mean_steps": float(np.mean([r.steps for r in rows])),
        }
        if all(r.max_score is not None for r in rows):
            per_task[task]["mean_score"] = float(np.mean([r.max_score for r in rows]))
            per_task[task]["mean_final_score"] = float(np.mean([r.final_score for r in rows]))
    scored = all("mean_score" in v for v in per_task.values())
    return {
        "suite": suite.name,
        "method": method.name,
        "perturbation": perturb or "none",
        "policy_kwargs": runtime.given(),
        "episodes_per_task": max(v["episodes"] for v in per_task.values()),
        "n_envs": n_envs,
        "mean_success": float(np.mean([v["success_rate"] for v in per_task.values()])),
        **({"mean_score": float(np.mean([v["mean_score"] for v in per_task.values()])),
            "mean_final_score": float(np.mean([v["mean_final_score"] for v in per_task.values()]))} if scored else {}),
        "per_task": per_task,
        "cost": measured_cost(method.cost(runtime, episode_steps=suite.max_episode_steps), policies),
        "seconds": round(seconds, 2),
        "episodes": [r.row() for r in results],
    }


def format_table(result: dict[str, Any]) -> str:
    from tabulate import tabulate

    scored = "mean_score" in result
    def scores(v: dict[str, Any]) -> list[str]:
        return [f"{v['mean_score']:.3f}", f"{v['mean_final_score']:.3f}"] if scored else []

    rows = [[t, f"{v['success_rate']:.2f}", *scores(v), v["episodes"], f"{v['mean_steps']:.0f}"]
            for t, v in result["per_task"].items()]
    rows.append(["MEAN", f"{result['mean_success']:.3f}", *scores(result),
                 sum(v["episodes"] for v in result["per_task"].values()), ""])
    cost = result["cost"]
    headers = ["task", "success", *(["score (max per episode)", "score (final)"] if scored else []), "episodes", "mean steps"]
    text = tabulate(rows, headers=headers, tablefmt="github")
    text += (
        f"\nparams total {cost['params_total']:,} | per-step policy params {cost['params_per_step']:,}"
        f" | FLOPs/step {cost['flops_per_step']:,.0f} (measured {cost.get('flops_per_step_measured', 0):,.0f})"
    )
    return text


def plot_success(result: dict[str, Any], path: str, title: str | None = None) -> None:
    """Success per task, and where the suite scores episodes (PushT's coverage), the score beside it."""
    import matplotlib.pyplot as plt

    fig = success_figure(result, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def success_figure(result: dict[str, Any], title: str | None = None) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(result["per_task"])
    scored = "mean_score" in result  # PushT: the coverage score says something even when success is 0
    width = 0.4 if scored else 0.8
    x = np.arange(len(tasks))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(tasks) + 1.5), 3.6))
    ax.bar(x - (width / 2 if scored else 0), [result["per_task"][t]["success_rate"] for t in tasks], width, color="#4477aa",
           label=f"success (mean {result['mean_success']:.3f})")
    if scored:
        ax.bar(x + width / 2, [result["per_task"][t]["mean_score"] for t in tasks], width, color="#ee7733",
               label=f"score (mean {result['mean_score']:.3f})")
    ax.axhline(result["mean_success"], color="k", ls="--", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels([t.replace("-v3", "") for t in tasks], rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate and score" if scored else "success rate")
    ax.set_title(title or f"{result['method']} on {result['suite']} ({result['episodes_per_task']} episodes/task)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
