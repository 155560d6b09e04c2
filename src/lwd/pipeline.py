"""The Python API behind the CLI: build a method from data + preset, train it, evaluate and describe a run.

    from lwd.pipeline import train_run, evaluate_run, run_info
    train_run("lwd", "data/mt10.zarr", "runs/mt10-lwd", preset="mt10-quick")
    result = evaluate_run("runs/mt10-lwd", episodes=50)
    info = run_info("runs/mt10-lwd")

Nothing here names a method: everything a method needs is found through its registered class.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from lwd.checkpoint import load_model, read_run_config
from lwd.config import DataInfo, RunConfig, TrainConfig, apply_overrides, from_dict
from lwd.data import DatasetError, Episodes, MinMaxNormalizer
from lwd.data.keys import ACTION, OBS, STYLE, TASK
from lwd.methods.base import Method, build_method, get_method, resolve_preset
from lwd.suites import make_suite
from lwd.training.hardware import Hardware


def build_configs(method: str, preset: str = "default", overrides: list[str] | tuple[str, ...] = (),
                  train_overrides: list[str] | tuple[str, ...] = (), seed: int | None = None) -> tuple[Any, TrainConfig]:
    """(method config, TrainConfig) of a preset with `key=value` overrides applied."""
    cls = get_method(method)
    settings, train = resolve_preset(cls, preset)
    cfg = apply_overrides(from_dict(cls.config_class, settings), list(overrides))
    train_cfg = apply_overrides(from_dict(TrainConfig, train), list(train_overrides))
    if seed is not None:
        train_cfg = dataclasses.replace(train_cfg, seed=seed)
    return cfg, train_cfg


def data_info(episodes: Episodes, dataset: str, images: bool = False, styles: bool = False) -> DataInfo:
    """What a model trained on `episodes` records of them; `images`: the method reads camera frames,
    so their keys and shapes are recorded (`DataInfo.images`); `styles`: the method conditions on the
    per-step expert style, so the style names are recorded (`DataInfo.styles`), and data without
    style ids is refused here, before anything trains."""
    tasks = tuple(str(t) for t in episodes.attrs.get("tasks", ()))
    if TASK in episodes.data:
        n = int(episodes.data[TASK].max()) + 1
        if not tasks:
            tasks = tuple(f"task{i}" for i in range(n))
        elif n > len(tasks):
            raise DatasetError(f"{dataset}: task ids go up to {n - 1} but the dataset names {len(tasks)} tasks "
                               f"{list(tasks)}; fix attrs['tasks'] or the ids in data/task")
    style_names: tuple[str, ...] = ()
    if styles:
        if STYLE not in episodes.data:
            raise DatasetError(f"{dataset} has no per-step '{STYLE}' key, but style_condition=true conditions the prior "
                               "on it; make the demos with lwd demos SUITE --styles all, or drop style_condition")
        ids = episodes.data[STYLE]
        style_names = tuple(str(s) for s in episodes.attrs.get("styles") or ()) or \
            tuple(f"style{i}" for i in range(int(ids.max()) + 1))
        if int(ids.min()) < 0 or int(ids.max()) >= len(style_names):
            raise DatasetError(f"{dataset}: style ids run from {int(ids.min())} to {int(ids.max())} but the dataset names "
                               f"{len(style_names)} styles {list(style_names)}; fix attrs['styles'] or the ids in data/{STYLE}")
    return DataInfo(
        obs_dim=int(episodes.data[OBS].shape[1]),
        action_dim=int(episodes.data[ACTION].shape[1]),
        tasks=tasks,
        suite=str(episodes.attrs.get("suite", "")),
        dataset=str(dataset),
        num_episodes=episodes.num_episodes,
        images=tuple((key, shape) for key, shape in episodes.frame_shapes().items()) if images else (),
        styles=style_names,
    )


def train_run(
    method: str,
    data: str | Path,
    out: str | Path,
    preset: str = "default",
    overrides: list[str] | tuple[str, ...] = (),
    train_overrides: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
    resume: bool = False,
    progress: bool = True,
    eval_every: int = 0,
    eval_episodes: int = 5,
    hardware: Hardware | None = None,
    overwrite: bool = False,
) -> Method:
    """Load demonstrations, fit the normaliser on the training split, train, write the run dir.

    The run directory is locked while this trains (`lwd.training.runlock`): a second training into it
    refuses. A run already there is refused unless `overwrite`; then the new run trains in a
    hidden sibling and replaces the old one only when complete (a failure leaves the old run)."""
    from lwd.checkpoint import has_train_state
    from lwd.training.hardware import launched_world
    from lwd.training.runlock import RunLock

    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it; drop one of them")
    rank = launched_world()[0]
    with RunLock(out) if rank == 0 else contextlib.nullcontext():  # one process group writes a run at a time
        holds_model, holds_state = (out / "model.safetensors").exists(), has_train_state(out)
        if resume and not holds_state:
            raise FileNotFoundError(f"--resume: {out} holds no interrupted run to continue; drop --resume to start one")
        if not resume and not overwrite and holds_model:
            raise FileExistsError(f"{out} already holds a trained model; pass --overwrite to replace it, or choose another --out")
        if not resume and not overwrite and holds_state:
            raise FileExistsError(f"{out} holds an interrupted run; pass --resume to continue it, --overwrite to replace it, "
                                  "or choose another --out")
        cfg, train_cfg = build_configs(method, preset, overrides, train_overrides, seed)
        episodes = Episodes.load(data)
        if getattr(cfg, "uses_task", False) and TASK not in episodes.data:  # else the prior fails after the VAE trained
            raise DatasetError(f"{data} has no task ids (data/task), but {method} preset {preset!r} conditions on the task "
                               f"(condition={getattr(cfg, 'condition', 'task')!r}); use --set condition=state for single-task data")
        train_eps, _val_eps = episodes.split(train_cfg.val_fraction, train_cfg.seed)
        normalizer = MinMaxNormalizer.fit(train_eps.data)
        info = data_info(episodes, str(data), images=get_method(method).reads_images,
                         styles=bool(getattr(cfg, "style_condition", False)))
        model = build_method(method, cfg, info, normalizer, seed=train_cfg.seed)
        run = RunConfig(method, cfg, train_cfg, info, preset=preset)

        hook = None
        if eval_every > 0 and info.suite:
            from lwd.evaluation.evaluate import evaluate

            suite = make_suite(info.suite)

            def hook(m: Method, stage: str, step: int) -> dict[str, float]:
                r = evaluate(m, suite, episodes_per_task=eval_episodes, seed_start=suite.test_seed_start // 2, progress=False)
                return {"mean_success": r["mean_success"]}

        from lwd.outputs import remove_path, replace_path
        from lwd.training.train import train

        replacing = overwrite and (holds_model or holds_state)
        target = out.with_name(f".{out.name}.overwrite") if replacing else out  # the same name on every rank
        if replacing and rank == 0:
            remove_path(target)  # a leftover of an attempt that was killed; we hold the lock
        try:
            log = train(model, train_eps, train_cfg, run, target, resume=resume, progress=progress, eval_hook=hook,
                        eval_every=eval_every, hardware=hardware)
            if rank == 0:
                from lwd.checkpoint import atomic_write_json

                atomic_write_json(target / "provenance.json", run_provenance(data, episodes, log))
                if replacing:
                    replace_path(target, out)
        except BaseException as err:
            if replacing and rank == 0:
                remove_path(target)  # the old run stays as it was
                if isinstance(err, KeyboardInterrupt):
                    raise KeyboardInterrupt() from err  # its saved state went with the temporary folder
            raise
    return model


def run_provenance(data: str | Path, episodes: Episodes, log: dict[str, Any]) -> dict[str, Any]:
    """What a run directory records about where it came from (provenance.json): the training data
    (path and content hash, so a later change is noticed), the code (lwd version, git commit),
    the packages, the command line, and the threads and device it really trained with."""
    from lwd import __version__
    from lwd.provenance import episodes_hash, provenance

    hardware = log.get("hardware", {})
    return {"data": {"path": str(data), "absolute_path": str(Path(data).resolve()), "sha256": episodes_hash(episodes),
                     "episodes": episodes.num_episodes, "steps": episodes.num_steps},
            "lwd_version": __version__, "threads": hardware.get("threads"), "device": hardware.get("device"),
            "processes": hardware.get("processes"), **provenance()}


def read_run_provenance(run_dir: str | Path) -> dict[str, Any]:
    """provenance.json of a run ({} for runs that predate it or where it is unreadable)."""
    import json

    try:
        record = json.loads((Path(run_dir) / "provenance.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def check_training_data(run_dir: str | Path) -> str | None:
    """A one-line warning when the dataset a run was trained on has changed since (its content hash
    differs from the one in provenance.json) or is gone; None when it matches or was not recorded."""
    from lwd.provenance import data_matches

    data = read_run_provenance(run_dir).get("data")
    if not isinstance(data, dict) or not data.get("sha256") or not data.get("absolute_path"):
        return None
    path = Path(str(data["absolute_path"]))
    if not path.exists():
        return f"{run_dir} was trained on {path}, which no longer exists; results cannot be tied to that data"
    try:
        same, now = data_matches(path, str(data["sha256"]))
    except (DatasetError, OSError) as err:
        return f"{run_dir} was trained on {path}, which can no longer be read ({' '.join(str(err).split())})"
    if not same:
        return (f"the data {run_dir} was trained on, {path}, has changed since training "
                f"(content sha256 {now[:12]}, was {str(data['sha256'])[:12]}); results may not match that data")
    return None


def evaluate_run(
    run_dir: str | Path,
    env: str | None = None,
    episodes: int = 50,
    n_envs: int = 1,
    vector: str = "sync",
    perturb: str | None = None,
    seed_start: int | None = None,
    tasks: list[str] | None = None,
    progress: bool = True,
    batch_plans: bool = False,
    video: int = 0,
    video_dir: str | Path | None = None,
    shard: tuple[int, int] = (0, 1),
    exported: str | Path | None = None,
    rollouts: str | Path | None = None,
    label_styles: bool = False,
    **runtime: Any,
) -> dict[str, Any]:
    """Evaluate a trained run; `runtime` holds the method's run-time options (e.g. action_horizon=16;
    None values mean "as trained"), and an option the method does not take is an error.

    `rollouts`: also save every episode's trajectory (observations, actions, generation steps) as an
    episode store there (`lwd.evaluation.rollouts`), e.g. for `lwd.analysis.styles`; the evaluation is the same.

    `label_styles`: give every episode row the style its behaviour shows, by the suite's rule
    (`lwd.analysis.styles.style_rule`; a suite without one is refused before any episode runs).

    `video` > 0 replays the first that many episodes with rendering afterwards and writes their
    videos to `video_dir` (default: `videos/` in the run directory); `result["videos"]` lists them."""
    from lwd.evaluation.evaluate import evaluate

    model = load_model(run_dir)
    if exported is not None:  # the policies run from the exported files (e.g. ONNX generator, NumPy controller)
        from lwd.deploy.exported import load_exported

        model = load_exported(model, exported, run_dir)
    run = read_run_config(run_dir)
    options = model.runtime_options(**runtime)
    suite_name = env or run.data.suite
    if not suite_name:
        raise ValueError(f"{run_dir} does not record its environment; pass --env")
    suite = make_suite(suite_name)
    if vector == "async":
        suite.make_env(suite.tasks[0]).close()  # warm per-process caches before the workers fork
    label_style = None
    if label_styles:
        if rollouts is not None:
            raise ValueError("label the recorded rollouts instead (lwd.analysis.styles.label_episodes on the store)")
        from lwd.analysis.styles import style_rule

        label_style = style_rule(suite.name).label
    if rollouts is None:
        result = evaluate(model, suite, episodes, n_envs, seed_start, tasks, perturb, options, vector, progress, batch_plans, shard,
                          label_style)
    else:
        from lwd.evaluation.rollouts import record_rollouts

        if batch_plans or shard[1] > 1:
            raise ValueError("rollouts are recorded by one process stepping each policy alone: drop --batch-plans "
                             "and run without torchrun/accelerate launch")
        result, recorded = record_rollouts(model, suite, episodes, seed_start, tasks, perturb, options, n_envs, progress, vector)
        result["rollouts"] = str(recorded.save(rollouts))
    result["run_dir"] = str(run_dir)
    trained_on = read_run_provenance(run_dir).get("data")
    if trained_on:
        result["trained_on"] = trained_on  # the data's path and content hash, recorded when it trained
    if exported is not None:
        result["exported"] = str(exported)
    if video > 0 and shard[0] == 0:
        from lwd.evaluation.video import record_videos

        folder = Path(video_dir) if video_dir is not None else Path(run_dir) / "videos"
        try:
            result["videos"] = record_videos(model, suite, result, video, options, perturb, folder)
        except KeyboardInterrupt:  # Ctrl-C during the replay: the finished evaluation is still returned
            result["videos_interrupted"] = True
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return result


def describe(model: Method, runtime: dict[str, Any], latency_steps: int = 0, episode_steps: int | None = None) -> dict[str, Any]:
    """Cost figures of a model at the given run-time options, plus per-step latency when asked."""
    options = model.runtime_options(**runtime)
    cost = model.cost(options, episode_steps=episode_steps).to_dict()
    if latency_steps > 0:
        from lwd.evaluation.latency import measure_latency

        cost.update(measure_latency(model, options, steps=latency_steps))
    return cost


def run_info(run_dir: str | Path, latency_steps: int = 0, env: str | None = None, **runtime: Any) -> dict[str, Any]:
    """What `lwd info` shows: method, preset, data, and params / FLOPs per control step (costed
    over the episode length of `env`, or of the suite the run was trained on)."""
    run = read_run_config(run_dir)
    model = load_model(run_dir)
    suite = env or run.data.suite
    episode_steps = make_suite(suite).max_episode_steps if suite else None
    info = {"method": run.method, "preset": run.preset or "-", "trained on": run.data.dataset, "suite": run.data.suite,
            "obs / action dims": f"{run.data.obs_dim} / {run.data.action_dim}"}
    data = read_run_provenance(run_dir).get("data")
    if isinstance(data, dict) and data.get("sha256"):
        info["data content sha256"] = str(data["sha256"])[:16]
    hardware = _trained_with(Path(run_dir))
    if hardware:
        info["trained with"] = hardware
    info["per-step policy runs on"] = "cpu (as on a robot; --device chooses where training runs)"
    return {**info, **stage_reports(Path(run_dir)), **describe(model, runtime, latency_steps, episode_steps)}


def stage_reports(run_dir: Path) -> dict[str, Any]:
    """The measurements each training stage logged when it ended (train_log.json "reports"; e.g. LWD's
    latent diagnostics, WARPD's world-model error), as "stage: name" rows; lists (per-dimension
    figures) are left to the JSON. Empty for runs that predate them."""
    import json

    try:
        reports = json.loads((run_dir / "train_log.json").read_text()).get("reports") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    rows: dict[str, Any] = {}

    def add(stage: str, path: list[str], value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                add(stage, [*path, str(key)], inner)
        elif isinstance(value, float):
            rows[f"{stage}: {'.'.join(path)}"] = f"{value:.4g}"
        elif isinstance(value, (int, str, bool)):
            rows[f"{stage}: {'.'.join(path)}"] = value

    for stage, report in reports.items() if isinstance(reports, dict) else ():
        add(stage, [], report)
    return rows


def _trained_with(run_dir: Path) -> str:
    """Device, processes, precision and threads from train_log.json ('' for runs that predate them)."""
    import json

    try:
        hw = json.loads((run_dir / "train_log.json").read_text()).get("hardware")
    except (OSError, ValueError, AttributeError):
        return ""
    if not isinstance(hw, dict):
        return ""
    return (f"{hw.get('device')}, {hw.get('processes')} process(es), precision {hw.get('precision')}, "
            f"{hw.get('threads')} thread(s), grad accum {hw.get('grad_accum')}")


def preset_info(method: str, preset: str, obs_dim: int, action_dim: int, num_tasks: int = 0, latency_steps: int = 0,
                env: str | None = None, overrides: list[str] | tuple[str, ...] = (), **runtime: Any) -> dict[str, Any]:
    """What a preset sets (its method and optimiser settings, `extends` chain applied; "sets KEY" rows)
    and the cost of an untrained model built from it: FLOPs and params need no training. With an image
    suite as `env`, a method that reads frames is costed with its image encoders. `overrides`
    (key=value) change settings as `lwd train --set` does, e.g. DP's horizon=36 that H = 32 needs."""
    import numpy as np

    cfg, _ = build_configs(method, preset, overrides)
    settings, train = resolve_preset(get_method(method), preset)
    sets = {f"sets {key}": repr(value) for key, value in settings.items()}
    sets.update({f"sets train.{key}": repr(value) for key, value in train.items()})
    normalizer = MinMaxNormalizer.fit({OBS: np.stack([-np.ones(obs_dim), np.ones(obs_dim)]).astype(np.float32),
                                       ACTION: np.stack([-np.ones(action_dim), np.ones(action_dim)]).astype(np.float32)})
    tasks = tuple(f"task{i}" for i in range(num_tasks))
    # an image suite's frames, for a method that reads them (its encoders are part of the cost)
    images = make_suite(env).images if env and get_method(method).reads_images else ()
    model = build_method(method, cfg, DataInfo(obs_dim, action_dim, tasks, images=images), normalizer, seed=0)
    episode_steps = make_suite(env).max_episode_steps if env else None
    sets.update({f"--set {item.partition('=')[0]}": item.partition("=")[2] for item in overrides})
    return {"method": method, "preset": preset, **(sets or {"sets": "nothing (the config's defaults)"}),
            "obs / action dims": f"{obs_dim} / {action_dim}", "trained": "no (cost only)",
            **describe(model, runtime, latency_steps, episode_steps)}
