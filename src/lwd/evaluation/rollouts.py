"""Record the trajectories of an evaluation: what the policy saw and did at every step.

`lwd eval` keeps one record per episode (task, seed, success, steps, scores). Measures that read
behaviour (style labels, `lwd.analysis.styles`) need the trajectories themselves. `record_rollouts` runs
the very evaluation `lwd eval` runs (`lwd.evaluation.evaluate.evaluate`: the same seeds, envs, perturbations
and per-episode policy objects, for any method) with every policy wrapped in a recorder, and
returns the result dict next to an `Episodes` store of the rollouts:

    data["obs"]        (N, Do) float32  the low-dim observation the policy acted on (before each action)
    data["action"]     (N, Da) float32  the action it returned
    data["task"]       (N,)    int64    the task id in the suite
    data["generated"]  (N,)    bool     whether the policy generated at this step (LWD: new MLP
                                        weights; DP: a new action chunk), from its `generations` counter
    attrs: suite, tasks, method, seeds, successes (per episode, as the evaluation counted them),
           policy_kwargs, perturbation, source = "rollouts"

`lwd eval RUN --rollouts PATH` (`lwd.pipeline.evaluate_run(..., rollouts=PATH)`) writes this store.

in the evaluation's episode order (task, then seed). The store is what `lwd demos` writes plus
`generated`, so one reader (e.g. `lwd.analysis.styles.label_episodes`) serves demonstrations and rollouts.

Why a wrapper and not a hook in the evaluator: the evaluator stays the one loop every result comes
from, and recording cannot change what it measures. The recorder steps each policy on its own
(a method's batched acting, `--batch-plans`, is not used), which is also the evaluator's default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lwd.data import Episodes
from lwd.methods.base import Method, Policy, RuntimeOptions
from lwd.suites import Suite


class _RecordingPolicy(Policy):
    """A policy that forwards to `inner` and appends (obs, action, generated) to the episode's trace."""

    def __init__(self, inner: Policy, traces: dict[tuple[int, int], dict[str, list]]) -> None:  # noqa: D107
        # no Policy.__init__: `steps` and `generations` are the inner policy's, read through
        self.inner = inner
        self._traces = traces
        self._trace: dict[str, list] | None = None

    @property
    def steps(self) -> int:  # type: ignore[override]
        return self.inner.steps

    @property
    def generations(self) -> int:  # type: ignore[override]
        return self.inner.generations

    def reset(self, seed: int, task: int | None = None) -> None:
        self.inner.reset(seed, task)
        self._trace = {"obs": [], "action": [], "generated": []}
        self._traces[(0 if task is None else int(task), int(seed))] = self._trace

    def act(self, obs: Any) -> np.ndarray:
        before = self.inner.generations
        action = self.inner.act(obs)
        low_dim = obs["obs"] if isinstance(obs, dict) else obs  # image suites: the low-dim part
        self._trace["obs"].append(np.array(low_dim, np.float32))
        self._trace["action"].append(np.array(action, np.float32))
        self._trace["generated"].append(self.inner.generations > before)
        return action


class _RecordingMethod:
    """The method as the evaluator sees it, except that its policies record their episodes."""

    def __init__(self, method: Method, traces: dict[tuple[int, int], dict[str, list]]) -> None:
        self._method = method
        self._traces = traces

    def make_policy(self, runtime: RuntimeOptions | None = None) -> Policy:
        return _RecordingPolicy(self._method.make_policy(runtime), self._traces)

    def __getattr__(self, name: str) -> Any:  # info, name, cost, runtime_options, ...
        return getattr(self._method, name)


def record_rollouts(
    method: Method,
    suite: Suite,
    episodes_per_task: int = 50,
    seed_start: int | None = None,
    tasks: list[str] | None = None,
    perturb: str | None = None,
    runtime: RuntimeOptions | None = None,
    n_envs: int = 1,
    progress: bool = True,
    vector: str = "sync",
) -> tuple[dict[str, Any], Episodes]:
    """Evaluate `method` on `suite` as `lwd.evaluation.evaluate.evaluate` does and keep every trajectory.

    Returns (the evaluation's result dict, the rollouts as `Episodes`; see the module docstring)."""
    from lwd.evaluation.evaluate import evaluate

    traces: dict[tuple[int, int], dict[str, list]] = {}
    result = evaluate(_RecordingMethod(method, traces), suite, episodes_per_task, n_envs, seed_start, tasks,  # type: ignore[arg-type]
                      perturb, runtime, vector=vector, progress=progress)
    kept = []
    for row in result["episodes"]:
        task_id = suite.task_id(row["task"])
        trace = traces[(task_id, row["seed"])]  # single-task suites: the id is 0 whether passed or not
        if len(trace["action"]) != row["steps"]:  # pragma: no cover - the recorder sees every step the evaluator counts
            raise RuntimeError(f"recorded {len(trace['action'])} steps of {row['task']} seed {row['seed']}, evaluated {row['steps']}")
        kept.append({"obs": np.stack(trace["obs"]), "action": np.stack(trace["action"]),
                     "task": np.full(row["steps"], task_id, np.int64), "generated": np.asarray(trace["generated"], np.bool_)})
    attrs = {
        "suite": suite.name, "tasks": list(suite.tasks), "method": result["method"], "source": "rollouts",
        "seeds": [row["seed"] for row in result["episodes"]],
        "successes": [bool(row["success"]) for row in result["episodes"]],
        "policy_kwargs": result["policy_kwargs"], "perturbation": result["perturbation"],
    }
    return result, Episodes.from_list(kept, attrs=attrs)
