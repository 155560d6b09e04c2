"""`lwd study SPEC.toml`: a whole comparison from one file, resumable anywhere.

A spec lists datasets (made by the suite's expert, optionally with recovery data, or read from a
path), methods (bench labels with presets and overrides), horizons, perturbations, training
seeds and episodes. Its cells are data x method x seed x H x perturbation:

    name = "robomimic-lift"
    suite = "robomimic/lift"
    episodes = 50
    seeds = [0, 1, 2]
    horizons = [8, 32]
    perturbations = ["none", "object-push:3:0.05"]

    [data.clean]
    demos = 200
    [data.recovery]
    demos = 200
    dart_noise = 0.1
    [data.mixed]           # on a suite whose expert has styles: each episode's style drawn from the mix
    demos = 200
    styles = "all"

    [methods.lwd]
    preset = "robomimic"
    [methods.dp]
    preset = "cpu"
    set = ["steps=15000"]

Every cell is keyed by a hash of everything that decides its result (suite, how the data is
made, the method's full resolved configs, seed, run-time options, perturbation, episodes, and n_envs
when batch_plans is on: batched arithmetic can move a knife-edge episode). A
finished cell is one small JSON file under `benchmarks/results/studies/<name>/` (kept in git),
so a study resumes on any machine: only cells without a matching file run, a changed setting
changes the key and reruns that cell, and training runs (under `runs/studies/`, named by their
own key, so studies share them) are reused or resumed when present. Cells that share a training run form one job; jobs run in
parallel one-thread processes (`--jobs`), or as tasks on a Ray cluster (`--engine ray --address HOST:PORT`,
`lwd.experiments.cluster`) that write the same cell files. The study writes `<name>.json` (every figure),
`<name>.md` (a table with 95% intervals: Wilson over episodes for one seed; for several, the wider of
Student-t over the seeds and Wilson over all their episodes) and `<name>.png` (success against H
with error bars).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RESULTS_ROOT = Path("benchmarks/results/studies")
RUNS_ROOT = Path("runs/studies")
DATA_ROOT = Path("data/studies")
ENGINES = ("local", "ray")
"""Where a study's jobs run: "local" (processes on this machine, `--jobs`), "ray" (tasks on a Ray cluster)."""
_SPEC_KEYS = {"name", "suite", "episodes", "seeds", "horizons", "perturbations", "data", "methods", "n_envs",
              "batch_plans", "ddim_steps", "seed_start", "about"}


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def safe_name(value: Any, key: str, where: str) -> str:
    """A name from the spec that becomes part of a file or folder name: letters, digits and `._+-`,
    not starting with a dot, so it can never leave its output folder (`../x`, `/x`, `a/b`)."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{where}: {key} must be a plain name (letters, digits, '.', '_', '+', '-'; no '/' or '..'), "
                         f"got {value!r}")
    return value


def _integer(value: Any, key: str, where: str, minimum: int) -> int:
    """An integer >= minimum from the spec (TOML gives typed values: "12" or 8.0 is refused, not converted)."""
    if type(value) is not int or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{where}: {key} must be {wanted}, got {value!r}")
    return value


def _integers(value: Any, key: str, where: str, minimum: int) -> list[int]:
    """A non-empty list of integers >= minimum (a string such as seeds = "12" is refused, not split into 1 and 2)."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: {key} must be a non-empty list of integers, e.g. {key} = [0, 1], got {value!r}")
    return [_integer(v, f"{key}[{i}]", where, minimum) for i, v in enumerate(value)]


def _table(value: Any, key: str, where: str) -> dict[str, Any]:
    """A TOML table ([key.NAME] sections), not a list or a value."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {key} must be a table of named entries ([{key}.NAME] sections), got {type(value).__name__}")
    for name, entry in value.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: {key}.{name} must be a table ([{key}.{name}] with its keys), got {entry!r}")
    return value


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: {key} must be a list of strings, got {value!r}")
    return tuple(value)


def spec_root(spec_path: str | Path) -> Path:
    """Where a study's files live when no --root is given: the repository holding the spec (the
    nearest folder above it with .git or pyproject.toml), else the spec's own folder; never the
    working directory, so a study finds its cached cells from wherever it is started."""
    folder = Path(spec_path).resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists() or (candidate / "pyproject.toml").is_file():
            return candidate
    return folder


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DataSpec:
    """How a study's dataset is made: expert demos (with optional recovery data) or a given file."""

    name: str
    demos: int = 0
    dart_noise: float = 0.0
    perturb: str = "none"
    seed_start: int = 0
    path: str = ""
    styles: str = ""
    """The expert's styles mixed per episode, as `lwd demos --styles` takes them ('all', 'A,B' or
    'A:0.7,B:0.3'); "" is the suite's default expert (its first style, or its only way)."""

    def key(self, suite: str) -> str:
        made = {"path": self.path} if self.path else {"suite": suite, "demos": self.demos, "dart_noise": self.dart_noise,
                                                        "perturb": self.perturb, "seed_start": self.seed_start}
        if self.styles:  # left out when unset, so data made before styles existed keeps its key
            made["styles"] = self.styles
        return _digest(made)

    def location(self, suite: str, root: Path) -> Path:
        if self.path:
            return root / self.path  # a relative path is relative to the study's root (an absolute one stays)
        return root / DATA_ROOT / f"{suite.replace('/', '-')}-{self.name}-{self.key(suite)}.zarr"


@dataclass(frozen=True)
class MethodSpec:
    label: str
    """The name tables show; also the bench label (e.g. "dp-ddim") unless `method` gives one."""
    method: str = ""
    preset: str = "default"
    overrides: tuple[str, ...] = ()
    train_overrides: tuple[str, ...] = ()


@dataclass
class StudySpec:
    name: str
    suite: str
    episodes: int
    seeds: list[int]
    horizons: list[int]
    perturbations: list[str]
    data: list[DataSpec]
    methods: list[MethodSpec]
    n_envs: int = 1
    batch_plans: bool = False
    ddim_steps: int = 10
    """DDIM steps of the `dp-ddim` arm only (a DDPM-trained DP sampled with fewer steps); LWD arms
    generate with their config's sampler and `inference_steps`."""
    seed_start: int | None = None
    about: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "StudySpec":
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"study spec {path} is a folder; give a spec file, e.g. benchmarks/studies/pusht.toml")
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError as err:
            raise FileNotFoundError(f"study spec {path} does not exist") from err
        except UnicodeDecodeError as err:
            raise ValueError(f"study spec {path} is not a text (TOML) file") from err
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from err
        return cls.parse(raw, str(path))

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str = "spec") -> "StudySpec":
        from lwd.config import from_dict

        unknown = sorted(set(raw) - _SPEC_KEYS)
        missing = sorted({"name", "suite", "episodes", "seeds", "horizons", "data", "methods"} - set(raw))
        if unknown or missing:
            raise ValueError(f"{where}: unknown keys {unknown}, missing keys {missing}; a study spec has {sorted(_SPEC_KEYS)}")
        name = safe_name(raw["name"], "name", where)
        if not isinstance(raw["suite"], str):
            raise ValueError(f"{where}: suite must be a string such as \"pusht\", got {raw['suite']!r}")
        episodes = _integer(raw["episodes"], "episodes", where, 1)
        seeds = _integers(raw["seeds"], "seeds", where, 0)
        horizons = _integers(raw["horizons"], "horizons", where, 1)
        perturbations = list(_strings(raw.get("perturbations", ["none"]), "perturbations", where))
        n_envs = _integer(raw.get("n_envs", 1), "n_envs", where, 1)
        ddim_steps = _integer(raw.get("ddim_steps", 10), "ddim_steps", where, 1)
        seed_start = None if raw.get("seed_start") is None else _integer(raw["seed_start"], "seed_start", where, 0)
        if not isinstance(raw.get("batch_plans", False), bool):
            raise ValueError(f"{where}: batch_plans must be true or false, got {raw['batch_plans']!r}")
        data = []
        for data_name, entry in _table(raw["data"], "data", where).items():
            safe_name(data_name, f"data.{data_name}", where)
            extra = sorted(set(entry) - {"demos", "dart_noise", "perturb", "seed_start", "path", "styles"})
            if extra:
                raise ValueError(f"{where}: data.{data_name} has unknown keys {extra}")
            spec = from_dict(DataSpec, {"name": data_name, **entry})
            if not spec.path and spec.demos < 1:
                raise ValueError(f"{where}: data.{data_name} needs demos = N (expert episodes per task) or path = FILE")
            if spec.styles:
                if spec.path:
                    raise ValueError(f"{where}: data.{data_name} has styles and a path; styles choose how demos are made")
                from lwd.demos import parse_styles
                from lwd.suites import make_suite

                try:
                    parse_styles(spec.styles, make_suite(raw["suite"]))
                except ValueError as err:
                    raise ValueError(f"{where}: data.{data_name}: {str(err).replace('--styles: ', 'styles: ')}") from None
            data.append(spec)
        methods = []
        for label, entry in _table(raw["methods"], "methods", where).items():
            safe_name(label, f"methods.{label}", where)
            extra = sorted(set(entry) - {"method", "preset", "set", "train_set"})
            if extra:
                raise ValueError(f"{where}: methods.{label} has unknown keys {extra} (known: method, preset, set, train_set)")
            for key in ("method", "preset"):
                if not isinstance(entry.get(key, ""), str):
                    raise ValueError(f"{where}: methods.{label}.{key} must be a string, got {entry[key]!r}")
            methods.append(MethodSpec(label, entry.get("method", ""), entry.get("preset", "default"),
                                      _strings(entry.get("set", []), f"methods.{label}.set", where),
                                      _strings(entry.get("train_set", []), f"methods.{label}.train_set", where)))
        spec = cls(name, raw["suite"], episodes, seeds, horizons, perturbations, data, methods, n_envs,
                   bool(raw.get("batch_plans", False)), ddim_steps, seed_start, str(raw.get("about", "")), raw)
        if not spec.data or not spec.methods or not spec.seeds:
            raise ValueError(f"{where}: a study needs at least one dataset, method and seed")
        return spec


@dataclass(frozen=True)
class StudyCell:
    """One evaluation of one trained run: what it is, its keys, and where its files go."""

    data: str
    label: str
    method: str
    seed: int
    horizon: int | None
    perturbation: str
    preset: str
    overrides: tuple[str, ...]
    train_overrides: tuple[str, ...]
    runtime: dict[str, Any]
    run_key: str
    key: str

    @property
    def file_name(self) -> str:
        perturb = self.perturbation.replace(":", "_")
        horizon = "all" if self.horizon is None else self.horizon
        return f"{self.label}-{self.data}-s{self.seed}-H{horizon}-{perturb}-{self.key}.json"


def plan_study(spec: StudySpec) -> list[StudyCell]:
    """Every cell of the study, keyed by everything that decides its result."""
    from lwd.config import key_dict
    from lwd.experiments.bench import plan_cells, split_label
    from lwd.pipeline import build_configs

    cells = []
    for data in spec.data:
        data_key = data.key(spec.suite)
        for method in spec.methods:
            bench_label = method.method or method.label
            name = split_label(bench_label)[0]
            for seed in spec.seeds:
                for plan in plan_cells([bench_label], spec.horizons, spec.perturbations, {name: method.preset},
                                       {name: list(method.overrides)}, seed, spec.ddim_steps):
                    cfg, train_cfg = build_configs(plan.method, plan.preset, plan.overrides, method.train_overrides, seed)
                    run_key = _digest({"suite": spec.suite, "data": data_key, "method": plan.method,
                                       "config": key_dict(cfg), "train": key_dict(train_cfg)})
                    runtime = plan.runtime.given()
                    evaluation = {"run": run_key, "runtime": runtime, "perturbation": plan.perturbation,
                                  "episodes": spec.episodes, "seed_start": spec.seed_start, "batch_plans": spec.batch_plans}
                    if spec.batch_plans and spec.n_envs > 1:  # batched arithmetic: n_envs can move a knife-edge episode
                        evaluation["n_envs"] = spec.n_envs
                    key = _digest(evaluation)
                    cells.append(StudyCell(data.name, method.label, plan.method, seed, plan.horizon, plan.perturbation, plan.preset,
                                           plan.overrides, method.train_overrides, runtime, run_key, key))
    return cells


def _results_dir(spec: StudySpec, root: Path) -> Path:
    return root / RESULTS_ROOT / spec.name


def reusable_cells(spec: StudySpec, cells: list[StudyCell], root: Path) -> dict[str, Path]:
    """Finished results of other studies for this study's missing cells: {cell key: file}.

    A cell's key covers every setting that decides its result (not the study, its name or labels),
    so another study's cell with the same key is the same measurement."""
    folder = _results_dir(spec, root) / "cells"
    found: dict[str, Path] = {}
    for cell in cells:
        if (folder / cell.file_name).exists():
            continue
        for path in sorted((root / RESULTS_ROOT).glob(f"*/cells/*-{cell.key}.json")):
            if path.parent != folder:
                found[cell.key] = path
                break
    return found


def adopt_cells(spec: StudySpec, cells: list[StudyCell], root: Path) -> int:
    """Copy the reusable results of other studies into this one (marked "reused_from"); returns how many."""
    found = reusable_cells(spec, cells, root)
    folder = _results_dir(spec, root) / "cells"
    for cell in cells:
        if cell.key in found:
            record = json.loads(found[cell.key].read_text())
            record["reused_from"] = found[cell.key].relative_to(root).as_posix()
            record["cell"] = asdict(cell)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{cell.file_name}.tmp"
            tmp.write_text(json.dumps(record, indent=1))
            os.replace(tmp, folder / cell.file_name)
    return len(found)


def missing_cells(spec: StudySpec, cells: list[StudyCell], root: Path) -> list[StudyCell]:
    folder = _results_dir(spec, root) / "cells"
    return [c for c in cells if not (folder / c.file_name).exists()]


def run_study(spec_path: str | Path, jobs: int = 1, root: str | Path | None = None, progress: bool = True,
              dry_run: bool = False, only: list[str] | None = None, only_seeds: list[int] | None = None,
              only_data: list[str] | None = None, only_horizons: list[int] | None = None, engine: str = "local",
              address: str | None = None) -> dict[str, Any]:
    """Run the study's missing cells (training what they need), then write its JSON, table and plot.

    `only`, `only_seeds`, `only_data`, `only_horizons`: run just the cells of these method labels,
    training seeds, data sets and horizons now (a study can spread over invocations, e.g. seed 0 of
    everything first, or the long-horizon cells on a second core); cells without a horizon (BC acts
    every step) pass the horizon filter. The summary covers every finished cell.

    `root` holds the study's data, runs and results (`benchmarks/results/studies/...`); by default
    the repository of the spec file (`spec_root`), whatever the working directory.

    `engine` "ray" runs each job as a task on the Ray cluster at `address` (HOST:PORT of its head;
    default RAY_ADDRESS), whose nodes share this root's filesystem (`lwd.experiments.cluster`): the same cell
    files, so either engine resumes what the other started."""
    from lwd.outputs import check_writable
    from lwd.training.hardware import barrier, join_launch

    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if address is not None and engine != "ray":
        raise ValueError("--address is a Ray cluster's; give it with --engine ray")
    if engine == "ray" and jobs > 1:
        raise ValueError("--jobs is the local engine's; on a Ray cluster its CPUs decide how many training runs go at a time")
    root = Path(root) if root is not None else spec_root(spec_path)
    spec = StudySpec.load(spec_path)
    rank, world = join_launch()  # under torchrun: every rank runs each job together (DDP training, sharded evaluation)
    if world > 1 and jobs > 1:
        raise ValueError("under torchrun / accelerate launch the processes share each job; use --jobs 1")
    if world > 1 and engine != "local":
        raise ValueError("under torchrun / accelerate launch the processes share each job; use the local engine")
    if engine == "ray" and not dry_run:
        from lwd.optional import require

        require("ray", "cluster", "Ray (lwd study --engine ray)")  # before any work, in one line
    progress = progress and rank == 0
    cells = plan_study(spec)
    _check_slice("--only", only, [m.label for m in spec.methods], "methods", spec.name)
    _check_slice("--seeds", only_seeds, spec.seeds, "seeds", spec.name)
    _check_slice("--data", only_data, [d.name for d in spec.data], "data", spec.name)
    _check_slice("--horizons", only_horizons, spec.horizons, "horizons", spec.name)
    reusable = reusable_cells(spec, cells, root)
    if reusable and not dry_run and rank == 0:
        check_writable(_results_dir(spec, root), what="results folder", folder=True)
        adopt_cells(spec, cells, root)
    barrier()
    if reusable and progress:
        print(f"study {spec.name}: {len(reusable)} cell(s) {'would be' if dry_run else 'were'} reused from other studies "
              "with the same settings", flush=True)
    missing = [c for c in missing_cells(spec, cells, root) if c.key not in reusable]
    todo = [c for c in missing if (only is None or c.label in only) and (only_seeds is None or c.seed in only_seeds)
            and (only_data is None or c.data in only_data)
            and (only_horizons is None or c.horizon is None or c.horizon in only_horizons)]
    groups: dict[str, list[StudyCell]] = {}
    for cell in todo:
        groups.setdefault(cell.run_key, []).append(cell)
    if progress:
        later = f", {len(missing) - len(todo)} left for a later run" if len(missing) > len(todo) else ""
        where = (f"{min(jobs, max(len(groups), 1))} at a time" if engine == "local"
                 else f"as tasks on the Ray cluster at {address or os.environ.get('RAY_ADDRESS', '(no address)')}")
        print(f"study {spec.name}: {len(cells)} cells, {len(cells) - len(missing)} done, {len(todo)} to run now "
              f"in {len(groups)} training run(s), {where}{later}", flush=True)
    if dry_run:
        return {"cells": len(cells), "done": len(cells) - len(todo), "todo": [asdict(c) for c in todo]}
    check_writable(_results_dir(spec, root), what="results folder", folder=True)
    if groups:
        from contextlib import nullcontext

        from lwd.experiments.cluster import connected, run_groups

        # On Ray: connect first, so a wrong address is said before the data takes minutes to make.
        with connected(address, progress) if engine == "ray" else nullcontext() as ray:
            if rank == 0:
                _make_data(spec, {c.data for c in todo}, root, progress)
            barrier()
            os.environ.setdefault("OMP_NUM_THREADS", "1")  # each worker one thread (inherited by spawned processes)
            work = [(str(Path(spec_path).resolve()), str(root.resolve()), group, progress) for group in groups.values()]
            if ray is not None:
                run_groups(ray, spec.name, _run_group, work, [_job_name(group) for group in groups.values()],
                           root.resolve() / RUNS_ROOT, progress)
            elif jobs <= 1:
                for item in work:
                    _run_group(*item)
            else:
                import multiprocessing

                with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                    futures = [pool.submit(_run_group, *item) for item in work]
                    for done, future in enumerate(as_completed(futures), 1):
                        future.result()
                        if progress:
                            print(f"study {spec.name}: {done}/{len(futures)} training run(s) finished", flush=True)
    if rank > 0:
        return {"name": spec.name, "rank": rank}  # rank 0 writes the summary
    return write_summary(spec, cells, root)


def _check_slice(flag: str, asked: list[Any] | None, allowed: list[Any], what: str, study: str) -> None:
    """Refuse a slice filter naming values the spec does not have (a typo would otherwise run nothing)."""
    unknown = sorted(set(asked or ()) - set(allowed))
    if unknown:
        raise ValueError(f"{flag} {unknown}: not {what} of study {study} ({', '.join(map(str, allowed))})")


def _make_data(spec: StudySpec, names: set[str], root: Path, progress: bool) -> None:
    from lwd.demos import parse_styles, write_demos
    from lwd.suites import make_suite

    for data in spec.data:
        path = data.location(spec.suite, root)
        if data.name not in names or path.exists():
            continue
        if data.path:
            raise FileNotFoundError(f"study {spec.name}: data.{data.name} path {path} does not exist")
        if progress:
            print(f"making {data.name} data: {data.demos} expert demos per task (dart_noise {data.dart_noise}, "
                  f"perturbation {data.perturb}{', styles ' + data.styles if data.styles else ''}) -> {path}", flush=True)
        suite = make_suite(spec.suite)
        styles = parse_styles(data.styles, suite) if data.styles else None
        write_demos(suite, path, data.demos, seed_start=data.seed_start, dart_noise=data.dart_noise,
                    perturb=data.perturb, styles=styles, progress=progress)  # an image suite's frames go to disk episode by episode


def _job_name(cells: list[StudyCell]) -> str:
    """A job as progress lines and errors name it: its cells' method, data and seed, and its run folder."""
    first = cells[0]
    return f"{first.label} {first.data} seed {first.seed} (run {first.method}-{first.run_key})"


def _run_group(spec_path: str, root_text: str, cells: list[StudyCell], progress: bool = True,
               command: list[str] | None = None) -> None:
    """One job: train (or reuse, or resume) the cells' shared run, then evaluate each cell.

    `command`: the command the cells' provenance cites (default: this process's own), given when
    the job runs in a process started for it elsewhere (a Ray worker)."""
    import torch

    from lwd.checkpoint import has_train_state
    from lwd.experiments.bench import check_reuse
    from lwd.pipeline import evaluate_run, train_run
    from lwd.provenance import provenance
    from lwd.training.hardware import launched_world

    torch.set_num_threads(1)
    rank, world = launched_world()
    root = Path(root_text)
    spec = StudySpec.load(spec_path)
    first = cells[0]
    data_spec = next(d for d in spec.data if d.name == first.data)
    data = data_spec.location(spec.suite, root)
    # data made of several expert styles: each rollout is labelled by the suite's style rule, and the
    # cell records the mix against the demonstrations' own (labelled by the same rule)
    data_styles = demo_style_mix(data, spec.suite) if data_spec.styles else None
    run_dir = root / RUNS_ROOT / f"{first.method}-{first.run_key}"  # keyed by every training setting: shared across studies
    job = f"{first.label} {first.data} seed {first.seed}"
    if (run_dir / "model.safetensors").exists():
        check_reuse(run_dir, first.method, first.preset, list(first.overrides), first.seed, list(first.train_overrides))
    else:
        resume = has_train_state(run_dir)
        _say(progress and rank == 0, f"{job}: training {'(resuming) ' if resume else ''}in {run_dir}")
        t0 = time.perf_counter()
        train_run(first.method, data, run_dir, preset=first.preset, overrides=list(first.overrides),
                  train_overrides=list(first.train_overrides), seed=first.seed, resume=resume, progress=False)
        _say(progress and rank == 0, f"{job}: trained in {time.perf_counter() - t0:,.0f} s")
    log = json.loads((run_dir / "train_log.json").read_text())
    folder = _results_dir(spec, root) / "cells"
    for cell in cells:
        t0 = time.perf_counter()
        result = evaluate_run(run_dir, env=spec.suite, episodes=spec.episodes, n_envs=spec.n_envs, seed_start=spec.seed_start,
                              perturb=None if cell.perturbation == "none" else cell.perturbation, progress=False,
                              batch_plans=spec.batch_plans, shard=(rank, world), label_styles=data_styles is not None,
                              **cell.runtime)
        if rank > 0:
            continue  # every rank has the gathered result; rank 0 writes it
        record = {
            "cell": asdict(cell),
            "mean_success": result["mean_success"],
            "successes": sum(int(e["success"]) for e in result["episodes"]),
            "episodes_run": len(result["episodes"]),
            **{k: result[k] for k in ("mean_score", "mean_final_score") if k in result},
            "per_task": result["per_task"],
            "cost": result["cost"],
            "training": {"samples": log.get("samples", {}), "seconds": {k: round(v, 1) for k, v in log.get("seconds", {}).items()},
                         # what stages measured about themselves (WARPD: the world model's held-out
                         # rollout error per length), kept with the cell since runs/ is not
                         **({"reports": log["reports"]} if log.get("reports") else {})},
            "episodes": [[e["task"], e["seed"], int(e["success"]), e["steps"], e["max_score"], e["final_score"],
                          *([e["style"], _flag(e["style_consistent"])] if "style" in e else [])] for e in result["episodes"]],
            **({"styles": rollout_style_mix([e["style"] for e in result["episodes"]],
                                            [e["style_consistent"] for e in result["episodes"]], data_styles)} if data_styles else {}),
            "seconds": round(time.perf_counter() - t0, 1),
            "provenance": provenance(command),
        }
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{cell.file_name}.tmp"
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, folder / cell.file_name)
        horizon = "" if cell.horizon is None else f" H = {cell.horizon},"
        _say(progress and rank == 0, f"{job}:{horizon} {cell.perturbation}: success {record['mean_success']:.2f} "
                                     f"({record['successes']}/{record['episodes_run']}) in {record['seconds']:,.0f} s")


def demo_style_mix(data: Path, suite: str) -> dict[str, Any] | None:
    """The style shares of a study's demonstrations, by the same rule that labels the rollouts
    (so the two mixes are measured alike; the expert's drawn mix is in the store's attributes).
    None on a suite whose observations cannot show the style (no rule): its cells record success only."""
    from lwd.analysis.styles import UNDECIDED, label_episodes, style_rule, style_summary
    from lwd.data import Episodes

    try:
        styles = list(style_rule(suite).styles)
    except ValueError:
        return None
    summary = style_summary(label_episodes(Episodes.load(data), suite), styles)
    return {"styles": styles, "shares": summary["shares"], "undecided": summary["counts"][UNDECIDED],
            "episodes": summary["episodes"], "consistency": summary["consistency"]}


def rollout_style_mix(labels: list[str], consistent: list[bool | None], data_styles: dict[str, Any]) -> dict[str, Any]:
    """A cell's style record: its rollouts' shares among decided episodes, how many were undecided,
    the total-variation distance to the demonstrations' shares (0: the same mix, 1: disjoint), and
    the share whose style holds over the style phase (from each episode's `consistent`) against the
    demonstrations' own share: whether regenerating the policy every H steps keeps one behaviour."""
    from lwd.analysis.styles import UNDECIDED, consistency, style_shares, total_variation

    shares = style_shares(labels, data_styles["styles"])
    undecided = labels.count(UNDECIDED)
    held, judged = consistency(labels, consistent)
    return {"shares": shares, "undecided": undecided, "episodes": len(labels), "data_shares": data_styles["shares"],
            "data_undecided": data_styles["undecided"], "data_episodes": data_styles["episodes"],
            "tv_to_data": total_variation(shares, data_styles["shares"]) if undecided < len(labels) else None,
            "consistency": held, "consistency_episodes": judged, "data_consistency": data_styles["consistency"]}


def _flag(value: bool | None) -> int | None:
    """A yes/no/unknown as a cell's episode rows hold it (1, 0, null)."""
    return None if value is None else int(value)


def _say(show: bool, line: str) -> None:
    """One progress line per milestone: jobs run in parallel processes, where progress bars would interleave."""
    if show:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


# ------------------------------------------------------------------------------ summary
def load_cells(spec: StudySpec, cells: list[StudyCell], root: Path) -> list[dict[str, Any]]:
    folder = _results_dir(spec, root) / "cells"
    return [json.loads((folder / c.file_name).read_text()) for c in cells if (folder / c.file_name).exists()]


def summarise_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (data, method, H, perturbation) over its seeds: success with its 95% interval."""
    from lwd.experiments.stats import success_interval, wilson

    rows: dict[tuple, dict[str, Any]] = {}
    for rec in records:
        c = rec["cell"]
        key = (c["data"], c["label"], c["horizon"], c["perturbation"])
        row = rows.setdefault(key, {"data": c["data"], "method": c["label"], "horizon": c["horizon"], "perturbation": c["perturbation"],
                                    "seeds": [], "per_seed": [], "samples": [], "train_seconds": [], "flops_per_step": rec["cost"]["flops_per_step"]})
        row["seeds"].append(c["seed"])
        row["per_seed"].append((rec["successes"], rec["episodes_run"]))
        row["samples"].append(sum(rec["training"]["samples"].values()))
        row["train_seconds"].append(sum(rec["training"]["seconds"].values()))
        if "styles" in rec:
            row.setdefault("styles", []).append(rec["styles"])
            by_style = row.setdefault("success_by_style", {})  # pooled over seeds: {style: [successes, episodes]}
            for episode in rec["episodes"]:
                tally = by_style.setdefault(episode[6], [0, 0])
                tally[0] += episode[2]
                tally[1] += 1
    out = []
    for row in rows.values():
        interval = success_interval(row["per_seed"])
        row.update(success=interval.estimate, low=interval.low, high=interval.high, interval=interval.kind,
                   per_seed_wilson=[[w.low, w.high] for w in (wilson(s, n) for s, n in row["per_seed"])])
        out.append(row)
    return out


def separated_pairs(rows: list[dict[str, Any]], rule: str = "intervals") -> list[str]:
    """For each (data, H, perturbation), the method pairs told apart: by `rule` "intervals", their 95%
    intervals do not overlap; by "every seed", `lwd.experiments.stats.apart_in_every_seed` (weaker: every seed
    above every seed and pooled episodes separated), listed only where the intervals do overlap."""
    from lwd.experiments.stats import apart_in_every_seed

    if rule not in ("intervals", "every seed"):
        raise ValueError(f"rule must be 'intervals' or 'every seed', got {rule!r}")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["data"], row["horizon"], row["perturbation"]), []).append(row)
    bc_like = [r for r in rows if r["horizon"] is None]
    lines = []
    for (data, horizon, perturb), members in groups.items():
        if horizon is None:
            continue
        members = members + [r for r in bc_like if r["data"] == data and r["perturbation"] == perturb]
        for a in members:
            for b in members:
                if a is b:
                    continue
                by_intervals = a["low"] > b["high"]
                told_apart = by_intervals if rule == "intervals" else (  # the weaker line: only what intervals miss
                    not by_intervals and apart_in_every_seed(a["per_seed"], b["per_seed"]))
                if told_apart:
                    lines.append(f"{data}, H = {horizon}, {perturb}: {a['method']} > {b['method']}")
    return lines


def markdown(spec: StudySpec, rows: list[dict[str, Any]]) -> str:
    perturbs = list(dict.fromkeys(spec.perturbations))
    header = "| data | method | H | " + " | ".join(f"success ({p})" for p in perturbs) + " | seeds | samples seen / run | FLOPs / step |"
    lines = [header, "|" + "---|" * (6 + len(perturbs))]
    keyed = {(r["data"], r["method"], r["horizon"], r["perturbation"]): r for r in rows}
    order = list(dict.fromkeys((r["data"], r["method"], r["horizon"]) for r in rows))
    for data, method, horizon in order:
        cells, seeds, samples, flops = [], "", "", ""
        for p in perturbs:
            r = keyed.get((data, method, horizon, p))
            if r is None:
                cells.append("-")
                continue
            cells.append(f"{r['success']:.2f} [{r['low']:.2f}, {r['high']:.2f}]")
            seeds = str(len(r["seeds"]))
            samples = f"{sum(r['samples']) / len(r['samples']) / 1e6:.2f} M"
            flops = f"{r['flops_per_step']:,.0f}"
        lines.append(f"| {data} | {method} | {horizon if horizon is not None else 'every step'} | " + " | ".join(cells)
                     + f" | {seeds} | {samples} | {flops} |")
    text = "\n".join(lines) + ("\n\n95% intervals: the wider of Student-t over training seeds and Wilson over all their "
                                "episodes (Wilson alone for one seed).\n")
    pairs = separated_pairs(rows)
    text += "Separated (intervals do not overlap): " + ("; ".join(pairs) if pairs else "none") + ".\n"
    apart = separated_pairs(rows, rule="every seed")
    if apart:
        text += ("Apart in every seed and over pooled episodes, intervals overlapping (weaker evidence: "
                 "every seed above every seed, pooled Wilson intervals disjoint): " + "; ".join(apart) + ".\n")
    return text + style_markdown(rows)


def style_markdown(rows: list[dict[str, Any]]) -> str:
    """The style mix of the rollouts against the demonstrations', for cells on data with styles."""
    from lwd.analysis.styles import chance_total_variation

    styled = [r for r in rows if r.get("styles")]
    if not styled:
        return ""
    lines = ["", "Style mix of the rollouts (lwd.analysis.styles rule; shares among decided episodes, mean over "
             "seeds) against the demonstrations' (same rule); TV: total-variation distance per seed; cells "
             "evaluated before styles were recorded are missing. Style held: the share of decided episodes whose "
             "style phase shows the same style in both halves (mean over the seeds that recorded it; the demos' in "
             "brackets). Success by style: pooled over seeds (episodes in brackets). TV by chance: the mean and 95th "
             "percentile of the TV a generator with exactly the demos' mix gets over a seed's decided episodes "
             "(lwd.analysis.styles.chance_total_variation): a TV per seed below these is not told apart from 0.", "",
             "| data | method | H | perturbation | seeds | rollout shares | demo shares | TV per seed | TV by chance "
             "| undecided / episodes | style held (demos) | success by style |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in styled:
        records = r["styles"]
        names = list(records[0]["shares"])
        order = [*names, *sorted(set(r["success_by_style"]) - set(names))]  # the styles, then "undecided"
        mean = {n: sum(rec["shares"][n] for rec in records) / len(records) for n in names}
        tv = " / ".join("-" if rec["tv_to_data"] is None else f"{rec['tv_to_data']:.2f}" for rec in records)
        undecided = sum(rec["undecided"] for rec in records)
        episodes = sum(rec["episodes"] for rec in records)
        chance_mean, chance_95 = chance_total_variation(records[0]["data_shares"], round((episodes - undecided) / len(records)))
        held = [rec["consistency"] for rec in records if rec.get("consistency") is not None]
        demos_held = records[0].get("data_consistency")
        held_text = ("-" if not held else f"{sum(held) / len(held):.2f}") + ("" if demos_held is None else f" ({demos_held:.2f})")
        lines.append(f"| {r['data']} | {r['method']} | {r['horizon'] if r['horizon'] is not None else 'every step'} | "
                     f"{r['perturbation']} | {len(records)} | " + ", ".join(f"{n} {v:.2f}" for n, v in mean.items())
                     + " | " + ", ".join(f"{n} {v:.2f}" for n, v in records[0]["data_shares"].items())
                     + f" | {tv} | {'-' if math.isnan(chance_mean) else f'{chance_mean:.2f} / {chance_95:.2f}'} "
                     + f"| {undecided} / {episodes} | {held_text} | "
                     + ", ".join(f"{name} {won / seen:.2f} ({seen})" for name, (won, seen)
                                 in sorted(r["success_by_style"].items(), key=lambda item: order.index(item[0]))) + " |")
    return "\n".join(lines) + "\n"


def plot(spec: StudySpec, rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["data"], r["perturbation"]) for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 2.5, 3.8), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    horizons = sorted({h for h in spec.horizons})
    for ax, (data, perturb) in zip(axes[0], panels):
        for i, method in enumerate(methods):
            mine = sorted((r for r in rows if r["data"] == data and r["perturbation"] == perturb and r["method"] == method),
                          key=lambda r: r["horizon"] or 0)
            if not mine:
                continue
            if mine[0]["horizon"] is None:
                xs, r = horizons, mine[0]
                ax.fill_between(xs, [r["low"]] * len(xs), [r["high"]] * len(xs), color=f"C{i}", alpha=0.15)
                ax.plot(xs, [r["success"]] * len(xs), color=f"C{i}", ls=":", label=method)
                continue
            xs = [r["horizon"] for r in mine]
            ys = [r["success"] for r in mine]
            err = [[y - r["low"] for y, r in zip(ys, mine)], [r["high"] - y for y, r in zip(ys, mine)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=f"C{i}", label=method)
        horizon_axes(ax, horizons, "success rate (95% interval)", f"{spec.suite}: {data} data, {perturb}", bottom=-0.02)
    save_with_legend(fig, axes, path)


def horizon_axes(ax: Any, horizons: list[int], ylabel: str, title: str, bottom: float = 0.0) -> None:
    """A panel of some rate against the action horizon H (log2 axis, a tick per H, rates 0-1)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(horizons)
    ax.set_xticklabels([str(h) for h in horizons])
    ax.set_ylim(bottom, 1.02)
    ax.set_xlabel("action horizon H")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def save_with_legend(fig: Any, axes: Any, path: Path) -> None:
    """One legend to the right of the first row's last panel; the figure saved and closed."""
    import matplotlib.pyplot as plt

    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_summary(spec: StudySpec, cells: list[StudyCell], root: Path) -> dict[str, Any]:
    from lwd.provenance import provenance

    records = load_cells(spec, cells, root)
    rows = summarise_rows(records)
    folder = _results_dir(spec, root)
    summary = {"name": spec.name, "suite": spec.suite, "about": spec.about, "spec": spec.raw, "cells_planned": len(cells),
               "cells_done": len(records), "rows": rows, "separated": separated_pairs(rows),
               "apart_in_every_seed": separated_pairs(rows, rule="every seed"), "provenance": provenance()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / f"{spec.name}.json").write_text(json.dumps(summary, indent=1))
    if rows:
        (folder.parent / f"{spec.name}.md").write_text(markdown(spec, rows))
        plot(spec, rows, folder.parent / f"{spec.name}.png")
    return summary
