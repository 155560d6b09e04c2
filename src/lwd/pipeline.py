"""The Python API behind the CLI: build a method from data + preset, train it, evaluate a run.

    from lwd.pipeline import train_run, evaluate_run
    train_run("lwd", "data/mt10.zarr", "runs/mt10-lwd", preset="mt10-quick")
    result = evaluate_run("runs/mt10-lwd", episodes=50)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lwd.checkpoint import load_model, read_run_config
from lwd import methods
from lwd.config import DataInfo, RunConfig, TrainConfig, apply_overrides, from_dict, to_dict
from lwd.data import Episodes, MinMaxNormalizer
from lwd.envs.registry import make_suite
from lwd.methods.base import Method
from lwd.presets import get_preset


method_config_class = methods.config_class


def build_configs(method: str, preset: str = "default", overrides: list[str] = (), train_overrides: list[str] = (), seed: int | None = None) -> tuple[Any, TrainConfig]:
    chosen = get_preset(method, preset)
    cfg = apply_overrides(from_dict(method_config_class(method), dict(chosen["method"])), list(overrides))
    train_cfg = apply_overrides(from_dict(TrainConfig, dict(chosen["train"])), list(train_overrides))
    if seed is not None:
        train_cfg = dataclasses.replace(train_cfg, seed=seed)
    return cfg, train_cfg


def data_info(episodes: Episodes, dataset: str) -> DataInfo:
    tasks = tuple(episodes.attrs.get("tasks", ()))
    if "task" in episodes.data and not tasks:
        n = int(episodes.data["task"].max()) + 1
        tasks = tuple(f"task{i}" for i in range(n))
    return DataInfo(
        obs_dim=int(episodes.data["obs"].shape[1]),
        action_dim=int(episodes.data["action"].shape[1]),
        tasks=tasks,
        suite=str(episodes.attrs.get("suite", "")),
        dataset=str(dataset),
        num_episodes=episodes.num_episodes,
    )


build_method = methods.build


def train_run(
    method: str,
    data: str | Path,
    out: str | Path,
    preset: str = "default",
    overrides: list[str] = (),
    train_overrides: list[str] = (),
    seed: int | None = None,
    resume: bool = False,
    progress: bool = True,
    eval_every: int = 0,
    eval_episodes: int = 5,
) -> Method:
    """Load demonstrations, fit the normaliser on the training split, train, write the run dir."""
    out = Path(out)
    if not resume and (out / "model.safetensors").exists():
        raise FileExistsError(f"{out} already holds a trained model; choose another --out (or --resume an interrupted run)")
    if not resume and (out / "train_state").exists():
        raise FileExistsError(f"{out} holds an interrupted run; pass --resume to continue it or choose another --out")
    cfg, train_cfg = build_configs(method, preset, overrides, train_overrides, seed)
    episodes = Episodes.load(data)
    train_eps, _val_eps = episodes.split(train_cfg.val_fraction, train_cfg.seed)
    normalizer = MinMaxNormalizer.fit(train_eps.data)
    info = data_info(episodes, str(data))
    model = build_method(method, cfg, info, normalizer, seed=train_cfg.seed)
    run = RunConfig(method, to_dict(cfg), to_dict(train_cfg), dataclasses.asdict(info), preset=preset)

    hook = None
    if eval_every > 0 and info.suite:
        from lwd.evaluate import evaluate

        suite = make_suite(info.suite)

        def hook(m: Method, stage: str, step: int) -> dict[str, float]:
            r = evaluate(m, suite, episodes_per_task=eval_episodes, seed_start=suite.test_seed_start // 2, progress=False)
            return {"mean_success": r["mean_success"]}

    from lwd.train import train

    train(model, train_eps, train_cfg, run, out, resume=resume, progress=progress, eval_hook=hook, eval_every=eval_every)
    return model


def evaluate_run(
    run_dir: str | Path,
    env: str | None = None,
    episodes: int = 50,
    action_horizon: int | None = None,
    n_envs: int = 1,
    vector: str = "sync",
    perturb: str | None = None,
    sampler: str | None = None,
    inference_steps: int | None = None,
    seed_start: int | None = None,
    tasks: list[str] | None = None,
    progress: bool = True,
    batch_plans: bool = False,
) -> dict[str, Any]:
    from lwd.evaluate import evaluate

    model = load_model(run_dir)
    run = read_run_config(run_dir)
    suite_name = env or run.data.get("suite")
    if not suite_name:
        raise ValueError(f"{run_dir} does not record its environment; pass --env")
    suite = make_suite(suite_name)
    policy_kwargs: dict[str, Any] = {}
    if run.method in ("lwd", "dp"):  # generative methods: how often to generate, and how to sample
        policy_kwargs = {"action_horizon": action_horizon, "sampler": sampler, "inference_steps": inference_steps}
    policy_kwargs = {k: v for k, v in policy_kwargs.items() if v is not None}
    if vector == "async":
        suite.make_env(suite.tasks[0]).close()  # warm per-process caches before the workers fork
    result = evaluate(model, suite, episodes, n_envs, seed_start, tasks, perturb, policy_kwargs, vector, progress, batch_plans)
    result["run_dir"] = str(run_dir)
    return result
