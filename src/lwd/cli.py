"""The `lwd` command. Every subcommand has --help; long work shows progress and ends with a table.

    lwd quickstart
    lwd demos metaworld/mt10 --episodes 50 --out data/mt10.zarr
    lwd demos pusht --episodes 200 --out data/pusht.zarr
    lwd import dp-pusht pusht_cchi_v7_replay.zarr.zip --out data/pusht-human.zarr
    lwd train lwd --data data/mt10.zarr --out runs/mt10-lwd --preset mt10
    lwd eval runs/mt10-lwd --episodes 50 --out results.json
    lwd info runs/mt10-lwd
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lwd.outputs import check_writable, refuse_existing, replacing, write_text_safely


def _int_at_least(minimum: int) -> Any:
    """An argparse type: an integer >= minimum, refused with a message that says so."""
    wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value!r}") from err
        if number < minimum:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {number}")
        return number

    return parse


_positive = _int_at_least(1)
_non_negative = _int_at_least(0)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (what is wrong, and where help is), like every other error of lwd."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_demos(args: argparse.Namespace) -> None:
    from lwd.demos import collect_demos, parse_styles
    from lwd.suites import make_suite

    refuse_existing(args.out, args.overwrite)
    check_writable(args.out)
    suite = make_suite(args.env)
    styles = parse_styles(args.styles, suite) if args.styles is not None else None
    t0 = time.perf_counter()
    episodes = collect_demos(suite, args.episodes, seed_start=args.seed_start, keep_failures=args.keep_failures,
                             dart_noise=args.dart_noise, perturb=args.perturb, styles=styles)
    path = episodes.save(args.out)
    lengths = episodes.lengths
    print(f"wrote {episodes.num_episodes} episodes ({episodes.num_steps} steps, length {lengths.min()}-{lengths.max()}, "
          f"mean {lengths.mean():.0f}) to {path} in {time.perf_counter() - t0:.1f} s")


def cmd_import(args: argparse.Namespace) -> None:
    """Convert another project's dataset into our episode store (zarr, DP layout)."""
    refuse_existing(args.out, args.overwrite)
    check_writable(args.out)
    t0 = time.perf_counter()
    if args.format == "dp-pusht":
        from lwd.data.formats.dp_zarr import load_dp_pusht

        episodes = load_dp_pusht(args.source, obs_type=args.obs_type, check_keypoints=not args.no_keypoint_check)
    elif args.format == "lerobot":
        from lwd.data.formats.lerobot import load_lerobot

        features = args.state_features.split(",") if args.state_features else None
        episodes = load_lerobot(args.source, features, args.action_feature)
        if args.suite:
            from lwd.suites import make_suite

            suite = make_suite(args.suite)
            if suite.obs_dim != episodes.data["obs"].shape[1] or suite.action_dim != episodes.data["action"].shape[1]:
                raise ValueError(f"--suite {suite.name} takes {suite.obs_dim}-d observations and {suite.action_dim}-d actions; "
                                 f"the dataset has {episodes.data['obs'].shape[1]} and {episodes.data['action'].shape[1]}")
            episodes.attrs["suite"] = suite.name
            if not suite.multitask:
                episodes.attrs["tasks"] = list(suite.tasks)
    else:
        from lwd.data.formats.robomimic_hdf5 import load_robomimic_hdf5
        from lwd.envs.robomimic import OBS_KEYS

        keys = args.obs_keys.split(",") if args.obs_keys else list(OBS_KEYS)
        episodes = load_robomimic_hdf5(args.source, keys, filter_key=args.filter_key)
        task = args.task or episodes.attrs.get("robomimic_task")  # from the file's env_args when it names Lift/Can/Square
        if task and keys == list(OBS_KEYS):
            episodes.attrs.update(suite=f"robomimic/{task}", tasks=[task])
        elif args.task:
            raise ValueError("--task tags the data for evaluation in robomimic/<task>, which needs the default --obs-keys")
    path = episodes.save(args.out)
    print(f"imported {episodes.num_episodes} episodes ({episodes.num_steps} steps, obs {episodes.data['obs'].shape[1]}-d) "
          f"from {args.source} to {path} in {time.perf_counter() - t0:.1f} s")


def cmd_export(args: argparse.Namespace) -> None:
    """A trained run's controller (npz, c, the method's own formats); `lwd export robomimic|lerobot
    DATA`, the spelling before `lwd export-data`, still works and says so."""
    if args.target in DATA_FORMATS:
        print(f"lwd export: `lwd export {args.target} DATA` is deprecated; use `lwd export-data {args.target} DATA`",
              file=sys.stderr)
        if args.data is None:
            raise ValueError(f"lwd export-data {args.target} needs the episode store to export: "
                             f"lwd export-data {args.target} DATA --out ...")
        args.format = args.target
        cmd_export_data(args)
        return
    from lwd.export import export_run

    if args.data is not None:
        raise ValueError("export a run with: lwd export RUN --format FORMAT --out DIR "
                         "(datasets: lwd export-data robomimic|lerobot DATA --out ...)")
    check_writable(args.out, folder=True)
    print(export_run(args.target, args.format or "", args.out, overwrite=args.overwrite)[1])  # lists the run's formats


DATA_FORMATS = ("robomimic", "lerobot")


def cmd_export_data(args: argparse.Namespace) -> None:
    """Demos in robomimic's HDF5 layout or as a LeRobot v3.0 dataset."""
    from lwd.data import Episodes

    refuse_existing(args.out, args.overwrite)
    check_writable(args.out, folder=args.format == "lerobot")
    episodes = Episodes.load(args.data)
    if args.format == "lerobot":
        from lwd.data.formats.lerobot import save_lerobot

        with replacing(args.out) as tmp:  # an existing dataset is replaced only by a complete new one
            save_lerobot(episodes, tmp, fps=args.fps)
        print(f"wrote {episodes.num_episodes} episodes ({episodes.num_steps} frames) to {args.out} (LeRobot v3.0, state only)")
        return
    from lwd.data.formats.robomimic_hdf5 import save_robomimic_hdf5
    from lwd.envs.robomimic import RobomimicEnv, obs_key_dims

    suite = str(episodes.attrs.get("suite", ""))
    if not suite.startswith("robomimic/"):
        raise ValueError(f"{args.data} holds {suite or 'untagged'} data; robomimic export needs demos from `lwd demos robomimic/<task>`")
    task = suite.split("/", 1)[1]
    env = RobomimicEnv(task)
    try:
        env_args = env.env_args()
    finally:
        env.close()
    with replacing(args.out) as tmp:
        save_robomimic_hdf5(episodes, tmp, obs_key_dims(task), env_args)
    print(f"wrote {episodes.num_episodes} demos to {args.out} (robomimic layout, env {env_args.get('env_name')})")


def cmd_train(args: argparse.Namespace) -> None:
    from lwd.pipeline import train_run

    from lwd.hardware import Hardware, launched_world

    hardware = Hardware(args.device, args.precision, args.threads, args.grad_accum)
    rank, world = launched_world()
    check_writable(args.out, folder=True)
    t0 = time.perf_counter()
    train_run(args.method, args.data, args.out, args.preset, args.set or [], args.train_set or [], args.seed,
              args.resume, progress=rank == 0, eval_every=args.eval_every, eval_episodes=args.eval_episodes, hardware=hardware,
              overwrite=args.overwrite)
    if rank > 0:
        return  # rank 0 reports
    print(f"trained {args.method} in {time.perf_counter() - t0:.1f} s" + (f" on {world} processes" if world > 1 else "")
          + f" -> {args.out}")
    from lwd.pipeline import run_info

    _print_rows(run_info(args.out))


def cmd_eval(args: argparse.Namespace) -> None:
    from lwd.evaluate import format_table, plot_success
    from lwd.pipeline import check_training_data, evaluate_run
    from lwd.provenance import provenance

    if args.out:
        refuse_existing(args.out, args.overwrite)
        refuse_existing(Path(args.out).with_suffix(".png"), args.overwrite, what="--out's plot")
        check_writable(args.out)
    else:
        check_writable(Path(args.run) / "evals", what="--out", folder=True)  # the default: RUN/evals/
    video_dir = None
    if args.video:
        video_dir = Path(args.video_dir or (Path(args.out).with_suffix("").as_posix() + "-videos" if args.out else Path(args.run) / "videos"))
        check_writable(video_dir, what="--video-dir", folder=True)
        os.environ.setdefault("MUJOCO_GL", "egl")  # off-screen MuJoCo rendering; set before any simulator loads
    shard = _eval_shard()
    if shard[0] == 0:
        _warn(check_training_data(args.run))
    result = evaluate_run(args.run, args.env, args.episodes, args.n_envs, args.vector, args.perturb, args.seed_start,
                          args.tasks.split(",") if args.tasks else None, progress=shard[0] == 0, batch_plans=args.batch_plans,
                          video=args.video, video_dir=video_dir, shard=shard, exported=args.exported, **_runtime(args))
    if shard[0] > 0:
        return  # rank 0 reports and writes
    result["provenance"] = provenance()
    print(format_table(result))
    print(f"evaluated in {result['seconds']:.1f} s")
    for v in result.get("videos", []):
        print(f"video {v['video']}: {v['task']} seed {v['seed']}, {'success' if v['success'] else 'failure'} in {v['steps']} steps"
              + ("" if v["matches_evaluation"] else " (differs from the evaluated episode!)"))
    text = json.dumps(result, indent=2)
    if args.out:
        out = write_text_safely(args.out, text)
    else:  # a result is never thrown away: kept beside the run, under a name that says its settings
        from lwd.outputs import write_new_text

        out = write_new_text(Path(args.run) / "evals", eval_name(result), text)
    plot_success(result, str(out.with_suffix(".png")))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    if result.get("videos_interrupted"):
        raise KeyboardInterrupt(f"the results are kept in {out}; the video replay was cut short")


def eval_name(result: dict[str, Any]) -> str:
    """A file name for an evaluation kept in RUN/evals/: suite, perturbation, run-time options, episodes
    (e.g. `pusht-none-action_horizon16-50ep`); only letters, digits, `.`, `_`, `-`."""
    import re

    options = "-".join(f"{k}{v}" for k, v in sorted(result.get("policy_kwargs", {}).items()))
    parts = [result["suite"], result["perturbation"], options, f"{result['episodes_per_task']}ep"]
    if result.get("exported"):
        parts.append("exported")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in parts if p)).strip("._-") or "eval"


def _warn(line: str | None) -> None:
    """One warning line on stderr (nothing when there is nothing to say)."""
    if line:
        print(f"warning: {line}", file=sys.stderr)


def _eval_shard() -> tuple[int, int]:
    """(rank, world size): under torchrun or accelerate launch, join the process group (gloo: the
    policies run on the CPU) so the episodes are shared and gathered; (0, 1) otherwise."""
    from lwd.hardware import launched_world

    if launched_world()[1] == 1:
        return 0, 1
    from accelerate import PartialState

    state = PartialState(cpu=True)
    return state.process_index, state.num_processes


def _runtime(args: argparse.Namespace) -> dict[str, Any]:
    """The run-time options given on the command line (the method refuses ones it does not take)."""
    return {key: getattr(args, key) for key in args.runtime_options if getattr(args, key, None) is not None}


def _runtime_flags(parser: Any) -> None:
    """One flag per run-time option of the registered methods (`--action-horizon` for the runtime
    class's `action_horizon`), its type, choices and help read from the class (`option_fields`): a
    method's options reach the command line with no edit here. Which methods take an option is in
    its help; a run refuses an option its method does not take."""
    from lwd.methods import get_method, method_names
    from lwd.methods.base import OptionField, option_fields

    fields: dict[str, OptionField] = {}
    takers: dict[str, list[str]] = {}
    for name in method_names():
        for option in option_fields(get_method(name).runtime_class):
            known = fields.setdefault(option.name, option)
            if known.type is not option.type:
                raise TypeError(f"run-time option {option.name} is {known.type.__name__} for {', '.join(takers[option.name])} "
                                f"but {option.type.__name__} for {name}; give it one type or another name")
            takers.setdefault(option.name, []).append(name)
    for option in fields.values():
        meta = option.metadata
        kwargs: dict[str, Any] = {"default": None, "metavar": meta.get("metavar"), "choices": meta.get("choices"),
                                  "help": f"{option.help} Taken by {', '.join(takers[option.name])}; default: as the run was "
                                          "trained.".replace("%", "%%").strip()}
        if option.type is bool:
            kwargs = {"action": "store_true", "default": None, "help": kwargs["help"]}
        elif "parse" in meta:
            kwargs["type"] = _parse_with(meta["parse"])
        elif option.type is int and "minimum" in meta:
            kwargs["type"] = _int_at_least(int(meta["minimum"]))
        else:
            kwargs["type"] = option.type
        try:
            parser.add_argument("--" + option.name.replace("_", "-"), **kwargs)
        except argparse.ArgumentError as err:
            raise TypeError(f"run-time option {option.name} of {', '.join(takers[option.name])} collides with a flag "
                            f"of the command ({err}); rename the option") from err
    parser.set_defaults(runtime_options=tuple(fields))


def _parse_with(parse: Any) -> Any:
    """An argparse type from a runtime field's parser: its ValueError becomes argparse's one-line error."""

    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    return convert


def _print_rows(info: dict[str, Any]) -> None:
    from tabulate import tabulate

    print(tabulate([[k, _fmt(v)] for k, v in info.items()], tablefmt="simple"))


def _fmt(value: Any) -> str:
    if isinstance(value, float) and abs(value) < 1000:
        return f"{value:.1f}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def cmd_reconstruct(args: argparse.Namespace) -> None:
    """Encode demonstrations, decode their policies, run them from the demonstrations' own starts."""
    from tabulate import tabulate

    from lwd.reconstruct import reconstruct

    if args.out:
        check_writable(args.out)
    result = reconstruct(args.run, args.data, args.episodes, args.env)
    rows = [[task, f"{v['success_rate']:.2f}", v["episodes"], f"{v['state_rmse']:.3f}"] for task, v in result["per_task"].items()]
    rows.append(["mean", f"{result['mean_success']:.3f}", len(result["episodes"]), f"{result['mean_state_rmse']:.3f}"])
    print(tabulate(rows, headers=["task", "success", "demos", "state RMS error (normalised)"]))
    if not result["starts_matched"]:
        print("warning: some env resets did not reproduce the demonstration's first observation")
    if args.out:
        from lwd.provenance import provenance

        write_text_safely(args.out, json.dumps({**result, "provenance": provenance()}, indent=2))
        print(f"wrote {args.out}")


def cmd_latents(args: argparse.Namespace) -> None:
    from lwd.latents import latent_map

    check_writable(args.out)
    info = latent_map(args.run, args.data, args.out, args.stride)
    print(f"wrote {info['png']}: {info['points']} segments, coloured by {info['coloured_by']}, {', '.join(info['projections'])}")


def cmd_info(args: argparse.Namespace) -> None:
    from lwd.checkpoint import read_run_config
    from lwd.pipeline import preset_info, run_info

    if args.preset_only:
        if args.config:
            raise ValueError("--config prints a trained run's config.json; with --preset-only there is none (drop one of them)")
        method, _, preset = args.run.partition(":")
        try:
            parts = [int(x) for x in args.dims.split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (2, 3) or min(parts[:2]) < 1 or (len(parts) == 3 and parts[2] < 0):
            raise ValueError(f"--dims takes OBS_DIM,ACTION_DIM[,NUM_TASKS] as positive integers, e.g. 20,2; got {args.dims!r}")
        _print_rows(preset_info(method, preset or "default", *parts, latency_steps=args.latency_steps, env=args.env, **_runtime(args)))
        return
    from lwd.pipeline import check_training_data

    _warn(check_training_data(args.run))
    _print_rows(run_info(args.run, latency_steps=args.latency_steps, env=args.env, **_runtime(args)))
    if args.config:
        print(json.dumps(read_run_config(args.run).to_json(), indent=2))


def cmd_quickstart(args: argparse.Namespace) -> None:
    from lwd.quickstart import quickstart

    check_writable(args.out, folder=True)
    quickstart(Path(args.out), episodes_per_task=args.demos, eval_episodes=args.episodes, n_envs=args.n_envs)


def _pairs(text: str | None) -> dict[str, str]:
    out = {}
    for item in (text or "").split(","):
        if item:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"expected method=value pairs, got {item!r}")
            out[key] = value
    return out


def cmd_bench(args: argparse.Namespace) -> None:
    from lwd.bench import run_bench

    check_writable(args.out, folder=True)
    overrides: dict[str, list[str]] = {}
    for item in args.set or []:
        method, sep, setting = item.partition(":")
        if not sep:
            raise ValueError(f"--set takes METHOD:KEY=VALUE, got {item!r}")
        overrides.setdefault(method, []).append(setting)
    grid = run_bench(args.env, args.data, args.out, args.methods.split(","), _int_list(args.horizons, "--horizons", 1),
                     args.perturb.split(","), args.episodes, _pairs(args.presets), overrides, args.seed, args.n_envs, args.ddim_steps,
                     latency_steps=args.latency_steps, batch_plans=args.batch_plans, vector=args.vector)
    print((Path(args.out) / "grid.md").read_text())
    print(f"bench done in {grid['seconds']:.0f} s -> {args.out}/grid.json, success_vs_horizon.png, flops_per_step.png")


def _int_list(text: str, flag: str, minimum: int) -> list[int]:
    """A comma-separated flag value of integers >= minimum, refused with a line naming the flag and the item."""
    values = []
    for item in text.split(","):
        try:
            value = int(item)
        except ValueError:
            raise ValueError(f"{flag} takes comma-separated integers, e.g. {flag} 8,16; {item.strip()!r} is not one") from None
        if value < minimum:
            raise ValueError(f"{flag} takes integers >= {minimum}; got {value}")
        values.append(value)
    return values


def cmd_study(args: argparse.Namespace) -> None:
    from lwd.study import RESULTS_ROOT, run_study, spec_root

    root = Path(args.root) if args.root else spec_root(args.spec)
    summary = run_study(args.spec, jobs=args.jobs, root=root, dry_run=args.dry_run, only=args.only.split(",") if args.only else None,
                        only_seeds=_int_list(args.seeds, "--seeds", 0) if args.seeds else None,
                        only_data=args.data.split(",") if args.data else None,
                        only_horizons=_int_list(args.horizons, "--horizons", 1) if args.horizons else None)
    if not args.dry_run and "rank" not in summary:
        print(f"study {summary['name']}: {summary['cells_done']} of {summary['cells_planned']} cells done -> "
              f"{root / RESULTS_ROOT / summary['name']}.json, .md, .png")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from lwd.calibrate import calibrate_push
    from lwd.suites import make_suite

    if args.out:
        check_writable(args.out)
    magnitudes = [float(m) for m in args.magnitudes.split(",")]
    result = calibrate_push(make_suite(args.env), magnitudes, args.probability, args.episodes, args.min_success)
    for row in result["rows"]:
        print(f"{row['perturbation']:28s} expert success {row['success']:.2f} [{row['low']:.2f}, {row['high']:.2f}] "
              f"({row['successes']}/{row['episodes']})")
    print(f"largest push with expert success >= {args.min_success}: {result['chosen'] or 'none of these'}")
    if args.out:
        from lwd.provenance import provenance

        write_text_safely(args.out, json.dumps({**result, "provenance": provenance()}, indent=2))


def build_parser() -> argparse.ArgumentParser:
    from lwd import __version__
    from lwd.bench import bench_labels
    from lwd.methods import method_names

    p = _Parser(prog="lwd", description="Latent Weight Diffusion: generate the weights of small closed-loop policies.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="MT10 demos -> train LWD -> evaluate -> table, JSON and plot (CPU, < 15 min)")
    q.add_argument("--out", default="quickstart-out", help="folder for data, run and results (default: quickstart-out)")
    q.add_argument("--demos", type=_positive, default=50, help="expert demonstrations per task (default 50)")
    q.add_argument("--episodes", type=_positive, default=50, help="evaluation episodes per task (default 50)")
    q.add_argument("--n-envs", type=_positive, default=2, help="parallel env processes for evaluation (default 2)")
    q.set_defaults(func=cmd_quickstart)

    d = sub.add_parser("demos", help="collect expert demonstrations into a zarr episode store")
    d.add_argument("env", help="suite name: pusht, pusht/state, robomimic/lift|can|square, metaworld/mt10, metaworld/<task>-v3")
    d.add_argument("--episodes", type=_positive, default=50, help="successful episodes per task")
    d.add_argument("--out", required=True, help="output path (.zarr directory or .zarr.zip)")
    d.add_argument("--seed-start", type=_non_negative, default=0, help="first episode seed (evaluation uses 100000+)")
    d.add_argument("--keep-failures", action="store_true", help="also keep episodes where the expert failed")
    d.add_argument("--dart-noise", type=float, default=0.0, metavar="STD",
                   help="recovery data: execute the expert's action plus noise of STD x half the action range, "
                        "record the clean action (DART); default 0")
    d.add_argument("--perturb", default=None, help="recovery data: demonstrate under a perturbation, e.g. object-push:1:0.05; "
                                                    "the expert's recoveries are kept")
    d.add_argument("--styles", default=None, metavar="MIX",
                   help="mix the expert's styles per episode: all, A,B (equal) or A:0.7,B:0.3 (normalised); "
                        "records a per-step 'style' id; default: the single default expert (pusht: planner, "
                        "rotate-first, translate-first; robomimic/lift: waypoint, other-grasp, slow)")
    _overwrite_flag(d, "dataset")
    d.set_defaults(func=cmd_demos)

    im = sub.add_parser("import", help="convert a Diffusion Policy PushT zarr, a robomimic HDF5 file or a LeRobot dataset into an episode store")
    im.add_argument("format", choices=["dp-pusht", "robomimic", "lerobot"], help="source format")
    im.add_argument("source", help="dp-pusht: .zarr directory or .zarr.zip; robomimic: .hdf5 file; lerobot: the dataset folder (v3.0)")
    im.add_argument("--out", required=True, help="episode store to write (.zarr directory or .zarr.zip)")
    im.add_argument("--obs-type", choices=["keypoints", "state"], default="keypoints",
                    help="dp-pusht: 20-d keypoints + agent (DP's low-dim obs, default) or the 5-d state")
    im.add_argument("--no-keypoint-check", action="store_true", help="dp-pusht: skip checking keypoints against lwd's env")
    im.add_argument("--obs-keys", default=None, help="robomimic: comma-separated obs keys in order (default: object,robot0_eef_pos,robot0_eef_quat,robot0_gripper_qpos)")
    im.add_argument("--filter-key", default=None, help="robomimic: only demos listed in mask/<key>, e.g. train")
    im.add_argument("--task", choices=["lift", "can", "square"], default=None, help="robomimic: tag the data so eval uses robomimic/<task>")
    im.add_argument("--state-features", default=None,
                    help="lerobot: comma-separated features concatenated into the observation (default: observation.state, "
                         "plus observation.environment_state where present)")
    im.add_argument("--action-feature", default="action", help="lerobot: the action feature (default: action)")
    im.add_argument("--suite", default=None, help="lerobot: tag the data with the suite it evaluates in, e.g. pusht")
    _overwrite_flag(im, "dataset")
    im.set_defaults(func=cmd_import)

    ex = sub.add_parser("export", help="a trained run's controller, for a robot without torch (NumPy, C, ONNX)")
    ex.add_argument("target", metavar="RUN", help="run directory of a method that generates policy weights "
                                                  "(robomimic|lerobot DATA: deprecated spelling of lwd export-data)")
    ex.add_argument("data", nargs="?", default=None, help=argparse.SUPPRESS)
    ex.add_argument("--format", default=None, help="npz (the controller for lwd_controller.py, NumPy only), c "
                                                   "(lwd_controller.c/.h and a Makefile: C99, no dependencies), or the "
                                                   "method's own (LWD: onnx, controller.onnx taking the weights as an "
                                                   "input, and generator.onnx)")
    ex.add_argument("--out", required=True, help="the controller folder (other formats' files may share it)")
    ex.add_argument("--fps", type=_positive, default=10, help=argparse.SUPPRESS)
    _overwrite_flag(ex, "exported files of this --format in the folder")
    ex.set_defaults(func=cmd_export)

    xd = sub.add_parser("export-data", help="demos as a robomimic HDF5 file or a LeRobot v3.0 dataset")
    xd.add_argument("format", choices=DATA_FORMATS, help="robomimic (HDF5, robomimic's layout) or lerobot (v3.0, no videos)")
    xd.add_argument("data", help="episode store (robomimic: written by `lwd demos robomimic/<task>`)")
    xd.add_argument("--out", required=True, help="robomimic: HDF5 file; lerobot: a new dataset folder")
    xd.add_argument("--fps", type=_positive, default=10, help="lerobot: frames per second recorded in info.json (default 10)")
    _overwrite_flag(xd, "dataset")
    xd.set_defaults(func=cmd_export_data)

    t = sub.add_parser("train", help="train a method on a dataset", epilog=_presets_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("method", choices=method_names())
    t.add_argument("--data", required=True, help="episode store written by `lwd demos` (or an imported dataset)")
    t.add_argument("--out", required=True, help="run directory to create")
    t.add_argument("--preset", default="default", help="named settings: presets.py in the method folder (e.g. mt10-quick, mt10)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a method setting (repeatable)")
    t.add_argument("--train-set", action="append", metavar="KEY=VALUE", help="override an optimiser setting (repeatable)")
    t.add_argument("--seed", type=_non_negative, default=None, help="training seed (overrides the preset)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    t.add_argument("--eval-every", type=_non_negative, default=0, help="evaluate every N steps during training (0: never)")
    t.add_argument("--eval-episodes", type=_positive, default=5, help="episodes per task for --eval-every")
    t.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="where to train: auto (a GPU when present, else CPU); evaluation always runs the policy on the CPU")
    t.add_argument("--precision", choices=["no", "bf16", "fp16"], default="no", help="mixed precision (fp16 needs a GPU; default no)")
    t.add_argument("--threads", type=_non_negative, default=1,
                   help="torch CPU threads per process (default 1: more collapse when other processes share the cores; 0: torch's default)")
    t.add_argument("--grad-accum", type=_positive, default=1,
                   help="micro-batches per step: the same global batch in smaller pieces (less memory, same samples)")
    _overwrite_flag(t, "run (trained, or interrupted and not resumed)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a trained run in its environment")
    e.add_argument("run", help="run directory")
    e.add_argument("--env", default=None, help="suite name (default: the one the run was trained on)")
    e.add_argument("--episodes", type=_positive, default=50, help="episodes per task (default 50)")
    e.add_argument("--n-envs", type=_positive, default=1, help="parallel envs (results do not depend on it)")
    e.add_argument("--vector", choices=["sync", "async"], default="sync", help="gymnasium vector env kind")
    e.add_argument("--perturb", default=None, help="e.g. action-noise:0.1, obs-noise:0.01, block-push:20:0.05 (PushT), object-push:3:0.05 (robomimic); default none")
    e.add_argument("--seed-start", type=_non_negative, default=None, help="first test seed (default 100000)")
    e.add_argument("--tasks", default=None, help="comma-separated subset of tasks")
    e.add_argument("--batch-plans", action="store_true",
                   help="DP: replan all envs that need it in one network call instead of one per env (equal to per-env results up to float rounding)")
    e.add_argument("--video", type=_non_negative, default=0, metavar="N",
                   help="also write videos of the first N episodes (replayed with rendering after the evaluation)")
    e.add_argument("--video-dir", default=None, help="folder for --video (default: OUT-videos/ next to --out, else RUN/videos/)")
    e.add_argument("--exported", default=None, metavar="DIR",
                   help="LWD: run the policies from exported files (generator.onnx + lwd_controller.py, "
                        "from lwd export RUN --format npz and --format onnx into DIR) to check them against the run")
    e.add_argument("--out", default=None, help="results JSON (a PNG plot is written next to it); "
                                               "default: RUN/evals/<settings>.json, never over an earlier one")
    _overwrite_flag(e, "results JSON and plot")
    _runtime_flags(e.add_argument_group("run-time options of the methods", "read from each method's runtime class"))
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", help="methods x action horizons x perturbations, side by side -> JSON, table, plots")
    b.add_argument("env", help="suite name, e.g. pusht, robomimic/lift or metaworld/mt10")
    b.add_argument("--data", required=True, help="episode store all methods train on")
    b.add_argument("--out", required=True, help="folder for runs/, grid.json, grid.md and plots")
    b.add_argument("--methods", default="lwd,dp", help=f"comma-separated: {', '.join(bench_labels())}")
    b.add_argument("--horizons", default="8,16,32", help="action horizons H")
    b.add_argument("--perturb", default="none", help="comma-separated perturbations, e.g. none,action-noise:0.1")
    b.add_argument("--episodes", type=_positive, default=50, help="episodes per task per cell")
    b.add_argument("--presets", default="", help="per-method presets, e.g. lwd=mt10-quick,dp=cpu,bc=mt10-quick")
    b.add_argument("--set", action="append", metavar="METHOD:KEY=VALUE", help="override a method setting (repeatable)")
    b.add_argument("--seed", type=_non_negative, default=0, help="training seed shared by all methods")
    b.add_argument("--n-envs", type=_positive, default=1, help="parallel envs per evaluation")
    b.add_argument("--ddim-steps", type=_positive, default=10, help="DDIM steps for dp-ddim")
    b.add_argument("--latency-steps", type=_non_negative, default=400, help="control steps timed per cell on one CPU thread (0: skip)")
    b.add_argument("--batch-plans", action="store_true", help="DP: batch replans across envs (see lwd eval --help)")
    b.add_argument("--vector", choices=["sync", "async"], default=None,
                   help="vector env kind (default: async with --n-envs > 1; sync suits fast simulators such as PushT)")
    b.set_defaults(func=cmd_bench)

    c = sub.add_parser("calibrate", help="the largest push the suite's scripted expert survives (for fair perturbations)")
    c.add_argument("env", help="suite name, e.g. robomimic/can or pusht")
    c.add_argument("--magnitudes", required=True, help="push sizes to try, in the suite's unit (PushT px, robomimic cm), e.g. 1,2,3")
    c.add_argument("--probability", type=float, default=0.05, help="push probability per step (default 0.05)")
    c.add_argument("--episodes", type=_positive, default=50, help="test episodes per task and magnitude (default 50)")
    c.add_argument("--min-success", type=float, default=0.9, help="expert success the push must leave (default 0.9)")
    c.add_argument("--out", default=None, help="results JSON")
    c.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("study", help="run a study spec (TOML): data x methods x seeds x H x perturbations, cached per cell")
    s.add_argument("spec", help="study spec, e.g. benchmarks/studies/robomimic-lift.toml")
    s.add_argument("--jobs", type=_positive, default=1, help="training runs in parallel, one thread each (default 1)")
    s.add_argument("--dry-run", action="store_true", help="list the cells that would run, run nothing")
    s.add_argument("--only", default=None, help="comma-separated method labels to run now (the rest wait for a later run)")
    s.add_argument("--seeds", default=None, help="comma-separated training seeds to run now, e.g. 0")
    s.add_argument("--data", default=None, help="comma-separated data names of the spec to run now, e.g. clean")
    s.add_argument("--horizons", default=None, help="comma-separated horizons of the spec to run now, e.g. 32 "
                   "(cells without a horizon, like BC's, always pass)")
    s.add_argument("--root", default=None, help="folder for the study's data/, runs/ and benchmarks/results/ "
                   "(default: the repository holding the spec, else the spec's folder; never the working directory)")
    s.set_defaults(func=cmd_study)

    r = sub.add_parser("reconstruct", help="encode demos, decode their policies, replay them from the demos' starts")
    r.add_argument("run", help="run directory of lwd, warpd or lcmlp")
    r.add_argument("--data", required=True, help="demos written by `lwd demos` (use seeds the run was not trained on, e.g. --seed-start 5000)")
    r.add_argument("--episodes", type=_positive, default=10, help="demos per task (default 10)")
    r.add_argument("--env", default=None, help="suite (default: the data's)")
    r.add_argument("--out", default=None, help="results JSON")
    r.set_defaults(func=cmd_reconstruct)
    lt = sub.add_parser("latents", help="2-D map (PCA, t-SNE) of the posterior latents of demos, as a PNG")
    lt.add_argument("run", help="run directory of lwd, warpd or lcmlp")
    lt.add_argument("--data", required=True, help="episode store to encode")
    lt.add_argument("--out", required=True, help="PNG to write")
    lt.add_argument("--stride", type=_positive, default=None, help="steps between encoded segments (default: H)")
    lt.set_defaults(func=cmd_latents)
    i = sub.add_parser("info", help="parameters, FLOPs per control step and config of a run")
    i.add_argument("run", help="run directory, or METHOD:PRESET with --preset-only (e.g. dp:paper)")
    i.add_argument("--preset-only", action="store_true", help="cost of an untrained model from a preset (FLOPs need no training)")
    i.add_argument("--dims", default="20,2", help="with --preset-only: OBS_DIM,ACTION_DIM[,NUM_TASKS] (default 20,2: DP's low-dim PushT)")
    i.add_argument("--env", default=None, help="suite whose episode length costs --action-horizon episode (default: the run's)")
    i.add_argument("--config", action="store_true", help="also print the full config")
    i.add_argument("--latency-steps", type=_non_negative, default=2000, help="control steps timed on one CPU thread (0: skip)")
    _runtime_flags(i.add_argument_group("run-time options of the methods (the cost at these settings)",
                                         "read from each method's runtime class"))
    i.set_defaults(func=cmd_info)
    return p


def _presets_epilog() -> str:
    """`lwd train --help`'s list of every method's presets (what `--preset` takes), one line per method."""
    import textwrap

    from lwd.methods import get_method, method_names

    lines = ["presets (--preset; lwd info METHOD:PRESET --preset-only prints what one sets):"]
    for name in method_names():
        lines += textwrap.wrap(", ".join(get_method(name).presets), width=100, initial_indent=f"  {name}: ",
                               subsequent_indent=" " * (len(name) + 4))
    return "\n".join(lines)


def _overwrite_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """The one flag, named the same on every command, that lets a command replace what --out holds
    (replaced only once the new one is complete; without it an existing target is refused)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace an existing {what} at --out (the old one stays until the new one is complete)")


def main(argv: list[str] | None = None) -> int:
    try:
        import lwd.provenance  # records the commit this process starts on; results cite it

        lwd.provenance.record_cli_command(sys.argv[1:] if argv is None else [str(a) for a in argv])
        from safetensors import SafetensorError

        from lwd.checkpoint import CheckpointError
        from lwd.data import DatasetError

        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while torch and the simulators import: nothing started yet
        print("lwd: interrupted during start-up; nothing was written", file=sys.stderr)
        return 130
    try:
        args.func(args)
    except (DatasetError, CheckpointError, FileExistsError, FileNotFoundError, ValueError, ImportError) as err:
        print(f"lwd {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except (OSError, SafetensorError) as err:  # a full disk, a vanished folder: said in one line, never a traceback
        print(f"lwd {args.command}: error: {_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        saved = str(err)  # training raises with where it saved its state
        hint = _RESUME_HINTS.get(args.command, "nothing more was written")
        if args.command == "train":
            hint = f"{saved}; run the same command with --resume to continue" if saved else _NOTHING_SAVED
        elif args.command == "eval" and saved:
            hint = saved
        print(f"lwd {args.command}: interrupted; {hint}", file=sys.stderr)
        return 130
    return 0


def _os_error(err: BaseException) -> str:
    """One line for an operating-system failure: what failed, on which file, and the system's reason."""
    import errno

    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        reason = err.strerror or str(err)
        hint = "; free some space and run the command again (what existed before is unchanged)" if err.errno == errno.ENOSPC else ""
        return " ".join(f"{reason}{where}{hint}".split())
    text = " ".join(str(err).split())
    if "No space left" in text or "os error 28" in text:
        return f"{text}; free some space and run the command again (what existed before is unchanged)"
    return text


_NOTHING_SAVED = "no training state was saved yet; start the command again"
_RESUME_HINTS = {
    "bench": "run the same command again: finished runs are reused and interrupted ones resumed",
    "quickstart": "run it again on the same --out: finished stages are reused and an interrupted training resumed",
    "study": "run the same command again: finished cells are kept and interrupted training resumed",
}


if __name__ == "__main__":
    sys.exit(main())
